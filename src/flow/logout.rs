//! RP-initiated logout: the logout path ends the session here, clears the cookie, and sends the
//! browser to the IdP's `end_session_endpoint` (with `id_token_hint`, `client_id` and the
//! configured `post_logout_redirect_uri`) so the IdP's session ends too.

use super::cookies::{CookieJar, CookieKind};
use super::{Decision, Flow, RequestView};
use crate::error::Error;

impl Flow {
    pub(super) async fn logout(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
    ) -> Result<Decision, Error> {
        if !self.config.logout_methods.contains(&request.method) {
            return Err(Error::MethodNotAllowed(request.method.clone()));
        }
        let mut id_token = String::new();
        if let Some(found) = self.find_session(request, jar).await? {
            self.sessions.end(&found.id, &found.loaded.record).await?;
            tracing::info!(subject = %found.loaded.record.subject, "logged out");
            self.metrics.record_rp_logout();
            id_token = found.loaded.record.id_token;
        }
        let post_logout = self.config.logout_redirect_uri.as_ref().map(|uri| {
            if uri.starts_with('/') {
                format!("{}{uri}", request.origin())
            } else {
                uri.clone()
            }
        });
        let location = match self
            .provider
            .metadata()
            .and_then(|m| m.end_session_endpoint().cloned())
        {
            Some(mut end_session) => {
                {
                    let mut query = end_session.query_pairs_mut();
                    if !id_token.is_empty() {
                        query.append_pair("id_token_hint", &id_token);
                    }
                    query.append_pair("client_id", &self.config.client_id);
                    if let Some(uri) = &post_logout {
                        query.append_pair("post_logout_redirect_uri", uri);
                    }
                }
                end_session.to_string()
            }
            None => post_logout.unwrap_or_else(|| "/".to_owned()),
        };
        Ok(Decision::Redirect {
            status: if request.method == "GET" { 302 } else { 303 },
            location,
            set_cookies: vec![jar.clear(CookieKind::Session)],
        })
    }
}
