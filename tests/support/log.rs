//! The log lines a test's own server writes, captured for the test to read back.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;

/// A log sink the test reads back.
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    /// Captures the WARN and ERROR lines of this thread (text, no colours) until the guard drops,
    /// through the subscriber the service installs without traces (`telemetry::log_subscriber`).
    /// With tokio's `current_thread` test runtime (the default) the server's tasks run on this
    /// thread, so their lines are captured too.
    pub fn warnings() -> (CapturedLog, DefaultGuard) {
        let log = CapturedLog::default();
        let writer = log.clone();
        let subscriber = oidc_authz::telemetry::log_subscriber(
            oidc_authz::config::LogFormat::Text,
            tracing::Level::WARN,
            move || writer.clone(),
        );
        (log, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
