//! The hot path: a Check for a request that carries a valid session cookie (memory store, no IdP
//! call), end to end through the Envoy adapter and through `Flow::check` alone, and its pieces:
//! cookie MAC sign/verify and record seal/open.
//!
//! Run: `cargo bench --bench check` (about 20 s), or `cargo bench --bench check -- --quick`.
//! Criterion's `time: [low estimate high]` lines are nanoseconds (or µs) per operation.
//!
//! The session is created honestly (`support/session_path.rs`, shared with
//! `examples/profile_check.rs`): the login is run through `Flow::check` with a fake IdP.

#[path = "support/session_path.rs"]
mod session_path;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use oidc_authz::crypto::KeyRing;
use oidc_authz::crypto::cookie::{self, CookiePurpose};
use oidc_authz::crypto::seal;
use oidc_authz::flow::{Decision, RequestView};
use oidc_authz::secret::Secret;
use session_path::{SESSION_SECRET, Setup, check_request, setup, view};

fn bench_check(c: &mut Criterion) {
    let Setup {
        runtime,
        flow,
        authz,
        cookie_header,
    } = setup();

    // The answer is what the hot path should give, or the numbers mean nothing.
    let request = view("/anything", "page=2", Some(&cookie_header));
    match runtime.block_on(flow.check(&request)) {
        Ok(Decision::Allow {
            set_upstream_headers,
            set_cookies,
            ..
        }) => {
            assert!(
                set_cookies.is_empty(),
                "nothing to re-issue: {set_cookies:?}"
            );
            assert!(
                set_upstream_headers.iter().any(
                    |h| h.name == "authorization" && h.value.expose().starts_with("Bearer eyJ")
                ),
                "access token injected"
            );
        }
        other => panic!("a valid session is let through, got {other:?}"),
    }
    let response = runtime
        .block_on(authz.check(tonic::Request::new(check_request(&cookie_header))))
        .expect("check")
        .into_inner();
    assert_eq!(response.status.map(|s| s.code), Some(0), "gRPC OK");
    assert!(matches!(
        response.http_response,
        Some(HttpResponse::OkResponse(_))
    ));

    let mut group = c.benchmark_group("check");
    group.bench_function("flow_check_valid_session", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(flow.check(black_box(&request)).await.unwrap()) });
    });
    let envoy_request = check_request(&cookie_header);
    group.bench_function("authz_check_valid_session", |b| {
        // The clone stays outside the measurement (Envoy's request arrives decoded, not cloned).
        b.to_async(&runtime).iter_batched(
            || tonic::Request::new(envoy_request.clone()),
            |request| async { black_box(authz.check(request).await.unwrap()) },
            BatchSize::SmallInput,
        );
    });
    let anonymous_api = RequestView {
        headers: [("accept".to_owned(), "application/json".to_owned())].into(),
        ..view("/api/items", "", None)
    };
    group.bench_function("flow_check_no_cookie_api_401", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(flow.check(black_box(&anonymous_api)).await.unwrap()) });
    });
    group.finish();
}

fn bench_crypto(c: &mut Criterion) {
    let keys = KeyRing::from_secrets(&[Secret::new(SESSION_SECRET)]).expect("keys");
    let id = [42u8; 16];
    let signed = cookie::sign(&keys, CookiePurpose::Session, &id);
    let record: Vec<u8> = (0..2048u32).map(|i| (i * 31 % 251) as u8).collect();
    let associated = b"session:5d41402abc4b2a76b9719d911017c592".as_slice();
    let sealed = seal::seal(&keys, associated, &record).expect("seal");
    assert_eq!(
        seal::open(&keys, associated, &sealed).map(|o| o.plaintext),
        Some(record.clone())
    );

    let mut group = c.benchmark_group("crypto");
    group.bench_function("cookie_sign", |b| {
        b.iter(|| cookie::sign(&keys, CookiePurpose::Session, black_box(&id)))
    });
    group.bench_function("cookie_verify", |b| {
        b.iter(|| cookie::verify(&keys, CookiePurpose::Session, black_box(&signed)).expect("valid"))
    });
    group.bench_function("seal_2KiB", |b| {
        b.iter(|| seal::seal(&keys, associated, black_box(&record)).expect("seal"))
    });
    group.bench_function("open_2KiB", |b| {
        b.iter(|| seal::open(&keys, associated, black_box(&sealed)).expect("open"))
    });
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = quick();
    targets = bench_check, bench_crypto
}
criterion_main!(benches);
