//! Session-store outages (issue 13) against real `redis-server`s, through the real server: while
//! Redis is down every Check fails closed; connection attempts are paced (not one per Check); the
//! log says so about once a second, not once per Check; the first Check after Redis is back
//! succeeds within a fraction of a second; and a Sentinel whose master is down says so.

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::redis::{RedisSentinel, RedisServer, SentinelFailover};
use support::{Authz, Browser, FakeIdp, Outcome, Req};

/// How long each test keeps Redis down under load.
const OUTAGE: Duration = Duration::from_millis(1500);
/// Concurrent Check loops (browser tabs) during an outage.
const LOOPS: usize = 8;
/// The target is 0.2 s; a debug build on a busy 2-core machine gets some slack.
const RECOVERY_BOUND: Duration = Duration::from_millis(400);

/// Everything oidc-authz logs while the guard lives (this thread: `#[tokio::test]` runs the
/// server on it too).
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    fn start() -> (LogCapture, tracing::subscriber::DefaultGuard) {
        let capture = LogCapture::default();
        let writer = capture.clone();
        let subscriber = oidc_authz::telemetry::log_subscriber(
            oidc_authz::config::LogFormat::Text,
            tracing::Level::INFO,
            move || writer.clone(),
        );
        (capture, tracing::subscriber::set_default(subscriber))
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for LogCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `LOOPS` tabs sending Checks for `duration`; every answer must be a failure (fail closed).
async fn checks_while_down(browser: &Browser, duration: Duration) -> usize {
    let deadline = Instant::now() + duration;
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..LOOPS {
        let mut tab = browser.clone();
        loops.spawn(async move {
            let mut failed = 0;
            while Instant::now() < deadline {
                let outcome = tab.send(Req::navigate("/anything")).await;
                assert!(
                    matches!(outcome, Outcome::Error(_)),
                    "Redis is down, yet: {outcome:?}"
                );
                failed += 1;
            }
            failed
        });
    }
    loops.join_all().await.into_iter().sum()
}

/// Sends Checks from `LOOPS` tabs until one is decided (not an error); how long that took.
async fn time_to_first_decision(browser: &Browser) -> Duration {
    let started = Instant::now();
    let decided = Arc::new(AtomicBool::new(false));
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..LOOPS {
        let (mut tab, decided) = (browser.clone(), Arc::clone(&decided));
        loops.spawn(async move {
            while !decided.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(10) {
                if !matches!(
                    tab.send(Req::navigate("/anything")).await,
                    Outcome::Error(_)
                ) {
                    decided.store(true, Ordering::SeqCst);
                    return Some(started.elapsed());
                }
            }
            None
        });
    }
    loops
        .join_all()
        .await
        .into_iter()
        .flatten()
        .min()
        .expect("a Check was decided within 10 s of Redis' return")
}

/// A listener on the dead Redis' port that accepts and closes every connection, counting them:
/// how often oidc-authz tried to reconnect.
struct ConnectionCounter {
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl ConnectionCounter {
    fn start(port: u16) -> ConnectionCounter {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the dead Redis' port");
        listener.set_nonblocking(true).unwrap();
        let (accepted, stop) = (Arc::default(), Arc::<AtomicBool>::default());
        let thread = {
            let (accepted, stop): (Arc<AtomicUsize>, _) =
                (Arc::clone(&accepted), Arc::clone(&stop));
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            drop(stream);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
        };
        ConnectionCounter {
            accepted,
            stop,
            thread,
        }
    }

    fn finish(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn logged_in_on(redis: &RedisServer) -> (FakeIdp, Authz, Browser) {
    let idp = FakeIdp::start().await;
    let authz = Authz::start(&idp, "", redis.store("outage:")).await;
    let mut browser = authz.browser();
    let done = browser.login(&idp, "/anything").await;
    assert_eq!(done.status(), 302, "{done:?}");
    assert_eq!(browser.send(Req::navigate("/anything")).await.status(), 200);
    (idp, authz, browser)
}

/// At most one line a second per error kind, plus the "down" and "back" lines.
fn assert_quiet(lines: &[String], failed_checks: usize) {
    let bound = OUTAGE.as_secs() as usize + 4;
    assert!(
        lines.len() <= bound,
        "{} log lines for {failed_checks} failed Checks (at most {bound}):\n{}",
        lines.len(),
        lines.join("\n")
    );
}

#[tokio::test]
async fn a_killed_redis_fails_closed_quietly_with_paced_reconnects_and_is_used_as_soon_as_it_returns()
 {
    let redis = RedisServer::start();
    let (_idp, authz, browser) = logged_in_on(&redis).await;
    let (logs, _guard) = LogCapture::start();

    redis.stop();
    let counter = ConnectionCounter::start(redis.port);
    let failed = checks_while_down(&browser, OUTAGE).await;
    let attempts = counter.finish();
    assert!(
        attempts <= 40,
        "{attempts} connection attempts in {OUTAGE:?} for {failed} failed Checks"
    );
    assert_quiet(&logs.lines(), failed);
    let metrics = authz
        .flow
        .metrics()
        .render(&[oidc_authz::metrics::ProviderView::ready("default")]);
    assert!(
        metrics
            .lines()
            .any(|line| line
                == format!("oidc_authz_check_failures_total{{cause=\"store\"}} {failed}")),
        "{failed} failed Checks, counted as:\n{metrics}"
    );
    let read_errors = format!("oidc_authz_store_errors_total{{operation=\"read\"}} {failed}");
    assert!(
        metrics.lines().any(|line| line == read_errors),
        "{failed} failed Checks, store errors counted as:\n{metrics}"
    );

    redis.restart();
    let took = time_to_first_decision(&browser).await;
    eprintln!(
        "first decision {took:?} after Redis returned; {attempts} connection attempts, {failed} failed Checks"
    );
    assert!(
        took <= RECOVERY_BOUND,
        "first decision {took:?} after Redis returned"
    );
    authz.stop().await;
}

#[tokio::test]
async fn a_stopped_redis_fails_closed_quietly_and_is_used_as_soon_as_it_continues() {
    let redis = RedisServer::start();
    let (_idp, authz, browser) = logged_in_on(&redis).await;
    let (logs, _guard) = LogCapture::start();

    redis.signal("STOP");
    let failed = checks_while_down(&browser, OUTAGE).await;
    assert_quiet(&logs.lines(), failed);

    redis.signal("CONT");
    let took = time_to_first_decision(&browser).await;
    eprintln!("first decision {took:?} after Redis continued; {failed} failed Checks");
    assert!(
        took <= RECOVERY_BOUND,
        "first decision {took:?} after Redis continued"
    );
    assert_eq!(
        browser
            .clone()
            .send(Req::navigate("/anything"))
            .await
            .status(),
        200,
        "the session survived"
    );
    authz.stop().await;
}

#[tokio::test]
async fn a_sentinel_whose_master_is_down_says_the_master_is_unreachable() {
    let sentinel = RedisSentinel::start();
    let store = sentinel.store("outage:");
    store.ping().await.expect("the master answers");
    sentinel.master.stop();
    // The sentinel marks the master down after `down-after-milliseconds` (5 s); before that the
    // connection to it is refused.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        last = store.ping().await.expect_err("no master").to_string();
        assert!(
            !last.contains("not found in sentinel"),
            "misleading error: {last}"
        );
        if last.contains("no master reachable through the sentinels") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the error never said the master is unreachable; last: {last}");
}

#[tokio::test]
async fn a_stopped_sentinel_master_is_left_for_the_new_one_after_the_failover() {
    let setup = SentinelFailover::start();
    let store = setup.store("outage:");
    store.ping().await.expect("the master answers");
    // A hung master (not a dead one): the shared connection to it stays open and never answers.
    setup.master.signal("STOP");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut promoted_at = None;
    while Instant::now() < deadline {
        let answered = store.ping().await.is_ok();
        if promoted_at.is_none() && setup.current_master_port() == Some(setup.replica.port) {
            promoted_at = Some(Instant::now());
        }
        if answered {
            assert!(promoted_at.is_some(), "answered before any failover");
            setup.master.signal("CONT");
            return;
        }
        if let Some(promoted) = promoted_at {
            assert!(
                promoted.elapsed() < Duration::from_secs(3),
                "still no answer {:?} after the sentinel named the new master",
                promoted.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    setup.master.signal("CONT");
    panic!("no failover within 30 s (promoted: {promoted_at:?})");
}
