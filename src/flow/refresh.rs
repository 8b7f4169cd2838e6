//! Refreshing a session's access token, single-flight across threads and replicas: the refresher
//! holds a short lock in the session store (`SET NX PX`); everyone else re-reads the session until
//! the refresher has written it. A rotating refresh token is therefore used exactly once.

use std::time::Duration;

use super::{Flow, lifetime};
use crate::crypto::random::random_bytes;
use crate::error::Error;
use crate::metrics::RefreshOutcome;
use crate::secret::Secret;
use crate::session::{SessionId, SessionRecord};

/// How long a refresh lock lives if its holder dies; longer than one token request.
const LOCK_TTL: Duration = Duration::from_secs(15);
/// How long a waiter waits for someone else's refresh before giving up (fail closed).
const WAIT_LIMIT: Duration = Duration::from_secs(15);
const POLL_INTERVAL: Duration = Duration::from_millis(25);

pub(super) enum Refreshed {
    Fresh(SessionRecord),
    /// The session is over (refresh refused, or no refresh token and the token expired); it has
    /// been deleted.
    Ended,
}

impl Flow {
    pub(super) async fn refresh_session(
        &self,
        id: &SessionId,
        record: SessionRecord,
    ) -> Result<Refreshed, Error> {
        let now = self.clock.now_unix();
        if record.refresh_token.is_empty() {
            if lifetime::access_token_expired(&record, now) {
                self.sessions.end(id, &record).await?;
                return Ok(Refreshed::Ended);
            }
            // Still valid for a moment, and nothing to refresh with: use it until it expires.
            return Ok(Refreshed::Fresh(record));
        }
        let lock_token = random_bytes::<16>()?.to_vec();
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        let mut record = record;
        loop {
            if self
                .sessions
                .try_lock_refresh(id, lock_token.clone(), LOCK_TTL)
                .await?
            {
                // Someone may have refreshed between our read and our lock.
                let current = match self.sessions.load(id).await? {
                    Some(loaded) => loaded.record,
                    None => {
                        self.sessions.unlock_refresh(id).await?;
                        return Ok(Refreshed::Ended);
                    }
                };
                let result =
                    if lifetime::needs_refresh(&current, self.clock.now_unix(), &self.config) {
                        self.refresh_now(id, current).await
                    } else {
                        Ok(Refreshed::Fresh(current))
                    };
                self.sessions.unlock_refresh(id).await?;
                return result;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            match self.sessions.load(id).await? {
                None => return Ok(Refreshed::Ended),
                Some(loaded) if loaded.record.access_token != record.access_token => {
                    return Ok(Refreshed::Fresh(loaded.record));
                }
                Some(loaded) => record = loaded.record,
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::RefreshUnavailable(
                    crate::oidc::TokenError::Unreachable(
                        "timed out waiting for another refresh of this session".into(),
                    ),
                ));
            }
        }
    }

    /// Holding the lock: calls the token endpoint and writes the result.
    async fn refresh_now(
        &self,
        id: &SessionId,
        mut record: SessionRecord,
    ) -> Result<Refreshed, Error> {
        let refresh_token = Secret::new(record.refresh_token.clone());
        let tokens = match self.provider.refresh(&refresh_token).await {
            Ok(tokens) => tokens,
            // The grant is dead (expired, revoked, reused): so is the session.
            Err(error) if error.is_invalid_grant() => {
                tracing::info!(subject = %record.subject, %error, "refresh refused; session ended");
                self.metrics.record_refresh(RefreshOutcome::Refused);
                self.sessions.end(id, &record).await?;
                return Ok(Refreshed::Ended);
            }
            // The IdP is down, or refuses us as a client (a configuration problem, not the
            // user's): keep the session so a later Check can succeed, but do not allow.
            Err(error) => {
                self.metrics.record_refresh(RefreshOutcome::Failed);
                return Err(Error::RefreshUnavailable(error));
            }
        };
        if let Some(id_token) = &tokens.id_token {
            match self
                .provider
                .verify_id_token(id_token, None, Some(&tokens.access_token))
                .await
            {
                Ok(claims) if claims.subject == record.subject => {
                    record.id_token = id_token.expose().to_owned();
                    record.claims = self.header_claims(&claims.claims);
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(subject = %record.subject, "refreshed ID token is invalid or for another subject; session ended");
                    self.metrics.record_refresh(RefreshOutcome::Refused);
                    self.sessions.end(id, &record).await?;
                    return Ok(Refreshed::Ended);
                }
            }
        }
        let now = self.clock.now_unix();
        record.access_token = tokens.access_token.expose().to_owned();
        record.access_token_expires_at = tokens.expires_in.map_or(0, |s| now + s as i64);
        if let Some(refresh_token) = tokens.refresh_token {
            record.refresh_token = refresh_token.expose().to_owned();
        }
        record.last_active_at = now;
        let ttl = lifetime::store_ttl(&record, now, &self.config);
        if !self.sessions.update(id, &record, ttl).await? {
            // Logged out while the IdP answered: the logout stands, the new tokens are dropped.
            tracing::info!(subject = %record.subject, "session ended during its refresh");
            return Ok(Refreshed::Ended);
        }
        tracing::debug!(subject = %record.subject, "access token refreshed");
        self.metrics.record_refresh(RefreshOutcome::Refreshed);
        Ok(Refreshed::Fresh(record))
    }
}
