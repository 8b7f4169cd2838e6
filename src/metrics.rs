//! Prometheus metrics, kept as plain atomics (no registry, no locks on the hot path) and rendered
//! in the text exposition format at the admin endpoint's `GET /metrics`. No label ever carries a
//! user, a path or a token.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::FailureCause;

/// Upper bounds, in seconds, of the Check latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// How a Check ended.
#[derive(Debug, Clone, Copy)]
pub enum CheckOutcome {
    Allow,
    Redirect,
    Deny,
    /// Could not decide: Envoy's `status_on_error` applies.
    Error,
}

#[derive(Debug, Clone, Copy)]
pub enum RefreshOutcome {
    Refreshed,
    /// The IdP refused (`invalid_grant`...): the session ended.
    Refused,
    /// The IdP was unreachable: the request failed closed.
    Failed,
}

#[derive(Default)]
pub struct Metrics {
    checks: [AtomicU64; 4],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_micros_sum: AtomicU64,
    logins: AtomicU64,
    refreshes: [AtomicU64; 3],
    rp_logouts: AtomicU64,
    backchannel_logouts: AtomicU64,
    stale_token_allows: AtomicU64,
    refresh_locks_abandoned: AtomicU64,
    /// Checks that could not be decided, by `FailureCause` (in `FailureCause::ALL` order).
    check_failures: [AtomicU64; 3],
    checks_cancelled: AtomicU64,
    frontchannel_logouts: AtomicU64,
    /// Config reloads: applied, refused (the old config kept serving).
    config_reloads: [AtomicU64; 2],
}

