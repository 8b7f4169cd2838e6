//! The session section: the keys that seal and sign (`session_secret` or its file), the session
//! cookie, pending logins and the session's timeouts.

use std::time::Duration;

use crate::config::fields::*;
use crate::config::limits::*;
use crate::config::providers::cookie_name;
use crate::config::reader::Reader;
use crate::config::*;
use crate::crypto::MIN_SECRET_LEN;

/// `session_secret` (a list, newest first) or `session_secret_file` (one key a line, `#` for
/// comments), each key at least `MIN_SECRET_LEN` characters.
pub(super) fn session_secrets(reader: &mut Reader) -> Vec<Secret> {
    let from_list = reader.string_list("session_secret");
    let from_file = reader.string("session_secret_file");
    let texts = match (from_list, from_file) {
        (Some(_), Some(_)) => {
            reader.error(
                "session_secret",
                "set either session_secret or session_secret_file, not both",
            );
            Vec::new()
        }
        (Some(list), None) => list,
        (None, Some(path)) => secret_lines_from_file(reader, &path),
        (None, None) => {
            reader.error(
                "session_secret",
                "required (or session_secret_file): one or more keys of 32+ random characters, newest first",
            );
            Vec::new()
        }
    };
    for (index, text) in texts.iter().enumerate() {
        if text.len() < MIN_SECRET_LEN {
            reader.error(
                &format!("session_secret[{index}]"),
                format!(
                    "is {} characters; use at least {MIN_SECRET_LEN} random characters",
                    text.len()
                ),
            );
        }
    }
    texts.into_iter().map(Secret::new).collect()
}

/// The keys in `session_secret_file`: its non-empty lines that are not `#` comments.
fn secret_lines_from_file(reader: &mut Reader, path: &str) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect(),
        Err(error) => {
            reader.error(
                "session_secret_file",
                format!("cannot read {path}: {error}"),
            );
            Vec::new()
        }
    }
}

/// The session cookie, pending logins and the session's timeouts.
pub(super) struct Session {
    pub(super) cookie_name: String,
    pub(super) cookie_secure: CookieSecure,
    pub(super) cookie_domain: Option<String>,
    pub(super) login_timeout: Duration,
    pub(super) max_pending_logins: usize,
    pub(super) idling_timeout: Duration,
    pub(super) absolute_timeout: Duration,
    pub(super) refresh_margin: Duration,
}

pub(super) fn session(reader: &mut Reader) -> Session {
    let session = Session {
        cookie_name: cookie_name(reader, "session_cookie_name", "session"),
        cookie_secure: reader.choice_or(
            "session_cookie_secure",
            &[
                ("auto", CookieSecure::Auto),
                ("always", CookieSecure::Always),
                ("never", CookieSecure::Never),
            ],
            CookieSecure::Auto,
        ),
        cookie_domain: reader
            .string("session_cookie_domain")
            .filter(|domain| !domain.is_empty()),
        login_timeout: seconds(reader, "login_timeout", 600),
        max_pending_logins: max_pending_logins(reader),
        idling_timeout: seconds(reader, "session_idling_timeout", 900),
        absolute_timeout: seconds(reader, "session_absolute_timeout", 86_400),
        refresh_margin: seconds(reader, "refresh_margin", 30),
    };
    if session.login_timeout.is_zero() {
        reader.error("login_timeout", "must be at least 1 second");
    }
    if session.absolute_timeout.is_zero() {
        reader.error("session_absolute_timeout", "must be at least 1 second");
    }
    session
}
