//! The ext_authz `allowed_headers` list shipped in `envoy/envoy.yaml` is complete: every flow
//! (login start for a browser and for scripts, callback by query and by form_post, a valid
//! session, a refresh, logout same-origin and cross-site, back-channel and front-channel logout,
//! bearer tokens, trusted forwarded headers) gets the same answer from the real server whether the
//! Check carries every header a browser and Envoy send, or only the headers the list lets through.
//! The list is read from the shipped config, so the two cannot drift; every header in it that
//! changes a decision is shown to (dropping it changes an answer), and every header name the
//! source reads or the trace propagator extracts is shown to be listed.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use oidc_authz::clock::{Clock, ManualClock};
use opentelemetry::propagation::TextMapPropagator;
use serde_json::json;
use serde_yaml::Value;
use support::idp::{self, now};
use support::{Authz, FakeIdp, SwitchableStore};
use tonic::transport::Channel;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Headers the source reads that need not be listed: Envoy sends them some other way.
const SENT_BY_ENVOY_OTHERWISE: [(&str, &str); 3] = [
    (":authority", "CheckRequest http.host carries it"),
    ("host", "CheckRequest http.host carries it"),
    (
        "x-envoy-auth-partial-body",
        "Envoy adds it to the CheckRequest after the allowed_headers filter",
    ),
];

/// Listed headers that change no decision: they are only logged or continue a trace.
const FOR_LOGS_AND_TRACES: [&str; 3] = ["x-request-id", "traceparent", "tracestate"];

/// The `allowed_headers` patterns of the ext_authz filter in an Envoy config (all `exact`).
pub fn allowed_headers(envoy_yaml: &Value) -> Option<Vec<String>> {
    match envoy_yaml {
        Value::Mapping(map) => map.iter().find_map(|(key, child)| {
            if key.as_str() == Some("allowed_headers") {
                let patterns = child.get("patterns")?.as_sequence()?;
                Some(
                    patterns
                        .iter()
                        .map(|pattern| pattern["exact"].as_str().unwrap().to_owned())
                        .collect(),
                )
            } else {
                allowed_headers(child)
            }
        }),
        Value::Sequence(items) => items.iter().find_map(allowed_headers),
        _ => None,
    }
}

fn shipped_list() -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("envoy/envoy.yaml")).unwrap();
    allowed_headers(&serde_yaml::from_str(&text).unwrap())
        .expect("envoy/envoy.yaml sets allowed_headers on its ext_authz filter")
}

/// Which request headers reach the Check: all of them (no `allowed_headers`), or those listed.
#[derive(Clone)]
enum Filter {
    Everything,
    Only(Vec<String>),
}

impl Filter {
    fn keeps(&self, name: &str) -> bool {
        match self {
            Filter::Everything => true,
            Filter::Only(list) => list.iter().any(|allowed| allowed == name),
        }
    }
}

