//! Rendered text of every family: names, labels, buckets, one HELP and TYPE line each.

use std::time::Duration;

use super::*;
use crate::error::FailureCause;

#[test]
fn renders_counters_and_a_cumulative_histogram() {
    let metrics = Metrics::default();
    metrics.record_check(CheckOutcome::Allow, Duration::from_micros(50));
    metrics.record_check(CheckOutcome::Allow, Duration::from_micros(700));
    metrics.record_check(CheckOutcome::Error, Duration::from_secs(10));
    metrics.record_login();
    metrics.record_refresh(RefreshOutcome::Refused);
    let idp = IdpMetrics::default();
    let text = metrics.render(&[
        ProviderView {
            name: "default",
            ready: true,
            idp: Some(&idp),
        },
        ProviderView {
            name: "corp",
            ready: false,
            idp: None,
        },
    ]);
    assert!(!text.contains("cause=\"store\"} 1"));
    for line in [
        "oidc_authz_checks_total{outcome=\"allow\"} 2",
        "oidc_authz_checks_total{outcome=\"error\"} 1",
        "oidc_authz_check_duration_seconds_bucket{le=\"0.0001\"} 1",
        "oidc_authz_check_duration_seconds_bucket{le=\"0.001\"} 2",
        "oidc_authz_check_duration_seconds_bucket{le=\"5\"} 2",
        "oidc_authz_check_duration_seconds_bucket{le=\"+Inf\"} 3",
        "oidc_authz_check_duration_seconds_count 3",
        "oidc_authz_logins_total 1",
        "oidc_authz_refreshes_total{result=\"refused\"} 1",
        "oidc_authz_idp_ready 0",
        "oidc_authz_check_failures_total{cause=\"store\"} 0",
        "oidc_authz_provider_ready{provider=\"default\"} 1",
        "oidc_authz_provider_ready{provider=\"corp\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
}

#[test]
fn renders_failures_by_cause_cancellations_stale_allows_and_abandoned_locks() {
    let metrics = Metrics::default();
    metrics.record_check_failure(FailureCause::Store);
    metrics.record_check_failure(FailureCause::Store);
    metrics.record_check_failure(FailureCause::Idp);
    metrics.record_check_cancelled();
    metrics.record_config_reload(false);
    metrics.record_stale_token_allow();
    metrics.record_stale_token_allow();
    metrics.record_stale_token_allow();
    metrics.record_refresh_lock_abandoned();
    let text = metrics.render(&[ProviderView {
        name: "default",
        ready: false,
        idp: None,
    }]);
    for line in [
        "# TYPE oidc_authz_check_failures_total counter",
        "oidc_authz_check_failures_total{cause=\"store\"} 2",
        "oidc_authz_check_failures_total{cause=\"idp\"} 1",
        "oidc_authz_check_failures_total{cause=\"other\"} 0",
        "oidc_authz_config_reloads_total{result=\"refused\"} 1",
        "# TYPE oidc_authz_checks_cancelled_total counter",
        "oidc_authz_checks_cancelled_total 1",
        "# TYPE oidc_authz_stale_token_allows_total counter",
        "oidc_authz_stale_token_allows_total 3",
        "# TYPE oidc_authz_refresh_locks_abandoned_total counter",
        "oidc_authz_refresh_locks_abandoned_total 1",
        "oidc_authz_idp_ready 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    // Every metric has exactly one HELP and one TYPE line.
    let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(helps, types);
    assert_eq!(helps, 21, "{text}");
}

#[tokio::test]
async fn renders_idp_store_session_and_lock_metrics_with_fixed_labels() {
    let metrics = Metrics::default();
    let idp = IdpMetrics::default();
    let ok: Result<(), ()> = idp.time(IdpEndpoint::Token, async { Ok(()) }).await;
    let failed: Result<(), ()> = idp.time(IdpEndpoint::Jwks, async { Err(()) }).await;
    assert!(ok.is_ok() && failed.is_err());
    idp.record_jwks_refetch();
    metrics.record_store_command(StoreOperation::Read, Duration::from_micros(300), false);
    metrics.record_store_command(StoreOperation::Write, Duration::from_secs(9), true);
    metrics.record_login();
    metrics.record_sessions_ended(SessionEndReason::Backchannel, 3);
    metrics.record_refresh_lock_contended();
    let text = metrics.render(&[ProviderView {
        name: "default",
        ready: true,
        idp: Some(&idp),
    }]);
    for line in [
        "# TYPE oidc_authz_idp_request_duration_seconds histogram",
        "oidc_authz_idp_request_duration_seconds_count{provider=\"default\",endpoint=\"token\",outcome=\"ok\"} 1",
        "oidc_authz_idp_request_duration_seconds_count{provider=\"default\",endpoint=\"jwks\",outcome=\"error\"} 1",
        "oidc_authz_idp_request_duration_seconds_count{provider=\"default\",endpoint=\"userinfo\",outcome=\"ok\"} 0",
        "oidc_authz_jwks_refetches_total{provider=\"default\"} 1",
        "oidc_authz_store_duration_seconds_bucket{operation=\"read\",le=\"0.0005\"} 1",
        "oidc_authz_store_duration_seconds_bucket{operation=\"write\",le=\"5\"} 0",
        "oidc_authz_store_duration_seconds_bucket{operation=\"write\",le=\"+Inf\"} 1",
        "oidc_authz_store_duration_seconds_sum{operation=\"write\"} 9.0",
        "oidc_authz_store_errors_total{operation=\"write\"} 1",
        "oidc_authz_store_errors_total{operation=\"read\"} 0",
        "oidc_authz_sessions_created_total 1",
        "oidc_authz_sessions_ended_total{reason=\"backchannel\"} 3",
        "oidc_authz_sessions_ended_total{reason=\"refresh_refused\"} 0",
        "oidc_authz_refresh_lock_contended_total 1",
        "oidc_authz_logins_total 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
}
