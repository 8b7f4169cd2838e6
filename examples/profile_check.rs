//! N session-path Checks through the Envoy adapter, in-process, for `scripts/profile` (callgrind
//! instruction counts or `perf`): the session and the `CheckRequest` of `benches/check.rs`, logs
//! set up as the binary sets them with traces off (text, `info`, to stderr). The Checks run inside
//! `run_checks`, so a profiler can count them alone (`--toggle-collect=*run_checks*`).
//! `PROFILE_STORE=cached` puts the session cache in front of the store (the hot path with Redis:
//! every Check after the first a cache hit); `memory` (the default) opens the sealed record on
//! every Check, as with `storage: memory`.
//!
//! Run: `PROFILE_STORE=cached cargo run --release --example profile_check -- 2000 2>/dev/null`

#[path = "../benches/support/session_path.rs"]
mod session_path;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use oidc_authz::config::{LogFormat, OtelSettings};
use session_path::{Setup, Store, check_request, setup_with};

const DEFAULT_CHECKS: usize = 2000;
/// Bounds the run: callgrind is about 50× slower than native.
const MAX_CHECKS: usize = 100_000;

fn main() -> Result<(), String> {
    let checks = match std::env::args().nth(1) {
        None => DEFAULT_CHECKS,
        Some(count) => count
            .parse::<usize>()
            .ok()
            .filter(|count| (1..=MAX_CHECKS).contains(count))
            .ok_or(format!("usage: profile_check [CHECKS, 1..={MAX_CHECKS}]"))?,
    };
    let store = match std::env::var("PROFILE_STORE").as_deref() {
        Err(_) | Ok("memory") => Store::Memory,
        Ok("cached") => Store::Cached,
        Ok(_) => return Err("PROFILE_STORE must be memory or cached".into()),
    };
    let _telemetry = oidc_authz::telemetry::init(LogFormat::Text, "info", &OtelSettings::default());
    let setup = setup_with(store);
    // Built before the measured part: Envoy's requests arrive decoded, not cloned.
    let requests: Vec<CheckRequest> = (0..checks)
        .map(|_| check_request(&setup.cookie_header))
        .collect();
    let allowed = run_checks(&setup, requests);
    if allowed != checks {
        return Err(format!("{allowed} of {checks} Checks were allowed"));
    }
    println!("{checks} session-path Checks allowed ({store:?} store)");
    Ok(())
}

/// The measured part; never inlined, so profilers can find it by name. Returns how many Checks
/// were allowed (all of them, or the numbers mean nothing).
#[inline(never)]
fn run_checks(setup: &Setup, requests: Vec<CheckRequest>) -> usize {
    setup.runtime.block_on(async {
        let mut allowed = 0;
        for request in requests {
            let response = setup
                .authz
                .check(tonic::Request::new(request))
                .await
                .map(tonic::Response::into_inner);
            if let Ok(response) = response
                && matches!(response.http_response, Some(HttpResponse::OkResponse(_)))
            {
                allowed += 1;
            }
        }
        allowed
    })
}
