//! Refreshing a session's access token, single-flight across threads and replicas: the refresher
//! holds a lock in the session store (`SET NX PX`, released by compare-and-delete so that only its
//! holder can release it); everyone else re-reads the session until the refresher has written it.
//! A rotating refresh token is therefore used exactly once.
//!
//! The lock's holder runs in a task of its own (`Refresher`, `tokio::spawn`): Envoy cancelling a
//! Check (its ext_authz timeout) drops the Check's future, but not a refresh that may already have
//! made the IdP rotate the refresh token, so the new one is still stored and the lock released.

use std::sync::Arc;
use std::time::Duration;

use super::{Flow, lifetime};
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::random::random_bytes;
use crate::error::Error;
use crate::log_limit::RateLimitedLog;
use crate::metrics::{Metrics, RefreshOutcome, SessionEndReason};
use crate::oidc::IdentityProvider;
use crate::secret::Secret;
use crate::session::{SessionId, SessionRecord, Sessions};

/// What a refresh holds the lock for besides its two IdP requests: a few store round trips (each
/// bounded by `redis.command_timeout_ms`, 1 s by default).
const LOCK_STORE_ALLOWANCE: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// How long a refresh lock lives if its holder dies, and how long others wait for it: longer than
/// a refresh can take, which is two IdP requests in a row (the token endpoint, then a JWKS
/// refetch for an ID token signed by a new key), each bounded by `http_timeout`, plus store round
/// trips. A lock that expired under a live holder would let a second refresher reuse the refresh
/// token.
pub(super) fn refresh_lock_ttl(http_timeout: Duration) -> Duration {
    2 * http_timeout + LOCK_STORE_ALLOWANCE
}

pub(super) enum Refreshed {
    /// Boxed: a record is large, and `Ended` is common.
    Fresh(Box<SessionRecord>),
    /// Not refreshed, but the access token has not expired: use the record as it is, and write
    /// nothing back (a refresh may be writing it). The IdP is unreachable (or was, less than
    /// `refresh_backoff::RETRY_AFTER` ago), or another Check's refresh is still running.
    StillValid(Box<SessionRecord>),
    /// The session is over (refresh refused, no refresh token and the token expired, or logged
    /// out meanwhile); it has been deleted.
    Ended,
}

/// Everything one refresh needs, owned, so that it can run in a task of its own. Cheap to clone.
#[derive(Clone)]
pub(super) struct Refresher {
    config: Arc<Config>,
    sessions: Sessions,
    provider: Arc<dyn IdentityProvider>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    logs: Arc<RefreshLogs>,
}

/// One rate limit per kind of refresh error, shared by every refresh of this process.
#[derive(Debug, Default)]
pub(super) struct RefreshLogs {
    idp_unreachable: RateLimitedLog,
    lock_abandoned: RateLimitedLog,
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
                self.metrics
                    .record_sessions_ended(SessionEndReason::TokenExpired, 1);
                return Ok(Refreshed::Ended);
            }
            // Still valid for a moment, and nothing to refresh with: use it until it expires.
            return Ok(Refreshed::Fresh(Box::new(record)));
        }
        if !lifetime::access_token_expired(&record, now) && self.refresh_backoff.is_waiting(id, now)
        {
            self.metrics.record_stale_token_allow();
            return Ok(Refreshed::StillValid(Box::new(record)));
        }
        let holder = random_bytes::<16>()?.to_vec();
        let lock_ttl = refresh_lock_ttl(self.config.http_timeout);
        let deadline = tokio::time::Instant::now() + lock_ttl;
        let mut record = record;
        // Bounded by `deadline`: at most `lock_ttl / POLL_INTERVAL` rounds.
        loop {
            match self.refresh_detached(*id, &holder, lock_ttl).await {
                Ok(Some(refreshed)) => {
                    self.refresh_backoff.clear(id);
                    return Ok(refreshed);
                }
                Ok(None) => {}
                Err(Error::RefreshUnavailable(error))
                    if error.is_outage()
                        && !lifetime::access_token_expired(&record, self.clock.now_unix()) =>
                {
                    return Ok(self.use_stale_token(id, record, &error));
                }
                Err(error) => return Err(error),
            }
            // Someone else is refreshing. A token that is still valid needs no waiting for them
            // (their refresh may hang on the IdP for `http_timeout`); an expired one does.
            if !lifetime::access_token_expired(&record, self.clock.now_unix()) {
                return Ok(Refreshed::StillValid(Box::new(record)));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            match self.sessions.load(id).await? {
                None => return Ok(Refreshed::Ended),
                Some(loaded) if loaded.record.access_token != record.access_token => {
                    return Ok(Refreshed::Fresh(Box::new(Arc::unwrap_or_clone(
                        loaded.record,
                    ))));
                }
                Some(loaded) => record = Arc::unwrap_or_clone(loaded.record),
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

    /// The IdP could not refresh a token that is still valid: use it, and leave the IdP alone for
    /// this session for a few seconds.
    fn use_stale_token(
        &self,
        id: &SessionId,
        record: SessionRecord,
        error: &crate::oidc::TokenError,
    ) -> Refreshed {
        self.refresh_backoff.start(id, self.clock.now_unix());
        self.metrics.record_stale_token_allow();
        if let Some(suppressed) = self.refresh_logs.idp_unreachable.admit() {
            tracing::warn!(%error, suppressed, "IdP unreachable during a refresh; using the still-valid access token until it expires");
        }
        Refreshed::StillValid(Box::new(record))
    }

    /// Takes the lock and refreshes in a task of its own, which runs to the end even if this
    /// Check is dropped; `None` when someone else holds the lock.
    async fn refresh_detached(
        &self,
        id: SessionId,
        holder: &[u8],
        lock_ttl: Duration,
    ) -> Result<Option<Refreshed>, Error> {
        let refresher = self.refresher();
        let holder = holder.to_vec();
        tokio::spawn(async move { refresher.refresh_if_unlocked(&id, &holder, lock_ttl).await })
            .await
            .map_err(|_| Error::RefreshInterrupted)?
    }

    fn refresher(&self) -> Refresher {
        Refresher {
            config: Arc::clone(&self.config),
            sessions: self.sessions.clone(),
            provider: Arc::clone(&self.provider),
            clock: Arc::clone(&self.clock),
            metrics: Arc::clone(&self.metrics),
            logs: Arc::clone(&self.refresh_logs),
        }
    }
}

/// Counts the lock as abandoned if the refresh holding it ends without releasing it: its task
/// panicked or was dropped (the runtime shutting down).
struct HeldLock<'a> {
    metrics: &'a Metrics,
    released: bool,
}

impl Drop for HeldLock<'_> {
    fn drop(&mut self) {
        if !self.released {
            self.metrics.record_refresh_lock_abandoned();
        }
    }
}

