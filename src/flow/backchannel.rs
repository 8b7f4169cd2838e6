//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): the IdP POSTs a `logout_token`;
//! a valid, unseen one deletes every session of its `sid` (or, without `sid`, of its `sub`).
//! Answers 200 on success and 400 otherwise, with `Cache-Control: no-store`, as §2.8 says.

use super::{Decision, Flow, RequestView};
use crate::error::Error;
use crate::metrics::SessionEndReason;
use crate::oidc::LogoutTokenError;
use crate::secret::Secret;

impl Flow {
    pub(super) async fn backchannel_logout(
        &self,
        request: &RequestView,
    ) -> Result<Decision, Error> {
        if request.method != "POST" {
            return Err(Error::MethodNotAllowed);
        }
        let logout_token = form_urlencoded::parse(&request.body)
            .find(|(name, _)| name == "logout_token")
            .map(|(_, value)| Secret::new(value.into_owned()))
            .ok_or(Error::InvalidLogoutToken(LogoutTokenError::Missing))?;
        if self.provider.metadata().is_none() {
            return Err(Error::ProviderNotReady);
        }
        let claims = self
            .provider
            .verify_logout_token(&logout_token)
            .await
            .map_err(Error::InvalidLogoutToken)?;
        let now = self.clock.now_unix();
        let remember_for =
            std::time::Duration::from_secs((claims.remember_until - now).max(1) as u64);
        if self.sessions.logout_token_seen(&claims.jti).await? {
            return Err(Error::InvalidLogoutToken(LogoutTokenError::Replayed));
        }
        // Sessions first, the jti after: if the store fails midway, the IdP's retry is not
        // mistaken for a replay.
        let ended = match (&claims.idp_session_id, &claims.subject) {
            (Some(sid), _) => self.sessions.delete_by_idp_session(sid).await?,
            (None, Some(subject)) => self.sessions.delete_by_subject(subject).await?,
            (None, None) => 0,
        };
        self.sessions
            .remember_logout_token(&claims.jti, remember_for)
            .await?;
        tracing::info!(sessions = ended, "back-channel logout");
        self.metrics.record_backchannel_logout();
        self.metrics
            .record_sessions_ended(SessionEndReason::Backchannel, ended);
        Ok(Decision::Deny {
            status: 200,
            message: String::new(),
            headers: vec![("cache-control".into(), "no-store".into())],
            set_cookies: Vec::new(),
        })
    }
}
