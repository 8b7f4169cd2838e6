//! `shutdown_drain_period` and `shutdown_grace_period`: how a SIGTERM is turned into an exit
//! without failed requests (see `server::run`). Their own file so that the keys about the
//! process's lifecycle stay apart from the login flow's.

use std::time::Duration;

use super::reader::Reader;

/// Long enough for Envoy's gRPC health check (1 s interval in `envoy/*.yaml`) to see NOT_SERVING
/// and move traffic, with room for a missed check.
pub const DEFAULT_SHUTDOWN_DRAIN_PERIOD_SECS: u64 = 5;
/// Envoy's ext_authz timeout in the shipped configs: no Check in flight can usefully last longer.
pub const DEFAULT_SHUTDOWN_GRACE_PERIOD_SECS: u64 = 10;
/// A drain or grace period beyond this is a typo (Kubernetes' default termination grace is 30 s).
const MAX_PERIOD_SECS: u64 = 300;

/// What happens between SIGTERM and exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownPeriods {
    /// After SIGTERM: health and `/readyz` say NOT_SERVING / draining, Checks are still served.
    pub drain: Duration,
    /// Then the listener closes; Checks in flight get this long to finish before the process exits.
    pub grace: Duration,
}

impl Default for ShutdownPeriods {
    fn default() -> Self {
        ShutdownPeriods {
            drain: Duration::from_secs(DEFAULT_SHUTDOWN_DRAIN_PERIOD_SECS),
            grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_PERIOD_SECS),
        }
    }
}

pub(super) fn shutdown_periods(reader: &mut Reader) -> ShutdownPeriods {
    ShutdownPeriods {
        drain: period(
            reader,
            "shutdown_drain_period",
            DEFAULT_SHUTDOWN_DRAIN_PERIOD_SECS,
        ),
        grace: period(
            reader,
            "shutdown_grace_period",
            DEFAULT_SHUTDOWN_GRACE_PERIOD_SECS,
        ),
    }
}

fn period(reader: &mut Reader, key: &str, default: u64) -> Duration {
    let seconds = reader.u64_or(key, default);
    if seconds > MAX_PERIOD_SECS {
        reader.error(key, format!("must be at most {MAX_PERIOD_SECS} seconds"));
    }
    Duration::from_secs(seconds.min(MAX_PERIOD_SECS))
}

#[cfg(test)]
mod tests {
    use crate::config::load_from_str;

    const BASE: &str = "issuer: https://idp.test\nclient_id: c\nclient_secret: s\n\
                        session_secret: [0123456789abcdef0123456789abcdef]\n";

    #[test]
    fn defaults_give_envoy_time_to_move_traffic() {
        let (config, _) = load_from_str(BASE, "t.yaml", Vec::new()).unwrap();
        assert_eq!(config.shutdown.drain.as_secs(), 5);
        assert_eq!(config.shutdown.grace.as_secs(), 10);
    }

    #[test]
    fn periods_are_read_and_bounded_with_their_key_path() {
        let yaml = format!("{BASE}shutdown_drain_period: 0\nshutdown_grace_period: 2\n");
        let (config, _) = load_from_str(&yaml, "t.yaml", Vec::new()).unwrap();
        assert_eq!(config.shutdown.drain.as_secs(), 0);
        assert_eq!(config.shutdown.grace.as_secs(), 2);

        let yaml = format!("{BASE}shutdown_drain_period: 3600\n");
        let error = load_from_str(&yaml, "t.yaml", Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("shutdown_drain_period: must be at most 300"),
            "{error}"
        );
    }
}
