//! Step 1: no valid session. A browser navigation gets a pending login in the store and a redirect
//! to the IdP's authorization endpoint; anything else gets 401. What an anonymous client can make
//! us store is bounded: the return target (`RequestView::local_target`, at most 2 KiB), the
//! pending logins per login cookie (`max_pending_logins`, oldest dropped), and the store itself.

use super::cookies::{CookieJar, CookieKind};
use super::{Decision, Flow, RequestView};
use crate::config::{PkceMode, RedirectUri, ResponseMode};
use crate::crypto::cookie::{self, CookiePurpose};
use crate::crypto::labelled_hash;
use crate::crypto::random::{random_bytes, random_token};
use crate::error::Error;
use crate::oidc::AuthorizationRequest;
use crate::session::PendingLoginRecord;

/// The label under which a login cookie's id is hashed into the pending login.
pub(super) const BINDING_LABEL: &str = "login binding";

impl Flow {
    pub(super) async fn start_login(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
        mut set_cookies: Vec<String>,
    ) -> Result<Decision, Error> {
        if !request.is_browser_navigation() {
            return Ok(Decision::Deny {
                status: 401,
                message: "Authentication required.".into(),
                headers: vec![(
                    "www-authenticate".into(),
                    "Bearer realm=\"oidc-authz\"".into(),
                )],
                set_cookies,
            });
        }
        let Some(metadata) = self.provider.metadata() else {
            self.provider.discovery_wanted();
            return Err(Error::ProviderNotReady);
        };

        // One login cookie serves every tab logging in at once; each login has its own state.
        let existing_binding = jar
            .values(request, CookieKind::Login)
            .into_iter()
            .find_map(|value| cookie::verify(&self.keys, CookiePurpose::Login, value))
            .filter(|verified| !verified.signed_by_old_key)
            .map(|verified| verified.id);
        let binding = match existing_binding {
            Some(id) => id,
            None => {
                let id = random_bytes::<16>()?;
                let value = cookie::sign(&self.keys, CookiePurpose::Login, &id);
                set_cookies.push(jar.set(CookieKind::Login, &value, self.config.login_timeout));
                id
            }
        };

        let state = random_token()?;
        let nonce = random_token()?;
        let use_pkce = match self.config.pkce {
            PkceMode::Always => true,
            PkceMode::Never => false,
            PkceMode::Auto => metadata.supports_pkce_s256(),
        };
        let pkce_verifier = if use_pkce {
            random_token()?
        } else {
            String::new()
        };
        let redirect_uri = match &self.config.redirect_uri {
            RedirectUri::Path(path) => format!("{}{path}", request.origin()),
            RedirectUri::Absolute(url) => url.to_string(),
        };
        let pending = PendingLoginRecord {
            nonce: nonce.clone(),
            pkce_verifier: pkce_verifier.clone(),
            original_url: request.local_target(self.config.preserve_query_args),
            browser_binding_hash: labelled_hash(BINDING_LABEL, &binding).to_vec(),
            redirect_uri: redirect_uri.clone(),
            created_at: self.clock.now_unix(),
        };
        self.sessions
            .put_pending(&state, &pending, self.config.login_timeout)
            .await?;
        // A browser that keeps its login cookie cannot pile up pending logins; one that drops it
        // gets a new cookie each time, and the store's own bound (evicting logins first) holds.
        self.sessions
            .bound_pending_per_browser(
                &binding,
                &state,
                self.config.max_pending_logins,
                self.config.login_timeout,
            )
            .await?;

        let location = crate::oidc::authorization_url(
            &metadata,
            &AuthorizationRequest {
                client_id: &self.config.client_id,
                redirect_uri: &redirect_uri,
                scopes: &self.config.scopes,
                state: &state,
                nonce: &nonce,
                pkce_verifier: use_pkce.then_some(pkce_verifier.as_str()),
                response_mode: (self.config.response_mode == ResponseMode::FormPost)
                    .then_some("form_post"),
                extra_params: &self.config.authorization_params,
            },
        )?;
        Ok(Decision::Redirect {
            status: 302,
            location: location.into(),
            set_cookies,
        })
    }
}
