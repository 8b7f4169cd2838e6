//! RP-initiated logout: the logout path ends the session here, clears the cookie the browser
//! sent, and sends the browser to the IdP's `end_session_endpoint` (with `client_id`, the
//! configured `post_logout_redirect_uri`, and `id_token_hint` or, with `logout_id_token_hint:
//! false`, `logout_hint` = the IdP's `sid`) so the IdP's
//! session ends too. A logout that did not come from this origin (a cross-site link or form) only
//! gets a confirmation page: nobody else may log our users out.

use super::cookies::{CookieJar, CookieKind};
use super::{Decision, Flow, RequestView};
use crate::error::Error;
use crate::metrics::SessionEndReason;
use crate::oidc::end_session::{SessionHint, end_session_url};

/// Whether the request came from a page of this origin, or from the person (address bar,
/// bookmark). `Sec-Fetch-Site` is what browsers say; `Origin` counts only without it (older
/// browsers send it on POST). Neither: we cannot tell, so no (fail closed: a confirmation page).
fn is_same_origin(request: &RequestView) -> bool {
    match request.header("sec-fetch-site") {
        Some(site) => site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none"),
        None => request
            .header("origin")
            .is_some_and(|origin| origin.eq_ignore_ascii_case(&request.origin())),
    }
}

impl Flow {
    pub(super) async fn logout(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
    ) -> Result<Decision, Error> {
        if !self.config.logout_methods.contains(&request.method) {
            return Err(Error::MethodNotAllowed);
        }
        if !is_same_origin(request) {
            return self.confirm_logout(request);
        }
        let mut ended = None;
        if let Some(found) = self.find_whole_session(request, jar).await? {
            self.sessions.end(&found.id, &found.loaded.record).await?;
            tracing::info!(subject = %found.loaded.record.subject, "logged out");
            self.metrics.record_rp_logout();
            self.metrics
                .record_sessions_ended(SessionEndReason::Logout, 1);
            ended = Some(found.loaded.record);
        }
        // Only a cookie the browser sent is cleared: a `Set-Cookie` on every logout would let any
        // request to the logout path delete cookies.
        let set_cookies = if jar.values(request, CookieKind::Session).is_empty() {
            Vec::new()
        } else {
            vec![jar.clear(CookieKind::Session)]
        };
        let location = self.end_session_location(request, ended.as_deref());
        Ok(Decision::Redirect {
            status: if request.method == "GET" { 302 } else { 303 },
            location,
            set_cookies,
        })
    }

    /// The confirmation page's button repeats the logout from our own origin: a POST when
    /// `logout_methods` allows it, else a GET.
    fn confirm_logout(&self, request: &RequestView) -> Result<Decision, Error> {
        let methods = &self.config.logout_methods;
        let method = if methods.iter().any(|m| m == "POST") {
            "post"
        } else if methods.iter().any(|m| m == "GET") {
            "get"
        } else {
            // DELETE only: no HTML form can send it; a cross-site DELETE is simply refused.
            return Err(Error::MethodNotAllowed);
        };
        tracing::info!("logout request from another origin: asking for confirmation");
        Ok(Decision::ConfirmLogout {
            action: request.path.clone(),
            method,
        })
    }

    /// The IdP's end-session URL, or without one `logout_redirect_uri` (or `/`).
    fn end_session_location(
        &self,
        request: &RequestView,
        ended: Option<&crate::session::SessionRecord>,
    ) -> String {
        let post_logout = self.config.logout_redirect_uri.as_ref().map(|uri| {
            if uri.starts_with('/') {
                format!("{}{uri}", request.origin())
            } else {
                uri.clone()
            }
        });
        let Some(end_session) = self
            .provider
            .metadata()
            .and_then(|m| m.end_session_endpoint().cloned())
        else {
            return post_logout.unwrap_or_else(|| "/".to_owned());
        };
        let hint = match ended {
            Some(record) if self.config.logout_id_token_hint && !record.id_token.is_empty() => {
                SessionHint::IdToken(&record.id_token)
            }
            Some(record)
                if !self.config.logout_id_token_hint && !record.idp_session_id.is_empty() =>
            {
                SessionHint::LogoutHint(&record.idp_session_id)
            }
            _ => SessionHint::None,
        };
        end_session_url(
            &end_session,
            hint,
            &self.config.client_id,
            post_logout.as_deref(),
        )
        .into()
    }
}
