//! Step 3: a request with a session cookie. Verify the cookie, load the session (one store read),
//! enforce the timeouts, refresh the access token when due, and let the request through with the
//! token injected. Anything missing or invalid falls back to a new login.

use super::cookies::{CookieJar, CookieKind};
use super::refresh::Refreshed;
use super::{Decision, Flow, RequestView, UpstreamHeader, lifetime};
use crate::config;
use crate::crypto::cookie::{self, CookiePurpose};
use crate::error::Error;
use crate::secret::Secret;
use crate::session::{LoadedSession, SessionId, SessionRecord};

/// A session found from the request's cookie.
pub(super) struct FoundSession {
    pub id: SessionId,
    pub loaded: LoadedSession,
    pub cookie_signed_by_old_key: bool,
}

impl Flow {
    /// The first cookie that verifies and names a stored session.
    pub(super) async fn find_session(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
    ) -> Result<Option<FoundSession>, Error> {
        for value in jar.values(request, CookieKind::Session) {
            let Some(verified) = cookie::verify(&self.keys, CookiePurpose::Session, value) else {
                continue;
            };
            let id = SessionId(verified.id);
            if let Some(loaded) = self.sessions.load(&id).await? {
                return Ok(Some(FoundSession {
                    id,
                    loaded,
                    cookie_signed_by_old_key: verified.signed_by_old_key,
                }));
            }
        }
        Ok(None)
    }

    pub(super) async fn has_session(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
    ) -> Result<bool, Error> {
        let now = self.clock.now_unix();
        Ok(self
            .find_session(request, jar)
            .await?
            .is_some_and(|found| !lifetime::is_expired(&found.loaded.record, now, &self.config)))
    }

    pub(super) async fn check_session(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
    ) -> Result<Decision, Error> {
        let Some(found) = self.find_session(request, jar).await? else {
            // A cookie that led nowhere (tampered, expired, old key removed) is cleared.
            let clear = if !jar.values(request, CookieKind::Session).is_empty() {
                vec![jar.clear(CookieKind::Session)]
            } else {
                Vec::new()
            };
            return self.start_login(request, jar, clear).await;
        };
        let FoundSession {
            id,
            loaded,
            cookie_signed_by_old_key,
        } = found;
        let now = self.clock.now_unix();
        let mut record = loaded.record;
        if lifetime::is_expired(&record, now, &self.config) {
            self.sessions.end(&id, &record).await?;
            tracing::info!(subject = %record.subject, "session timed out");
            return self
                .start_login(request, jar, vec![jar.clear(CookieKind::Session)])
                .await;
        }

        let mut write_back =
            loaded.sealed_by_old_key || lifetime::activity_due(&record, now, &self.config);
        if lifetime::needs_refresh(&record, now, &self.config) {
            match self.refresh_session(&id, record).await? {
                Refreshed::Fresh(fresh) => record = fresh,
                Refreshed::Ended => {
                    return self
                        .start_login(request, jar, vec![jar.clear(CookieKind::Session)])
                        .await;
                }
            }
            // The refresh wrote the record; only activity newer than that needs writing.
            write_back = loaded.sealed_by_old_key;
        }
        if write_back {
            record.last_active_at = now;
            let ttl = lifetime::store_ttl(&record, now, &self.config);
            if !self.sessions.update(&id, &record, ttl).await? {
                // Logged out since we read it: the logout stands.
                tracing::info!(subject = %record.subject, "session ended while in use");
                return self
                    .start_login(request, jar, vec![jar.clear(CookieKind::Session)])
                    .await;
            }
        }

        let mut set_cookies = Vec::new();
        if cookie_signed_by_old_key {
            let value = cookie::sign(&self.keys, CookiePurpose::Session, &id.0);
            set_cookies.push(jar.set(
                CookieKind::Session,
                &value,
                self.config.session_absolute_timeout,
            ));
        }
        Ok(self.allow(request, jar, &record, set_cookies))
    }

    /// Lets the request through with our headers set and any client copy of them replaced, and
    /// our own cookies (bearer credentials for this service, useless upstream) taken out.
    fn allow(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
        record: &SessionRecord,
        set_cookies: Vec<String>,
    ) -> Decision {
        let mut set_upstream_headers = Vec::new();
        let mut remove_upstream_headers = Vec::new();
        match request.cookie_header_without(jar.all_names()) {
            Some(cookie) => set_upstream_headers.push(UpstreamHeader {
                name: "cookie".into(),
                value: Secret::new(cookie),
            }),
            None => remove_upstream_headers.push("cookie".into()),
        }
        let mut inject = |header: &Option<config::UpstreamHeader>, token: &str| {
            let Some(header) = header else { return };
            if token.is_empty() {
                remove_upstream_headers.push(header.name.clone());
                return;
            }
            let value = match &header.scheme {
                Some(scheme) => format!("{scheme} {token}"),
                None => token.to_owned(),
            };
            set_upstream_headers.push(UpstreamHeader {
                name: header.name.clone(),
                value: Secret::new(value),
            });
        };
        let upstream = &self.config.policies.default_policy().upstream;
        inject(&upstream.access_token, &record.access_token);
        inject(&upstream.id_token, &record.id_token);
        // Claim headers: ours, or none at all; never a copy the client sent.
        for (claim, header) in &upstream.claims {
            match record.claims.get(claim) {
                Some(value) => set_upstream_headers.push(UpstreamHeader {
                    name: header.clone(),
                    value: Secret::new(value.clone()),
                }),
                None => remove_upstream_headers.push(header.clone()),
            }
        }
        Decision::Allow {
            set_upstream_headers,
            remove_upstream_headers,
            set_cookies,
        }
    }
}

/// The configured claims (`upstream_headers_claims`) as header-safe text: strings as they are,
/// other JSON values (numbers, lists) as JSON, control characters dropped.
pub(super) fn header_claims(
    config: &config::Config,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> std::collections::HashMap<String, String> {
    config
        .policies
        .iter()
        .flat_map(|policy| policy.upstream.claims.iter())
        .filter_map(|(claim, _)| {
            let text = match claims.get(claim)? {
                serde_json::Value::Null => return None,
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let text: String = text.chars().filter(|c| !c.is_control()).collect();
            Some((claim.clone(), text))
        })
        .collect()
}