/// What a desktop Chromium sends with every request, and what Envoy adds in front of us.
fn common_headers(host: &str, method: &str, path: &str) -> Vec<(String, String)> {
    [
        (":authority", host),
        (":method", method),
        (":path", path),
        (":scheme", "http"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
        ("accept-language", "en-GB,en;q=0.9,fr;q=0.8"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("sec-ch-ua", "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\""),
        ("sec-ch-ua-mobile", "?0"),
        ("sec-ch-ua-platform", "\"Linux\""),
        ("priority", "u=0, i"),
        ("x-forwarded-for", "192.0.2.7"),
        ("x-request-id", "5b2f0c0e-8d7a-4b8e-9c1d-2f3a4b5c6d7e"),
        ("x-envoy-expected-rq-timeout-ms", "10000"),
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// How a request was made: each sends what a real client of that kind sends.
#[derive(Clone, Copy)]
enum Sender {
    /// The address bar, a link (`site`: none, same-origin, cross-site).
    Navigate(&'static str),
    /// `fetch()` from one of our pages.
    Fetch,
    /// `XMLHttpRequest` from a library that marks it, in a browser without `Sec-Fetch-*`.
    LegacyXhr,
    /// curl or an API client.
    ApiClient,
    /// A form POST (`site`), with `Origin`.
    FormPost(&'static str),
    /// A form POST from a browser that sends `Origin` but no `Sec-Fetch-*`.
    OldBrowserFormPost,
    /// The IdP's server (back-channel logout).
    IdpServer,
    /// The IdP's logout page loading us in an iframe.
    IdpIframe,
}

fn sender_headers(sender: Sender, origin: &str) -> Vec<(&'static str, String)> {
    let navigate = |site: &str| {
        vec![
            ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8".to_owned()),
            ("upgrade-insecure-requests", "1".to_owned()),
            ("sec-fetch-site", site.to_owned()),
            ("sec-fetch-mode", "navigate".to_owned()),
            ("sec-fetch-user", "?1".to_owned()),
            ("sec-fetch-dest", "document".to_owned()),
            ("cache-control", "max-age=0".to_owned()),
        ]
    };
    let form = "application/x-www-form-urlencoded".to_owned();
    match sender {
        Sender::Navigate(site) => {
            let mut headers = navigate(site);
            if site != "none" {
                headers.push(("referer", format!("{origin}/home")));
            }
            headers
        }
        Sender::Fetch => vec![
            ("accept", "*/*".to_owned()),
            ("sec-fetch-site", "same-origin".to_owned()),
            ("sec-fetch-mode", "cors".to_owned()),
            ("sec-fetch-dest", "empty".to_owned()),
            ("referer", format!("{origin}/home")),
        ],
        Sender::LegacyXhr => vec![
            ("accept", "*/*".to_owned()),
            ("x-requested-with", "XMLHttpRequest".to_owned()),
            ("referer", format!("{origin}/home")),
        ],
        Sender::ApiClient => vec![("accept", "application/json".to_owned())],
        Sender::FormPost(site) => {
            let mut headers = navigate(site);
            let from = if site == "same-origin" {
                origin
            } else {
                "http://idp.invalid"
            };
            headers.push(("origin", from.to_owned()));
            headers.push(("content-type", form));
            headers.push(("content-length", "64".to_owned()));
            headers
        }
        Sender::OldBrowserFormPost => vec![
            ("accept", "text/html,application/xhtml+xml".to_owned()),
            ("origin", origin.to_owned()),
            ("referer", format!("{origin}/home")),
            ("content-type", form),
        ],
        Sender::IdpServer => vec![("accept", "*/*".to_owned()), ("content-type", form)],
        Sender::IdpIframe => vec![
            ("accept", "text/html".to_owned()),
            ("sec-fetch-site", "cross-site".to_owned()),
            ("sec-fetch-mode", "navigate".to_owned()),
            ("sec-fetch-dest", "iframe".to_owned()),
            ("referer", format!("{origin}/logout")),
        ],
    }
}

/// Where Envoy runs and what the proxy in front of it says (trusted forwarded headers).
#[derive(Clone, Copy)]
struct Edge {
    /// `Host` as Envoy sees it.
    host: &'static str,
    /// `X-Forwarded-Proto` / `X-Forwarded-Host` set by a load balancer in front of Envoy.
    forwarded: Option<(&'static str, &'static str)>,
}

impl Edge {
    /// The origin the browser uses.
    fn origin(&self) -> String {
        match self.forwarded {
            Some((proto, host)) => format!("{proto}://{host}"),
            None => format!("http://{}", self.host),
        }
    }
}

/// A browser, script or IdP sending Checks to one oidc-authz, with the filter applied.
struct Client {
    grpc: AuthorizationClient<Channel>,
    cookies: BTreeMap<String, String>,
    edge: Edge,
    filter: Filter,
}

struct Step<'a> {
    method: &'a str,
    path: &'a str,
    sender: Sender,
    body: &'a str,
    policy: Option<&'a str>,
    /// Headers of this request alone (`authorization`).
    extra: Vec<(&'a str, String)>,
}

impl<'a> Step<'a> {
    fn get(path: &'a str, sender: Sender) -> Self {
        Step {
            method: "GET",
            path,
            sender,
            body: "",
            policy: None,
            extra: Vec::new(),
        }
    }

    fn post(path: &'a str, sender: Sender, body: &'a str) -> Self {
        Step {
            method: "POST",
            body,
            ..Step::get(path, sender)
        }
    }
}

/// One answer: what must be the same with and without the filter, and the raw `Location` to
/// follow.
struct Answer {
    transcript: String,
    location: Option<String>,
}

impl Client {
    async fn new(authz: &Authz, edge: Edge, filter: &Filter) -> Client {
        let grpc = AuthorizationClient::connect(format!("http://{}", authz.addr))
            .await
            .unwrap();
        Client {
            grpc,
            cookies: BTreeMap::new(),
            edge,
            filter: filter.clone(),
        }
    }

    /// Every header the request has before Envoy's filter.
    fn all_headers(&self, step: &Step<'_>) -> Vec<(String, String)> {
        let origin = self.edge.origin();
        let mut headers = common_headers(self.edge.host, step.method, step.path);
        headers.extend(
            sender_headers(step.sender, &origin)
                .into_iter()
                .chain(
                    step.extra
                        .iter()
                        .map(|(name, value)| (*name, value.clone())),
                )
                .map(|(name, value)| (name.to_owned(), value)),
        );
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            headers.push(("cookie".into(), jar.join("; ")));
        }
        // Envoy (use_remote_address) appends the downstream scheme; a trusted load balancer in
        // front says what the browser used, and Envoy keeps it (xff_num_trusted_hops).
        match self.edge.forwarded {
            Some((proto, host)) => {
                headers.push(("x-forwarded-proto".into(), proto.into()));
                headers.push(("x-forwarded-host".into(), host.into()));
            }
            None => headers.push(("x-forwarded-proto".into(), "http".into())),
        }
        headers
    }

    /// Sends one Check as Envoy would build it and stores the cookies it sets.
    async fn send(&mut self, step: Step<'_>, issuer: &str) -> Answer {
        let headers: HashMap<String, String> = self
            .all_headers(&step)
            .into_iter()
            .filter(|(name, _)| self.filter.keeps(name))
            .collect();
        let check = CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(HttpRequest {
                        method: step.method.into(),
                        path: step.path.into(),
                        host: self.edge.host.into(),
                        scheme: "http".into(),
                        protocol: "HTTP/1.1".into(),
                        headers,
                        body: step.body.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                context_extensions: step
                    .policy
                    .map(|name| ("policy".to_owned(), name.to_owned()))
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
        };
        let answer = match self.grpc.check(check).await {
            Ok(answer) => answer.into_inner(),
            Err(status) => {
                return Answer {
                    transcript: format!("error {:?}", status.code()),
                    location: None,
                };
            }
        };
        let mut lines = Vec::new();
        let mut set_cookies = Vec::new();
        let mut location = None;
        let mut header_line = |prefix: &str, option: &HeaderValueOption| {
            let header = option.header.as_ref().unwrap();
            if header.key.eq_ignore_ascii_case("set-cookie") {
                set_cookies.push(header.value.clone());
            }
            if header.key.eq_ignore_ascii_case("location") {
                location = Some(header.value.clone());
            }
            #[allow(deprecated)] // Envoy still reads the legacy flag; it must say "overwrite".
            let append = option.append.map(|flag| flag.value);
            lines.push(format!(
                "{prefix} {}: {} (append {append:?}, action {})",
                header.key,
                masked(&header.key, &header.value, issuer),
                option.append_action
            ));
        };
        match answer.http_response {
            Some(HttpResponse::OkResponse(ok)) => {
                header_line_all(&mut header_line, "upstream", &ok.headers);
                header_line_all(&mut header_line, "response", &ok.response_headers_to_add);
                lines.insert(0, "allowed".into());
                lines.push(format!("removed {:?}", ok.headers_to_remove));
            }
            Some(HttpResponse::DeniedResponse(denied)) => {
                header_line_all(&mut header_line, "header", &denied.headers);
                lines.insert(
                    0,
                    format!("denied {:?}", denied.status.map(|status| status.code)),
                );
                lines.push(format!("body {}", masked("body", &denied.body, issuer)));
            }
            other => panic!("unexpected Check answer {other:?}"),
        }
        for cookie in set_cookies {
            self.store_cookie(&cookie);
        }
        Answer {
            transcript: lines.join("\n"),
            location,
        }
    }

    fn store_cookie(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let (name, value) = parts.next().unwrap().split_once('=').unwrap();
        let expired = parts.any(|attribute| attribute.trim() == "Max-Age=0");
        if expired || value.is_empty() {
            self.cookies.remove(name.trim());
        } else {
            self.cookies
                .insert(name.trim().to_owned(), value.to_owned());
        }
    }
}

fn header_line_all(
    header_line: &mut impl FnMut(&str, &HeaderValueOption),
    prefix: &str,
    options: &[HeaderValueOption],
) {
    for option in options {
        header_line(prefix, option);
    }
}

/// The value with what two runs cannot share masked: the IdP's address, the values of our
/// cookies, `state`/`nonce`/`code_challenge`, and JWTs (signed at a different second or key).
fn masked(name: &str, value: &str, issuer: &str) -> String {
    let value = value.replace(issuer, "{issuer}");
    if name.eq_ignore_ascii_case("set-cookie") {
        let (pair, attributes) = value.split_once(';').unwrap_or((&value, ""));
        let (cookie, content) = pair.split_once('=').unwrap();
        let content = if content.is_empty() { "" } else { "*" };
        return format!("{cookie}={content};{attributes}");
    }
    if name.eq_ignore_ascii_case("location")
        && let Ok(mut url) = url::Url::parse(&value.replace("{issuer}", "http://idp.invalid"))
    {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let random = ["state", "nonce", "code_challenge", "id_token_hint"];
                let value = if random.contains(&key.as_ref()) {
                    "*".into()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        if !pairs.is_empty() {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return url.to_string();
    }
    value
        .split(' ')
        .map(|word| {
            let looks_like_jwt = word.starts_with("ey") && word.matches('.').count() == 2;
            if looks_like_jwt { "{jwt}" } else { word }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One world: an IdP, an oidc-authz on a manual clock, and the transcript of what it answered.
struct World {
    idp: FakeIdp,
    authz: Authz,
    clock: ManualClock,
    edge: Edge,
    filter: Filter,
    lines: Vec<String>,
}

impl World {
    async fn start(config: &str, edge: Edge, filter: &Filter) -> World {
        let idp = FakeIdp::start().await;
        let clock = ManualClock::new(now());
        let authz = Authz::start_with_clock(
            &idp,
            config,
            SwitchableStore::memory(),
            Arc::new(clock.clone()),
        )
        .await;
        World {
            idp,
            authz,
            clock,
            edge,
            filter: filter.clone(),
            lines: Vec::new(),
        }
    }

    async fn client(&self) -> Client {
        Client::new(&self.authz, self.edge, &self.filter).await
    }

    /// Sends `step` from `client` and writes the answer into the transcript under `label`.
    async fn send(&mut self, label: &str, client: &mut Client, step: Step<'_>) -> Answer {
        let answer = client.send(step, &self.idp.issuer).await;
        self.lines
            .push(format!("## {label}\n{}", answer.transcript));
        answer
    }

    /// A page load, the IdP's login, and the callback (by query or form_post, as configured).
    async fn login(&mut self, label: &str, browser: &mut Client) {
        let start = self
            .send(
                &format!("{label}: start"),
                browser,
                Step::get("/anything?x=1", Sender::Navigate("none")),
            )
            .await;
        let Some(location) = start.location.filter(|l| l.starts_with(&self.idp.issuer)) else {
            return; // No login started: the transcript shows what happened instead.
        };
        let authorization = self.idp.authorize(&location);
        let params = form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &authorization.code)
            .append_pair("state", &authorization.state)
            .finish();
        let callback = url::Url::parse(&authorization.redirect_uri).unwrap();
        let label = format!("{label}: callback");
        if authorization.form_post {
            let step = Step::post(callback.path(), Sender::FormPost("cross-site"), &params);
            self.send(&label, browser, step).await;
        } else {
            let path = format!("{}?{params}", callback.path());
            let step = Step::get(&path, Sender::Navigate("cross-site"));
            self.send(&label, browser, step).await;
        }
    }

    async fn stop(self) -> Vec<String> {
        self.authz.stop().await;
        self.lines
    }
}

const QUERY_MODE: &str = "\
logout_path: /logout
backchannel_logout_path: /backchannel-logout
frontchannel_logout_path: /frontchannel-logout
policies:
  api: { auth_methods: [bearer], audience_required: [orders-api] }
";

const DIRECT: Edge = Edge {
    host: "app.test",
    forwarded: None,
};

/// Behind a load balancer that terminates TLS: the browser uses https://app.example.
const FORM_POST_BEHIND_A_PROXY: &str = "\
response_mode: form_post
trust_forwarded_headers: true
logout_path: /logout
";

const BEHIND_A_PROXY: Edge = Edge {
    host: "internal:8000",
    forwarded: Some(("https", "app.example")),
};

/// Every flow of the query-mode config: scripts, login, session, refresh, bearer, the logouts.
async fn query_mode_flows(filter: &Filter) -> Vec<String> {
    let mut world = World::start(QUERY_MODE, DIRECT, filter).await;
    let mut script = world.client().await;
    for (label, sender) in [
        ("fetch() gets 401", Sender::Fetch),
        ("legacy XMLHttpRequest gets 401", Sender::LegacyXhr),
        ("API client gets 401", Sender::ApiClient),
    ] {
        world
            .send(label, &mut script, Step::get("/data.json", sender))
            .await;
    }

    let mut browser = world.client().await;
    browser.cookies.insert("theme".into(), "dark".into());
    world.login("login", &mut browser).await;
    let page = Step::get("/anything", Sender::Navigate("same-origin"));
    world.send("session", &mut browser, page).await;
    world.clock.advance(290); // the access token (300 s) is within refresh_margin (30 s)
    let page = Step::get("/anything", Sender::Navigate("same-origin"));
    world.send("refresh due", &mut browser, page).await;

    let token = world.idp.sign(&json!({
        "iss": world.idp.issuer, "sub": "service-7", "aud": ["orders-api"],
        "iat": now(), "exp": now() + 300, "client_id": idp::CLIENT_ID,
    }));
    let mut api = Step::get("/orders", Sender::ApiClient);
    api.policy = Some("api");
    api.extra.push(("authorization", format!("Bearer {token}")));
    world.send("bearer token", &mut script, api).await;

    let logout = Step::get("/logout", Sender::Navigate("cross-site"));
    world
        .send("logout from another site", &mut browser, logout)
        .await;
    let logout = Step::get("/logout", Sender::Navigate("same-origin"));
    world
        .send("logout GET same-origin", &mut browser, logout)
        .await;
    world.login("login again", &mut browser).await;
    let logout = Step::post("/logout", Sender::OldBrowserFormPost, "");
    world
        .send("logout POST, Origin only", &mut browser, logout)
        .await;

    world.login("login for back-channel", &mut browser).await;
    let mut idp_server = world.client().await;
    // Signed at the world's (advanced) time: the IdP's helper signs at the wall clock's.
    let issued = world.clock.now_unix();
    let logout_token = world.idp.sign(&json!({
        "iss": world.idp.issuer, "aud": idp::CLIENT_ID, "iat": issued, "exp": issued + 120,
        "jti": "jti-1", "sid": "idp-session-1",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}}
    }));
    let body = format!("logout_token={logout_token}");
    let backchannel = Step::post("/backchannel-logout", Sender::IdpServer, &body);
    world
        .send("back-channel logout", &mut idp_server, backchannel)
        .await;
    let page = Step::get("/anything", Sender::Navigate("same-origin"));
    world.send("after back-channel", &mut browser, page).await;

    world.login("login for front-channel", &mut browser).await;
    let mut iframe = world.client().await;
    let path = format!(
        "/frontchannel-logout?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("iss", &world.idp.issuer)
            .append_pair("sid", "idp-session-1")
            .finish()
    );
    let frontchannel = Step::get(&path, Sender::IdpIframe);
    world
        .send("front-channel logout", &mut iframe, frontchannel)
        .await;
    let page = Step::get("/anything", Sender::Navigate("same-origin"));
    world.send("after front-channel", &mut browser, page).await;
    world.stop().await
}

/// form_post callbacks behind a TLS-terminating proxy whose forwarded headers are trusted.
async fn form_post_flows(filter: &Filter) -> Vec<String> {
    let mut world = World::start(FORM_POST_BEHIND_A_PROXY, BEHIND_A_PROXY, filter).await;
    let mut browser = world.client().await;
    world.login("form_post login", &mut browser).await;
    let page = Step::get("/anything", Sender::Navigate("same-origin"));
    world.send("session", &mut browser, page).await;
    let logout = Step::post("/logout", Sender::FormPost("same-origin"), "");
    world
        .send("logout POST same-origin", &mut browser, logout)
        .await;
    world.stop().await
}

async fn all_flows(filter: &Filter) -> Vec<String> {
    let mut lines = query_mode_flows(filter).await;
    lines.extend(form_post_flows(filter).await);
    lines
}

/// The first step whose answer differs, for a readable failure.
fn first_difference(full: &[String], filtered: &[String]) -> Option<String> {
    let differs = full
        .iter()
        .zip(filtered)
        .find(|(a, b)| a != b)
        .map(|(a, b)| format!("with every header:\n{a}\n\nwith allowed_headers only:\n{b}"));
    differs.or_else(|| {
        (full.len() != filtered.len())
            .then(|| format!("{} steps vs {} steps", full.len(), filtered.len()))
    })
}

#[tokio::test]
async fn the_shipped_allowed_headers_change_no_answer_of_any_flow() {
    let full = all_flows(&Filter::Everything).await;
    // The flows did what they claim with every header, so that agreement below means something.
    for (label, expected) in [
        ("fetch() gets 401", "denied Some(401)"),
        ("legacy XMLHttpRequest gets 401", "denied Some(401)"),
        ("API client gets 401", "denied Some(401)"),
        ("login: start", "location: http://idp.invalid/authorize?"),
        ("login: callback", "location: /anything?x=1"),
        ("session", "upstream cookie: theme=dark"),
        ("session", "upstream authorization: Bearer at-1"),
        ("refresh due", "upstream authorization: Bearer at-2"),
        ("bearer token", "allowed"),
        ("logout from another site", "Log out?"),
        (
            "logout GET same-origin",
            "location: http://idp.invalid/session/end?",
        ),
        ("logout POST, Origin only", "denied Some(303)"),
        ("back-channel logout", "denied Some(200)"),
        (
            "after back-channel",
            "location: http://idp.invalid/authorize?",
        ),
        ("front-channel logout", "denied Some(200)"),
        (
            "after front-channel",
            "location: http://idp.invalid/authorize?",
        ),
        (
            "form_post login: start",
            "redirect_uri=https%3A%2F%2Fapp.example%2Fcallback",
        ),
        ("form_post login: start", "response_mode=form_post"),
        ("form_post login: callback", "set-cookie: __Host-session=*;"),
        ("logout POST same-origin", "denied Some(303)"),
    ] {
        let heading = format!("## {label}\n");
        let step = full
            .iter()
            .find(|step| step.starts_with(&heading))
            .unwrap_or_else(|| panic!("no step {label:?} in:\n{}", full.join("\n")));
        assert!(step.contains(expected), "{expected:?} not in:\n{step}");
    }
    let filtered = all_flows(&Filter::Only(shipped_list())).await;
    if let Some(difference) = first_difference(&full, &filtered) {
        panic!("allowed_headers in envoy/envoy.yaml changes an answer:\n{difference}");
    }
}

#[tokio::test]
async fn every_listed_header_that_decides_something_is_needed() {
    let list = shipped_list();
    let full = all_flows(&Filter::Only(list.clone())).await;
    for dropped in list
        .iter()
        .filter(|name| !FOR_LOGS_AND_TRACES.contains(&name.as_str()))
    {
        let without: Vec<String> = list
            .iter()
            .filter(|name| *name != dropped)
            .cloned()
            .collect();
        let answers = all_flows(&Filter::Only(without)).await;
        assert!(
            first_difference(&full, &answers).is_some(),
            "`{dropped}` is listed in allowed_headers but no flow here needs it: add the flow \
             that reads it, or list it in FOR_LOGS_AND_TRACES with its reason"
        );
    }
}

/// Every header name the source reads by literal (`header("…")`, `forwarded("…")`,
/// `.get("…")` in the modules that read requests) and every field the trace propagator
/// extracts is listed, or named in `SENT_BY_ENVOY_OTHERWISE`.
#[test]
fn every_header_the_source_reads_is_listed() {
    let list = shipped_list();
    let mut read = Vec::new();
    for relative in ["src/flow", "src/authz", "src/telemetry", "src/gateway.rs"] {
        header_literals(&Path::new(ROOT).join(relative), &mut read);
    }
    assert!(
        read.iter().any(|name| name == "cookie") && read.iter().any(|name| name == "x-request-id"),
        "the source scan finds the reads it must: {read:?}"
    );
    let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    read.extend(propagator.fields().map(str::to_owned));
    for name in read {
        let excused = SENT_BY_ENVOY_OTHERWISE.iter().any(|(n, _)| *n == name);
        assert!(
            excused || list.contains(&name),
            "the source reads request header `{name}`, which envoy/envoy.yaml's allowed_headers does not send"
        );
    }
    for listed in &list {
        assert_eq!(
            listed,
            &listed.to_ascii_lowercase(),
            "Envoy matches lower-case names"
        );
    }
}

/// Lower-case header-like literals passed to `header(`, `forwarded(` or `.get(` under `path`.
fn header_literals(path: &Path, found: &mut Vec<String>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            header_literals(&entry.unwrap().path(), found);
        }
        return;
    }
    let text = std::fs::read_to_string(path).unwrap();
    // Unit tests below `#[cfg(test)]` build requests; they do not read them.
    let code = text.split("#[cfg(test)]").next().unwrap();
    for opener in ["header(\"", "forwarded(\"", ".get(\""] {
        for (index, _) in code.match_indices(opener) {
            // `.get("…")` counts on a header map only (`headers.get`, `headers\n.get`).
            if opener == ".get(\"" && !code[..index].trim_end().ends_with("headers") {
                continue;
            }
            let rest = &code[index + opener.len()..];
            let name = &rest[..rest.find('"').unwrap()];
            let header_like = !name.is_empty()
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b':'
                });
            if header_like && !found.iter().any(|known| known == name) {
                found.push(name.to_owned());
            }
        }
    }
}
