//! The real `oidc-authz` binary in a child process, for tests of what only the process as a whole
//! shows (signals, sockets, its own system calls), and the Check a browser without a session sends.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

/// The binary, killed on drop if the test did not stop it.
pub struct RunningBinary(pub Child);

impl Drop for RunningBinary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl RunningBinary {
    /// `oidc-authz --config CONFIG`, logging at its configured level to nowhere.
    pub fn start(config: &Path) -> RunningBinary {
        Self::start_logging_to(config, Stdio::null())
    }

    /// `oidc-authz --config CONFIG`, its log lines (stderr) to `log`.
    pub fn start_logging_to(config: &Path, log: impl Into<Stdio>) -> RunningBinary {
        RunningBinary(
            Command::new(env!("CARGO_BIN_EXE_oidc-authz"))
                .arg("--config")
                .arg(config)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("run oidc-authz"),
        )
    }

    /// Sends the signal `name` (`"TERM"`, `"HUP"`).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{name}");
    }

    /// How many `write`-family system calls the process has made so far (`/proc/PID/io`).
    pub fn write_calls(&self) -> u64 {
        let io =
            std::fs::read_to_string(format!("/proc/{}/io", self.0.id())).expect("/proc/PID/io");
        io.lines()
            .find_map(|line| line.strip_prefix("syscw: "))
            .and_then(|count| count.trim().parse().ok())
            .expect("a syscw line in /proc/PID/io")
    }
}

/// A browser navigating to `/private` without a session: answered with a redirect to the IdP.
pub fn navigation_without_session() -> CheckRequest {
    let headers = HashMap::from([
        (":authority".to_owned(), "app.test".to_owned()),
        ("accept".to_owned(), "text/html".to_owned()),
    ]);
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/private".into(),
                    host: "app.test".into(),
                    scheme: "http".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}
