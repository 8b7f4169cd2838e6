//! `CheckRequest → RequestView` (`authz::request_view`) from arbitrary protobuf bytes, with and
//! without trusted forwarded headers, then the pure `RequestView` reads the flow makes of it:
//! return target (same-origin, bounded), browser-navigation test, host allow-list, cookies. Then
//! the whole adapter: the same request through `AuthzService::check` (flow and `Decision →
//! CheckResponse`) with a real flow over the memory store.
#![no_main]

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use fuzz_harness::flow_fixture;
use libfuzzer_sys::fuzz_target;
use oidc_authz::authz::request_view;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(check) = CheckRequest::decode(data) else {
        return;
    };
    for trusted in [false, true] {
        let view = request_view(check.clone(), trusted);
        for with_query in [false, true] {
            let target = view.local_target(with_query);
            assert!(
                target.starts_with('/') && !target.starts_with("//"),
                "{target}"
            );
            assert!(!target.starts_with("/\\") && target.len() <= 2048);
        }
        let _ = view.is_browser_navigation();
        let _ = view.host_is_allowed(&["app.example".to_owned()]);
        let _ = view.origin();
        let _ = view.cookies("__Host-session").count();
        let _ = format!("{view:?}");
    }
    let fixture = flow_fixture();
    let _ = fixture
        .runtime
        .block_on(fixture.authz.check(tonic::Request::new(check)));
});
