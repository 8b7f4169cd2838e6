//! Whole Checks: arbitrary method, path (one of the configured steps, or arbitrary), query, body,
//! `Cookie` and other headers through `Flow::check` over the memory store with an instant IdP
//! stand-in. This is where the callback's query and form body, the logout and back-channel
//! bodies and the cookie jar are parsed. Flags let an input carry a real session cookie or a
//! real pending login (`state` and login cookie), so the fuzzer gets past the checks it cannot
//! guess. Any answer is fine; a panic is not.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use fuzz_harness::{CLIENT_ID, ISSUER, PATHS, flow_fixture, start_login};
use libfuzzer_sys::fuzz_target;
use oidc_authz::flow::RequestView;

#[derive(Arbitrary, Debug)]
struct Input {
    method: Method,
    /// An index into `PATHS`; past its end, `raw_path` is used.
    path_index: u8,
    raw_path: String,
    query: String,
    body: Vec<u8>,
    cookie: Option<String>,
    form_content_type: bool,
    headers: Vec<(String, String)>,
    with_session: bool,
    with_pending_login: bool,
    /// When set, the body is a back-channel logout carrying these claims (the fake IdP takes
    /// a logout token's JSON claims as verified), so the times and ids the flow stores get fuzzed.
    logout: Option<LogoutInput>,
}

#[derive(Arbitrary, Debug)]
struct LogoutInput {
    iat: i64,
    exp: Option<i64>,
    jti: String,
    sub: Option<String>,
    sid: Option<String>,
}

impl LogoutInput {
    fn form_body(&self) -> Vec<u8> {
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": CLIENT_ID, "iat": self.iat, "exp": self.exp,
            "jti": self.jti, "sub": self.sub, "sid": self.sid,
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("logout_token", &claims.to_string());
        form.finish().into_bytes()
    }
}

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Head,
    Other(String),
}

fuzz_target!(|input: Input| {
    let fixture = flow_fixture();
    fixture.runtime.block_on(async {
        let mut view = request(&input);
        if let Some(logout) = &input.logout {
            view.body = logout.form_body();
        }
        let mut cookies: Vec<String> = input.cookie.iter().cloned().collect();
        if input.with_session {
            cookies.push(fixture.session_cookie.clone());
        }
        if input.with_pending_login {
            let (state, login_cookie) = start_login(&fixture.flow).await;
            cookies.push(login_cookie);
            // First, so a fuzzed `state` later in the input can still replace it.
            let pair = format!("state={state}&");
            view.query.insert_str(0, &pair);
            view.body.splice(0..0, pair.into_bytes());
        }
        if !cookies.is_empty() {
            view.headers.insert("cookie".into(), cookies.join("; "));
        }
        let _ = fixture.flow.check(&view).await;
    });
});

fn request(input: &Input) -> RequestView {
    let method = match &input.method {
        Method::Get => "GET".to_owned(),
        Method::Post => "POST".to_owned(),
        Method::Head => "HEAD".to_owned(),
        Method::Other(other) => other.clone(),
    };
    let path = PATHS
        .get(usize::from(input.path_index))
        .map_or_else(|| input.raw_path.clone(), |path| (*path).to_owned());
    let mut headers: HashMap<String, String> = input
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .collect();
    if input.form_content_type {
        headers.insert(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        );
    }
    RequestView {
        method,
        scheme: "https".into(),
        host: "app.fuzz.example".into(),
        path,
        query: input.query.clone(),
        headers,
        body: input.body.clone(),
        policy_name: None,
    }
}
