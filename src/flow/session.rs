//! Step 3: a request with a session cookie. Verify the cookie, load the session (one store read,
//! or none when the session cache holds it),
//! enforce the timeouts, refresh the access token when due. What happens next (allow, 403, a new
//! login) is the policy's call (`access.rs`).

use std::sync::Arc;

use super::cookies::{CookieJar, CookieKind};
use super::refresh::Refreshed;
use super::{Flow, RequestView, lifetime};
use crate::crypto::cookie::{self, CookiePurpose};
use crate::error::Error;
use crate::metrics::SessionEndReason;
use crate::session::{LoadedSession, SessionId, SessionRecord};

/// A session found from the request's cookie.
pub(super) struct FoundSession {
    pub id: SessionId,
    pub loaded: LoadedSession,
    pub cookie_signed_by_old_key: bool,
}

/// What the session cookie amounts to.
pub(super) enum SessionCheck {
    /// A live session; `set_cookies` re-signs a cookie signed by an old key.
    Valid {
        /// Shared with the session cache on a hit.
        record: Arc<SessionRecord>,
        set_cookies: Vec<String>,
    },
    /// No session: none sent, or one that led nowhere, timed out or ended (`set_cookies` clears it).
    Missing { set_cookies: Vec<String> },
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
            if let Some(loaded) = self.sessions.load_cached(&id).await? {
                return Ok(Some(FoundSession {
                    id,
                    loaded,
                    cookie_signed_by_old_key: verified.signed_by_old_key,
                }));
            }
        }
        Ok(None)
    }

    /// Whether this Check will write the session back or refresh it (both need the whole record).
    fn writes_or_refreshes(&self, loaded: &LoadedSession, now: i64) -> bool {
        let record = &loaded.record;
        !lifetime::is_expired(record, now, &self.config)
            && (loaded.sealed_by_old_key
                || lifetime::activity_due(record, now, &self.config)
                || lifetime::needs_refresh(record, now, &self.config))
    }

    /// Like `find_session`, with the whole record (never the cache's trimmed copy): for a logout,
    /// which sends the ID token to the IdP.
    pub(super) async fn find_whole_session(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
    ) -> Result<Option<FoundSession>, Error> {
        let Some(mut found) = self.find_session(request, jar).await? else {
            return Ok(None);
        };
        if !found.loaded.complete {
            match self.sessions.load(&found.id).await? {
                Some(whole) => found.loaded = whole,
                None => return Ok(None),
            }
        }
        Ok(Some(found))
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

    /// The request's session, timeouts enforced, refreshed when due, activity written when due.
    pub(super) async fn current_session(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
    ) -> Result<SessionCheck, Error> {
        let Some(found) = self.find_session(request, jar).await? else {
            return Ok(no_session(request, jar));
        };
        let FoundSession {
            id,
            loaded,
            cookie_signed_by_old_key,
        } = found;
        let now = self.clock.now_unix();
        let Some(loaded) = self.whole_if_written(&id, loaded, now).await? else {
            return Ok(cleared(jar));
        };
        let mut record = loaded.record;
        if lifetime::is_expired(&record, now, &self.config) {
            self.end_timed_out(&id, &record).await?;
            return Ok(cleared(jar));
        }

        let mut write_back =
            loaded.sealed_by_old_key || lifetime::activity_due(&record, now, &self.config);
        if lifetime::needs_refresh(&record, now, &self.config) {
            match self
                .refresh_session(&id, Arc::unwrap_or_clone(record))
                .await?
            {
                Refreshed::Fresh(fresh) => record = Arc::new(*fresh),
                Refreshed::StillValid(current) => {
                    // Not written back: a refresh may be writing the record (rotated tokens) now.
                    return Ok(SessionCheck::Valid {
                        record: Arc::new(*current),
                        set_cookies: Vec::new(),
                    });
                }
                Refreshed::Ended => return Ok(cleared(jar)),
            }
            // The refresh wrote the record; only activity newer than that needs writing.
            write_back = loaded.sealed_by_old_key;
        }
        if write_back && !self.write_activity(&id, &mut record, now).await? {
            return Ok(cleared(jar));
        }
        Ok(SessionCheck::Valid {
            record,
            set_cookies: self.renewed_cookie(jar, &id, cookie_signed_by_old_key),
        })
    }

    /// `loaded`, or the whole record read from the store when this Check writes or refreshes the
    /// session and `loaded` is the cache's trimmed copy, which must never be written back. `None`
    /// when the store no longer has it.
    async fn whole_if_written(
        &self,
        id: &SessionId,
        loaded: LoadedSession,
        now: i64,
    ) -> Result<Option<LoadedSession>, Error> {
        if loaded.complete || !self.writes_or_refreshes(&loaded, now) {
            return Ok(Some(loaded));
        }
        self.sessions.load(id).await
    }

    async fn end_timed_out(&self, id: &SessionId, record: &SessionRecord) -> Result<(), Error> {
        self.sessions.end(id, record).await?;
        self.metrics
            .record_sessions_ended(SessionEndReason::Timeout, 1);
        tracing::info!(subject = %record.subject, "session timed out");
        Ok(())
    }

    /// Writes the session back with `now` as its last activity; `false` when it was logged out
    /// since it was read (the logout stands).
    async fn write_activity(
        &self,
        id: &SessionId,
        record: &mut Arc<SessionRecord>,
        now: i64,
    ) -> Result<bool, Error> {
        Arc::make_mut(record).last_active_at = now;
        let ttl = lifetime::store_ttl(record, now, &self.config);
        let written = self.sessions.update(id, record, ttl).await?;
        if !written {
            tracing::info!(subject = %record.subject, "session ended while in use");
        }
        Ok(written)
    }

    /// The session cookie signed anew, when the request's was signed by an old key.
    fn renewed_cookie(
        &self,
        jar: &CookieJar<'_>,
        id: &SessionId,
        signed_by_old_key: bool,
    ) -> Vec<String> {
        if !signed_by_old_key {
            return Vec::new();
        }
        let value = cookie::sign(&self.keys, CookiePurpose::Session, &id.0);
        vec![jar.set(
            CookieKind::Session,
            &value,
            self.config.session_absolute_timeout,
        )]
    }
}

/// No session for the request: nothing to say when it sent no session cookie; a cookie that led
/// nowhere (tampered, expired, old key removed) is cleared.
fn no_session(request: &RequestView, jar: &CookieJar<'_>) -> SessionCheck {
    if jar.values(request, CookieKind::Session).is_empty() {
        return SessionCheck::Missing {
            set_cookies: Vec::new(),
        };
    }
    cleared(jar)
}

/// No session any more (timed out, ended, gone): the cookie is cleared.
fn cleared(jar: &CookieJar<'_>) -> SessionCheck {
    SessionCheck::Missing {
        set_cookies: vec![jar.clear(CookieKind::Session)],
    }
}