impl Metrics {
    pub fn record_check(&self, outcome: CheckOutcome, took: Duration) {
        self.checks[outcome as usize].fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_micros_sum
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// A Check that could not be decided (also counted as `outcome="error"`), by what it depended
    /// on.
    pub fn record_check_failure(&self, cause: FailureCause) {
        self.check_failures[cause_index(cause)].fetch_add(1, Ordering::Relaxed);
    }

    /// A Check whose caller gave up before it was decided (Envoy's ext_authz timeout, a client
    /// gone): its future was dropped.
    pub fn record_check_cancelled(&self) {
        self.checks_cancelled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_login(&self) {
        self.logins.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_refresh(&self, outcome: RefreshOutcome) {
        self.refreshes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A Check allowed with an access token that was due for refresh but could not be refreshed
    /// (the IdP unreachable, or within the session's retry backoff), and had not yet expired.
    pub fn record_stale_token_allow(&self) {
        self.stale_token_allows.fetch_add(1, Ordering::Relaxed);
    }

    /// A refresh lock its holder could not release: it stays until its TTL ends.
    pub fn record_refresh_lock_abandoned(&self) {
        self.refresh_locks_abandoned.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_rp_logout(&self) {
        self.rp_logouts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_backchannel_logout(&self) {
        self.backchannel_logouts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_frontchannel_logout(&self) {
        self.frontchannel_logouts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_config_reload(&self, applied: bool) {
        let index = if applied { 0 } else { 1 };
        self.config_reloads[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition format; `idp_ready` (each provider's name and whether it has been
    /// discovered) is read by the caller.
    pub fn render(&self, idp_ready: &[(&str, bool)]) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP oidc_authz_checks_total Check calls by outcome."
        );
        let _ = writeln!(out, "# TYPE oidc_authz_checks_total counter");
        for (index, name) in ["allow", "redirect", "deny", "error"].iter().enumerate() {
            let _ = writeln!(
                out,
                "oidc_authz_checks_total{{outcome=\"{name}\"}} {}",
                load(&self.checks[index])
            );
        }
        let _ = writeln!(
            out,
            "# HELP oidc_authz_check_duration_seconds Time to decide a Check."
        );
        let _ = writeln!(out, "# TYPE oidc_authz_check_duration_seconds histogram");
        let mut cumulative = 0;
        for (index, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += load(&self.latency_buckets[index]);
            let _ = writeln!(
                out,
                "oidc_authz_check_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count: u64 = self.checks.iter().map(load).sum();
        let _ = writeln!(
            out,
            "oidc_authz_check_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "oidc_authz_check_duration_seconds_sum {}",
            load(&self.latency_micros_sum) as f64 / 1e6
        );
        let _ = writeln!(out, "oidc_authz_check_duration_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP oidc_authz_check_failures_total Checks that could not be decided (answered with a gRPC error, Envoy's status_on_error), by cause."
        );
        let _ = writeln!(out, "# TYPE oidc_authz_check_failures_total counter");
        for cause in FailureCause::ALL {
            let _ = writeln!(
                out,
                "oidc_authz_check_failures_total{{cause=\"{}\"}} {}",
                cause.label(),
                load(&self.check_failures[cause_index(cause)])
            );
        }
        counter(
            &mut out,
            "oidc_authz_checks_cancelled_total",
            "Checks their caller gave up on before they were decided (Envoy's ext_authz timeout).",
            load(&self.checks_cancelled),
        );
        let _ = writeln!(
            out,
            "# HELP oidc_authz_logins_total Logins completed (sessions created)."
        );
        let _ = writeln!(out, "# TYPE oidc_authz_logins_total counter");
        let _ = writeln!(out, "oidc_authz_logins_total {}", load(&self.logins));
        let _ = writeln!(
            out,
            "# HELP oidc_authz_refreshes_total Access-token refreshes by result."
        );
        let _ = writeln!(out, "# TYPE oidc_authz_refreshes_total counter");
        for (index, name) in ["refreshed", "refused", "failed"].iter().enumerate() {
            let _ = writeln!(
                out,
                "oidc_authz_refreshes_total{{result=\"{name}\"}} {}",
                load(&self.refreshes[index])
            );
        }
        counter(
            &mut out,
            "oidc_authz_stale_token_allows_total",
            "Checks allowed with an access token due for refresh that the IdP could not refresh, before it expired.",
            load(&self.stale_token_allows),
        );
        counter(
            &mut out,
            "oidc_authz_refresh_locks_abandoned_total",
            "Refresh locks their holder could not release (left to expire).",
            load(&self.refresh_locks_abandoned),
        );
        let _ = writeln!(out, "# HELP oidc_authz_logouts_total Logouts by kind.");
        let _ = writeln!(out, "# TYPE oidc_authz_logouts_total counter");
        let _ = writeln!(
            out,
            "oidc_authz_logouts_total{{kind=\"rp_initiated\"}} {}",
            load(&self.rp_logouts)
        );
        let _ = writeln!(
            out,
            "oidc_authz_logouts_total{{kind=\"backchannel\"}} {}",
            load(&self.backchannel_logouts)
        );
        let _ = writeln!(
            out,
            "oidc_authz_logouts_total{{kind=\"frontchannel\"}} {}",
            load(&self.frontchannel_logouts)
        );
        let _ = writeln!(
            out,
            "# HELP oidc_authz_idp_ready Whether every provider's IdP discovery has succeeded."
        );
        let _ = writeln!(out, "# TYPE oidc_authz_idp_ready gauge");
        let all_ready = idp_ready.iter().all(|(_, ready)| *ready);
        let _ = writeln!(out, "oidc_authz_idp_ready {}", u8::from(all_ready));
        let _ = writeln!(
            out,
            "# HELP oidc_authz_provider_ready Whether each provider's IdP discovery has succeeded."
        );
        let _ = writeln!(out, "# TYPE oidc_authz_provider_ready gauge");
        for (provider, ready) in idp_ready {
            let _ = writeln!(
                out,
                "oidc_authz_provider_ready{{provider=\"{provider}\"}} {}",
                u8::from(*ready)
            );
        }
        let _ = writeln!(
            out,
            "# HELP oidc_authz_config_reloads_total Config reloads (SIGHUP) by result; refused ones left the old config serving."
        );
        let _ = writeln!(out, "# TYPE oidc_authz_config_reloads_total counter");
        for (index, result) in ["ok", "refused"].iter().enumerate() {
            let _ = writeln!(
                out,
                "oidc_authz_config_reloads_total{{result=\"{result}\"}} {}",
                load(&self.config_reloads[index])
            );
        }
        out
    }
}

fn cause_index(cause: FailureCause) -> usize {
    match cause {
        FailureCause::Store => 0,
        FailureCause::Idp => 1,
        FailureCause::Other => 2,
    }
}

/// One counter without labels: its HELP, TYPE and value lines.
fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let metrics = Metrics::default();
        metrics.record_check(CheckOutcome::Allow, Duration::from_micros(50));
        metrics.record_check(CheckOutcome::Allow, Duration::from_micros(700));
        metrics.record_check(CheckOutcome::Error, Duration::from_secs(10));
        metrics.record_login();
        metrics.record_refresh(RefreshOutcome::Refused);
        let text = metrics.render(&[("default", true), ("corp", false)]);
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
        metrics.record_stale_token_allow();
        metrics.record_stale_token_allow();
        metrics.record_stale_token_allow();
        metrics.record_refresh_lock_abandoned();
        metrics.record_config_reload(false);
        let text = metrics.render(&[("default", false)]);
        for line in [
            "# TYPE oidc_authz_check_failures_total counter",
            "oidc_authz_check_failures_total{cause=\"store\"} 2",
            "oidc_authz_check_failures_total{cause=\"idp\"} 1",
            "oidc_authz_check_failures_total{cause=\"other\"} 0",
            "# TYPE oidc_authz_checks_cancelled_total counter",
            "oidc_authz_checks_cancelled_total 1",
            "# TYPE oidc_authz_stale_token_allows_total counter",
            "oidc_authz_stale_token_allows_total 3",
            "# TYPE oidc_authz_refresh_locks_abandoned_total counter",
            "oidc_authz_refresh_locks_abandoned_total 1",
            "oidc_authz_idp_ready 0",
            "oidc_authz_config_reloads_total{result=\"ok\"} 0",
            "oidc_authz_config_reloads_total{result=\"refused\"} 1",
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
        assert_eq!(helps, 12, "{text}");
    }
}
