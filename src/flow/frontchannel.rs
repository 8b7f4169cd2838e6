//! Front-channel logout (OpenID Connect Front-Channel Logout 1.0): after a logout at the IdP, the
//! IdP's logout page loads our `frontchannel_logout_path` in a hidden iframe with `iss` and `sid`
//! in the query; we end every session of that `sid` (the `by-sid` index that back-channel logout
//! uses) and answer a small page that no cache keeps.
//!
//! No cookie is needed or read: the iframe is cross-site for the app, so a `SameSite=Lax` session
//! cookie never comes with it. What authenticates the request is only the `sid`, an unguessable
//! value the IdP gave us in the ID token; `iss` must be our issuer exactly. The query is attacker
//! controlled, so nothing of it is logged.
//!
//! LemonLDAP::NG 2.16 puts no `sid` in its ID tokens and sends the user's id (`sub`) as `sid`:
//! `frontchannel_logout_sid_claim: sub` compares `sid` with the `sub` index instead.

use super::{Decision, Flow, RequestView};
use crate::config::FrontchannelSidClaim;
use crate::error::{Error, FrontchannelRefusal};
use crate::metrics::SessionEndReason;

/// `Cache-Control` of the answer: §2 asks the RP to keep the page out of every cache.
const CACHE_CONTROL: &str = "no-cache, no-store";

impl Flow {
    pub(super) async fn frontchannel_logout(
        &self,
        request: &RequestView,
    ) -> Result<Decision, Error> {
        if request.method != "GET" {
            return Err(Error::MethodNotAllowed);
        }
        let metadata = self.provider.metadata().ok_or(Error::ProviderNotReady)?;
        let (issuer, idp_session_id) = frontchannel_parameters(&request.query)?;
        if issuer != metadata.issuer() {
            return Err(Error::InvalidFrontchannelLogout(
                FrontchannelRefusal::WrongIssuer,
            ));
        }
        let ended = match self.config.frontchannel_logout_sid_claim {
            FrontchannelSidClaim::Sid => {
                self.sessions.delete_by_idp_session(&idp_session_id).await?
            }
            FrontchannelSidClaim::Sub => self.sessions.delete_by_subject(&idp_session_id).await?,
        };
        tracing::info!(sessions = ended, "front-channel logout");
        self.metrics.record_frontchannel_logout();
        self.metrics
            .record_sessions_ended(SessionEndReason::Frontchannel, ended);
        Ok(Decision::Deny {
            status: 200,
            message: "Signed out.".into(),
            headers: vec![("cache-control".into(), CACHE_CONTROL.into())],
            set_cookies: Vec::new(),
        })
    }
}

/// `iss` and `sid` from the query, each once and not empty.
fn frontchannel_parameters(query: &str) -> Result<(String, String), Error> {
    let mut issuer = None;
    let mut idp_session_id = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "iss" => &mut issuer,
            "sid" => &mut idp_session_id,
            _ => continue,
        };
        if slot.is_some() {
            return Err(Error::InvalidFrontchannelLogout(
                FrontchannelRefusal::RepeatedParameter,
            ));
        }
        *slot = Some(value.into_owned());
    }
    let issuer = issuer
        .filter(|iss| !iss.is_empty())
        .ok_or(Error::InvalidFrontchannelLogout(
            FrontchannelRefusal::MissingIssuer,
        ))?;
    let idp_session_id =
        idp_session_id
            .filter(|sid| !sid.is_empty())
            .ok_or(Error::InvalidFrontchannelLogout(
                FrontchannelRefusal::MissingSessionId,
            ))?;
    Ok((issuer, idp_session_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(query: &str) -> Option<FrontchannelRefusal> {
        match frontchannel_parameters(query) {
            Err(Error::InvalidFrontchannelLogout(refusal)) => Some(refusal),
            _ => None,
        }
    }

    #[test]
    fn iss_and_sid_are_each_required_once() {
        assert_eq!(
            frontchannel_parameters("iss=https%3A%2F%2Fidp&sid=s%201&x=y").ok(),
            Some(("https://idp".into(), "s 1".into()))
        );
        assert_eq!(refusal("sid=s1"), Some(FrontchannelRefusal::MissingIssuer));
        assert_eq!(
            refusal("iss=&sid=s1"),
            Some(FrontchannelRefusal::MissingIssuer)
        );
        assert_eq!(
            refusal("iss=https%3A%2F%2Fidp"),
            Some(FrontchannelRefusal::MissingSessionId)
        );
        assert_eq!(
            refusal("iss=i&sid=s1&sid=s2"),
            Some(FrontchannelRefusal::RepeatedParameter)
        );
    }
}