impl Refresher {
    /// Takes the lock as `holder`, refreshes, and releases the lock if it is still ours; `None`
    /// when someone else holds it.
    async fn refresh_if_unlocked(
        &self,
        id: &SessionId,
        holder: &[u8],
        lock_ttl: Duration,
    ) -> Result<Option<Refreshed>, Error> {
        if !self.sessions.try_lock_refresh(id, holder, lock_ttl).await? {
            self.metrics.record_refresh_lock_contended();
            return Ok(None);
        }
        let mut held = HeldLock {
            metrics: &self.metrics,
            released: false,
        };
        let refreshed = self.refresh_locked(id).await;
        // A lock we cannot release expires on its own (`lock_ttl`); the refresh's result stands.
        held.released = true;
        if let Err(error) = self.sessions.unlock_refresh(id, holder).await {
            self.metrics.record_refresh_lock_abandoned();
            if let Some(suppressed) = self.logs.lock_abandoned.admit() {
                tracing::warn!(%error, suppressed, "could not release a refresh lock; it expires on its own");
            }
        }
        refreshed.map(Some)
    }

    /// Holding the lock: re-reads the session, since someone may have refreshed it between our
    /// read and our lock, and refreshes it if that is still due.
    async fn refresh_locked(&self, id: &SessionId) -> Result<Refreshed, Error> {
        let Some(loaded) = self.sessions.load(id).await? else {
            return Ok(Refreshed::Ended);
        };
        if lifetime::needs_refresh(&loaded.record, self.clock.now_unix(), &self.config) {
            self.refresh_now(id, Arc::unwrap_or_clone(loaded.record))
                .await
        } else {
            Ok(Refreshed::Fresh(Box::new(Arc::unwrap_or_clone(
                loaded.record,
            ))))
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
                self.metrics
                    .record_sessions_ended(SessionEndReason::RefreshRefused, 1);
                return Ok(Refreshed::Ended);
            }
            // The IdP is down, or refuses us as a client (a configuration problem, not the
            // user's): keep the session so a later Check can succeed; the caller allows with the
            // current token only if the IdP is down and the token has not expired.
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
                    set_claims(&self.config, &mut record, &claims.claims);
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(subject = %record.subject, "refreshed ID token is invalid or for another subject; session ended");
                    self.metrics.record_refresh(RefreshOutcome::Refused);
                    self.sessions.end(id, &record).await?;
                    self.metrics
                        .record_sessions_ended(SessionEndReason::RefreshRefused, 1);
                    return Ok(Refreshed::Ended);
                }
            }
        }
        if self.config.userinfo {
            self.refresh_userinfo(&mut record, &tokens.access_token)
                .await;
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
        Ok(Refreshed::Fresh(Box::new(record)))
    }
}

impl Refresher {
    /// Merges the userinfo endpoint's current claims into the record's (the new ID token's, when
    /// the refresh brought one). A failure is logged and leaves those as they are: the IdP has
    /// already rotated the refresh token, so the refresh must be stored. With a new ID token that
    /// means without userinfo's claims until the next refresh (rules on them fail: closed).
    async fn refresh_userinfo(&self, record: &mut SessionRecord, access_token: &Secret) {
        match self.provider.userinfo(access_token, &record.subject).await {
            Ok(userinfo) => {
                let mut claims = super::upstream::session_claims(record);
                crate::oidc::userinfo::merge(&mut claims, userinfo);
                set_claims(&self.config, record, &claims);
            }
            Err(error) => {
                tracing::warn!(subject = %record.subject, %error, "userinfo not refreshed");
            }
        }
    }
}

/// The record's claims (`claims_json`, and the older `claims` of header values).
fn set_claims(
    config: &crate::config::Config,
    record: &mut SessionRecord,
    claims: &serde_json::Map<String, serde_json::Value>,
) {
    record.claims = super::upstream::header_claims(config, claims);
    record.claims_json = super::upstream::claims_json(claims);
}
