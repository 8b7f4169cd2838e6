//! Reload without restart (`reload::Reloader`, what SIGHUP calls) on the real server against the
//! in-process IdP: a policy or header change applies to the next Check; a bad config, or a changed
//! IdP client that cannot be discovered, is refused and the config in force keeps serving; a
//! session key rotation done by reload keeps sessions; start-only keys are reported, not applied.
//! The last test sends a real SIGHUP to the binary.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oidc_authz::clock::{ManualClock, SystemClock};
use oidc_authz::config::load_from_str;
use oidc_authz::oidc::provider::DISCOVERY_BACKOFF_CAP;
use oidc_authz::server::App;
use support::binary::RunningBinary;
use support::idp::now;
use support::{Authz, Browser, FakeIdp, KEY_A, KEY_B, Req, SwitchableStore, idp};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

/// A config file of the test's own, removed on drop.
struct ConfigFile {
    dir: PathBuf,
    path: PathBuf,
}

impl ConfigFile {
    fn new(name: &str) -> ConfigFile {
        let dir =
            std::env::temp_dir().join(format!("oidc-authz-reload-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yaml");
        ConfigFile { dir, path }
    }

    fn write(&self, yaml: &str) {
        std::fs::write(&self.path, yaml).unwrap();
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The config for `idp` with `session_secret: secrets` and `extra`.
fn yaml(idp: &FakeIdp, secrets: &str, extra: &str) -> String {
    format!(
        "issuer: {}\nclient_id: {}\nclient_secret: {}\nsession_secret: {secrets}\n\
         shutdown_drain_period: 0\n{extra}\n",
        idp.issuer,
        idp::CLIENT_ID,
        idp::CLIENT_SECRET
    )
}

const ONE_KEY: &str = "[\"key-a-0123456789abcdef0123456789abcdef\"]";

async fn started(idp: &FakeIdp, file: &ConfigFile, extra: &str) -> Authz {
    let text = yaml(idp, ONE_KEY, extra);
    file.write(&text);
    Authz::start_with_yaml(&text, SwitchableStore::memory(), true).await
}

async fn logged_in(idp: &FakeIdp, authz: &Authz) -> Browser {
    let mut browser = authz.browser();
    let done = browser.login(idp, "/anything").await;
    assert_eq!(done.status(), 302, "{done:?}");
    browser
}

async fn metrics(authz: &Authz) -> String {
    reqwest::get(format!("http://{}/metrics", authz.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

const EMAIL_HEADER: &str =
    "upstream_headers_claims: [email]\nupstream_headers_names: [x-user-email]";

#[tokio::test]
async fn a_header_and_a_policy_change_apply_to_the_next_check_and_sessions_stay() {
    let idp = FakeIdp::start().await;
    let file = ConfigFile::new("swap");
    let authz = started(&idp, &file, EMAIL_HEADER).await;
    let mut browser = logged_in(&idp, &authz).await;
    let page = browser.send(Req::navigate("/anything")).await;
    assert_eq!(page.upstream("x-user-email"), Some("alice@example.com"));
    let discoveries = idp.state.discoveries.load(Ordering::SeqCst);

    file.write(&yaml(
        &idp,
        ONE_KEY,
        "upstream_headers_claims: [email]\nupstream_headers_names: [x-mail]",
    ));
    let reloaded = authz.reloader.reload(Some(&file.path)).await.unwrap();
    assert!(reloaded.needs_restart.is_empty(), "{reloaded:?}");
    assert!(
        reloaded.new_idp_clients.is_empty(),
        "IdP client kept: {reloaded:?}"
    );
    let page = browser.send(Req::navigate("/anything")).await;
    assert_eq!(page.status(), 200, "the session survives: {page:?}");
    assert_eq!(page.upstream("x-mail"), Some("alice@example.com"));
    assert_eq!(page.upstream("x-user-email"), None);

    file.write(&yaml(&idp, ONE_KEY, "groups_required: [finance]"));
    authz.reloader.reload(Some(&file.path)).await.unwrap();
    let page = browser.send(Req::navigate("/anything")).await;
    assert_eq!(page.status(), 403, "alice is not in finance: {page:?}");

    assert_eq!(
        idp.state.discoveries.load(Ordering::SeqCst),
        discoveries,
        "no rediscovery for an unchanged IdP client"
    );
    let text = metrics(&authz).await;
    assert!(
        text.lines()
            .any(|l| l == "oidc_authz_config_reloads_total{result=\"ok\"} 2"),
        "{text}"
    );
    authz.stop().await;
}

#[tokio::test]
async fn a_check_in_flight_finishes_under_the_config_it_started_with() {
    let idp = FakeIdp::start().await;
    idp.state.expires_in.store(60, Ordering::SeqCst);
    let clock = ManualClock::new(now());
    let file = ConfigFile::new("in-flight");
    file.write(&yaml(&idp, ONE_KEY, EMAIL_HEADER));
    let store = SwitchableStore::memory();
    let authz = Authz::start_with_clock(&idp, EMAIL_HEADER, store, Arc::new(clock.clone())).await;
    let mut browser = logged_in(&idp, &authz).await;
    // The access token expires: the next Check waits for a refresh the IdP holds.
    idp.hold_refreshes();
    clock.advance(61);
    let mut tab = browser.clone();
    let in_flight = tokio::spawn(async move { tab.send(Req::navigate("/anything")).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while idp.refresh_requests() == 0 {
        assert!(Instant::now() < deadline, "the Check asks for a refresh");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    file.write(&yaml(
        &idp,
        ONE_KEY,
        "upstream_headers_claims: [email]\nupstream_headers_names: [x-mail]",
    ));
    authz.reloader.reload(Some(&file.path)).await.unwrap();
    idp.release_refreshes();
    let finished = in_flight.await.unwrap();
    assert_eq!(finished.status(), 200, "{finished:?}");
    assert_eq!(finished.upstream("x-user-email"), Some("alice@example.com"));
    assert_eq!(finished.upstream("x-mail"), None);
    let next = browser.send(Req::navigate("/anything")).await;
    assert_eq!(next.upstream("x-mail"), Some("alice@example.com"));
    authz.stop().await;
}

#[tokio::test]
async fn a_bad_config_is_refused_with_every_problem_and_the_old_one_keeps_serving() {
    let idp = FakeIdp::start().await;
    let file = ConfigFile::new("bad");
    let authz = started(&idp, &file, EMAIL_HEADER).await;
    let mut browser = logged_in(&idp, &authz).await;

    // Two problems, both reported with their key paths.
    file.write(&yaml(
        &idp,
        "[too-short]",
        "upstream_headers_claims: [email]\nupstream_headers_names: [x_mail]",
    ));
    let refused = authz.reloader.reload(Some(&file.path)).await.unwrap_err();
    assert_eq!(refused.problems.len(), 2, "{:?}", refused.problems);
    assert!(
        refused
            .problems
            .iter()
            .any(|p| p.contains("session_secret")),
        "{:?}",
        refused.problems
    );
    assert!(
        refused
            .problems
            .iter()
            .any(|p| p.contains("upstream_headers_names")),
        "{:?}",
        refused.problems
    );
    // Not YAML at all, and no file: refused too.
    file.write("issuer: [unclosed\n");
    assert!(authz.reloader.reload(Some(&file.path)).await.is_err());
    let missing = file.dir.join("missing.yaml");
    assert!(authz.reloader.reload(Some(&missing)).await.is_err());

    let page = browser.send(Req::navigate("/anything")).await;
    assert_eq!(page.status(), 200, "{page:?}");
    assert_eq!(page.upstream("x-user-email"), Some("alice@example.com"));
    let text = metrics(&authz).await;
    assert!(
        text.lines()
            .any(|l| l == "oidc_authz_config_reloads_total{result=\"refused\"} 3"),
        "{text}"
    );
    authz.stop().await;
}

#[tokio::test]
async fn a_changed_idp_client_is_discovered_before_the_swap_or_the_reload_is_refused() {
    let idp = FakeIdp::start().await;
    let file = ConfigFile::new("idp");
    let authz = started(&idp, &file, "").await;
    let mut browser = logged_in(&idp, &authz).await;

    // An issuer nobody answers at: refused, the old IdP client keeps serving.
    let closed_port = support::redis::free_port();
    let unreachable = yaml(&idp, ONE_KEY, "http_timeout: 1")
        .replace(&idp.issuer, &format!("http://127.0.0.1:{closed_port}"));
    file.write(&unreachable);
    let refused = authz.reloader.reload(Some(&file.path)).await.unwrap_err();
    assert!(
        refused.problems[0].contains("provider `default`"),
        "{:?}",
        refused.problems
    );
    assert_eq!(browser.send(Req::navigate("/anything")).await.status(), 200);

    // A new client secret: a new IdP client, discovered before it serves; logins use it.
    let discoveries = idp.state.discoveries.load(Ordering::SeqCst);
    file.write(&yaml(&idp, ONE_KEY, "").replace(idp::CLIENT_SECRET, "a-rotated-secret"));
    let reloaded = authz.reloader.reload(Some(&file.path)).await.unwrap();
    assert_eq!(reloaded.new_idp_clients, vec!["default".to_owned()]);
    assert_eq!(
        idp.state.discoveries.load(Ordering::SeqCst),
        discoveries + 1
    );
    let mut newcomer = authz.browser();
    let callback = newcomer.login(&idp, "/anything").await;
    assert_ne!(
        callback.status(),
        302,
        "the IdP refuses the code exchange with the new secret: {callback:?}"
    );
    authz.stop().await;
}

#[tokio::test]
async fn sessions_survive_a_key_rotation_done_by_reload() {
    assert!(KEY_A.starts_with("key-a") && KEY_B.starts_with("key-b"));
    let idp = FakeIdp::start().await;
    let file = ConfigFile::new("keys");
    let authz = started(&idp, &file, "").await;
    let mut returning = logged_in(&idp, &authz).await;
    let mut away = logged_in(&idp, &authz).await;
    let cookie_before = returning.cookies["session"].clone();

    // New key first, old key still listed: the old cookie works and is re-signed.
    file.write(&yaml(&idp, &format!("[{KEY_B}, {KEY_A}]"), ""));
    authz.reloader.reload(Some(&file.path)).await.unwrap();
    let outcome = returning.send(Req::navigate("/")).await;
    assert_eq!(outcome.status(), 200, "{outcome:?}");
    assert_ne!(
        returning.cookies["session"], cookie_before,
        "cookie re-issued under the new key"
    );

    // Old key removed: the re-signed cookie still works, a cookie under the old key does not.
    file.write(&yaml(&idp, &format!("[{KEY_B}]"), ""));
    authz.reloader.reload(Some(&file.path)).await.unwrap();
    assert_eq!(returning.send(Req::navigate("/")).await.status(), 200);
    let outcome = away.send(Req::navigate("/")).await;
    assert_eq!(outcome.status(), 302, "a fresh login: {outcome:?}");
    authz.stop().await;
}

#[tokio::test]
async fn start_only_keys_are_reported_and_not_applied() {
    let idp = FakeIdp::start().await;
    let file = ConfigFile::new("listen");
    let authz = started(&idp, &file, "").await;
    let mut browser = logged_in(&idp, &authz).await;
    file.write(&yaml(
        &idp,
        ONE_KEY,
        "listen: 127.0.0.1:1\nadmin_listen: 127.0.0.1:2\nsession_storage: redis\nredis: { url: redis://127.0.0.1:3 }",
    ));
    let reloaded = authz.reloader.reload(Some(&file.path)).await.unwrap();
    assert_eq!(
        reloaded.needs_restart,
        vec!["listen", "admin_listen", "session_storage"]
    );
    // Same listener, same (memory) store: the session is still there.
    assert_eq!(browser.send(Req::navigate("/anything")).await.status(), 200);
    authz.stop().await;
}

/// An IdP address that accepts connections and closes them at once, counting them.
async fn counting_dead_idp() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (issuer, connections)
}

#[tokio::test]
async fn a_replaced_idp_client_stops_its_background_discovery() {
    let (dead_issuer, attempts) = counting_dead_idp().await;
    let idp = FakeIdp::start().await;
    let file = ConfigFile::new("abort");
    let at_start = yaml(&idp, ONE_KEY, "").replace(&idp.issuer, &dead_issuer);
    let (config, _) = load_from_str(&at_start, "t.yaml", Vec::new()).unwrap();
    let app = App::build(config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while attempts.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "discovery retries the dead IdP");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    file.write(&yaml(&idp, ONE_KEY, ""));
    let reloaded = app.reloader().reload(Some(&file.path)).await.unwrap();
    assert_eq!(reloaded.new_idp_clients, vec!["default".to_owned()]);
    let after_reload = attempts.load(Ordering::SeqCst);
    // Longer than the discovery backoff's cap: the old client would have asked again.
    tokio::time::sleep(DISCOVERY_BACKOFF_CAP + Duration::from_secs(1)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), after_reload);
}

/// Started while its IdP is down, then reloaded with a reachable one: health follows the
/// new default provider.
#[tokio::test]
async fn health_turns_serving_when_a_reload_brings_a_discovered_default_provider() {
    let (dead_issuer, _) = counting_dead_idp().await;
    let idp = FakeIdp::start().await;
    let file = ConfigFile::new("health");
    let at_start = yaml(&idp, ONE_KEY, "").replace(&idp.issuer, &dead_issuer);
    let authz = Authz::start_discovering(
        &at_start,
        SwitchableStore::memory(),
        &[],
        true,
        Arc::new(SystemClock),
        None,
    )
    .await;
    let health = || async {
        authz
            .health_client()
            .check(HealthCheckRequest {
                service: "envoy.service.auth.v3.Authorization".into(),
            })
            .await
            .expect("the health service answers")
            .into_inner()
            .status()
    };
    assert_eq!(health().await, ServingStatus::NotServing);

    file.write(&yaml(&idp, ONE_KEY, ""));
    authz.reloader.reload(Some(&file.path)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while health().await != ServingStatus::Serving {
        assert!(
            Instant::now() < deadline,
            "still NOT_SERVING after the reload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    authz.stop().await;
}

/// `GET url` until `accept` takes the body, within 20 s.
async fn poll_until(url: &str, accept: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(response) = reqwest::get(url).await {
            last = response.text().await.unwrap_or_default();
            if accept(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never gave the expected answer; last:\n{last}");
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_binary_and_a_bad_config_is_logged_and_refused() {
    let idp = FakeIdp::start().await;
    let file = ConfigFile::new("binary");
    let admin_port = support::redis::free_port();
    let grpc_port = support::redis::free_port();
    let listeners = format!("listen: 127.0.0.1:{grpc_port}\nadmin_listen: 127.0.0.1:{admin_port}");
    file.write(&yaml(&idp, ONE_KEY, &listeners));
    let log = file.dir.join("oidc-authz.log");
    let running = RunningBinary::start_logging_to(&file.path, std::fs::File::create(&log).unwrap());
    let metrics_url = format!("http://127.0.0.1:{admin_port}/metrics");
    let readyz = format!("http://127.0.0.1:{admin_port}/readyz");
    poll_until(&readyz, |body| body.starts_with("ready")).await;

    running.signal("HUP");
    poll_until(&metrics_url, |body| {
        body.contains("oidc_authz_config_reloads_total{result=\"ok\"} 1")
    })
    .await;

    file.write(&yaml(&idp, "[too-short]", &listeners));
    running.signal("HUP");
    poll_until(&metrics_url, |body| {
        body.contains("oidc_authz_config_reloads_total{result=\"refused\"} 1")
    })
    .await;
    let text = log_of(&log);
    assert!(
        text.lines()
            .any(|l| l.contains("config reload refused") && l.contains("session_secret")),
        "{text}"
    );
    assert!(!text.contains("too-short"), "no secret in the log:\n{text}");
    // Still serving after both signals.
    poll_until(&readyz, |body| body.starts_with("ready")).await;
    drop(running);
}
