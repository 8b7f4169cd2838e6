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
use crate::oidc::{AuthorizationRequest, ProviderMetadata};
use crate::session::PendingLoginRecord;

/// The label under which a login cookie's id is hashed into the pending login.
pub(super) const BINDING_LABEL: &str = "login binding";

/// A request that is not a browser navigation (a script, an API call) gets 401, never a login.
fn authentication_required(set_cookies: Vec<String>) -> Decision {
    Decision::Deny {
        status: 401,
        message: "Authentication required.".into(),
        headers: vec![(
            "www-authenticate".into(),
            "Bearer realm=\"oidc-authz\"".into(),
        )],
        set_cookies,
    }
}

impl Flow {
    pub(super) async fn start_login(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
        mut set_cookies: Vec<String>,
    ) -> Result<Decision, Error> {
        if !request.is_browser_navigation() {
            return Ok(authentication_required(set_cookies));
        }
        let Some(metadata) = self.provider.metadata() else {
            self.provider.discovery_wanted();
            return Err(Error::ProviderNotReady);
        };
        let binding = self.login_binding(request, jar, &mut set_cookies)?;
        let state = random_token()?;
        let use_pkce = self.use_pkce(&metadata);
        let pending = self.pending_login(request, &binding, use_pkce)?;
        self.store_pending_login(&binding, &state, &pending).await?;
        let location = self.authorization_location(&metadata, &state, &pending, use_pkce)?;
        Ok(Decision::Redirect {
            status: 302,
            location,
            set_cookies,
        })
    }

    /// The id this browser's login cookie binds its logins to. One login cookie serves every tab
    /// logging in at once (each login has its own state); a new one is set when there is none, or
    /// only one signed by an old key.
    fn login_binding(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
        set_cookies: &mut Vec<String>,
    ) -> Result<[u8; 16], Error> {
        let existing_binding = jar
            .values(request, CookieKind::Login)
            .into_iter()
            .find_map(|value| cookie::verify(&self.keys, CookiePurpose::Login, value))
            .filter(|verified| !verified.signed_by_old_key)
            .map(|verified| verified.id);
        if let Some(id) = existing_binding {
            return Ok(id);
        }
        let id = random_bytes::<16>()?;
        let value = cookie::sign(&self.keys, CookiePurpose::Login, &id);
        set_cookies.push(jar.set(CookieKind::Login, &value, self.config.login_timeout));
        Ok(id)
    }

    fn use_pkce(&self, metadata: &ProviderMetadata) -> bool {
        match self.config.pkce {
            PkceMode::Always => true,
            PkceMode::Never => false,
            PkceMode::Auto => metadata.supports_pkce_s256(),
        }
    }

    /// What the callback will need: a fresh nonce and PKCE verifier (empty without PKCE), where
    /// to return, the browser binding's hash and the redirect URI the IdP is sent.
    fn pending_login(
        &self,
        request: &RequestView,
        binding: &[u8],
        use_pkce: bool,
    ) -> Result<PendingLoginRecord, Error> {
        let nonce = random_token()?;
        let pkce_verifier = if use_pkce {
            random_token()?
        } else {
            String::new()
        };
        let redirect_uri = match &self.config.redirect_uri {
            RedirectUri::Path(path) => format!("{}{path}", request.origin()),
            RedirectUri::Absolute(url) => url.to_string(),
        };
        Ok(PendingLoginRecord {
            nonce,
            pkce_verifier,
            original_url: request.local_target(self.config.preserve_query_args),
            browser_binding_hash: labelled_hash(BINDING_LABEL, binding).to_vec(),
            redirect_uri,
            created_at: self.clock.now_unix(),
        })
    }

    async fn store_pending_login(
        &self,
        binding: &[u8],
        state: &str,
        pending: &PendingLoginRecord,
    ) -> Result<(), Error> {
        self.sessions
            .put_pending(state, pending, self.config.login_timeout)
            .await?;
        // A browser that keeps its login cookie cannot pile up pending logins; one that drops it
        // gets a new cookie each time, and the store's own bound (evicting logins first) holds.
        self.sessions
            .bound_pending_per_browser(
                binding,
                state,
                self.config.max_pending_logins,
                self.config.login_timeout,
            )
            .await?;
        Ok(())
    }

    /// The IdP's authorization endpoint with this login's parameters.
    fn authorization_location(
        &self,
        metadata: &ProviderMetadata,
        state: &str,
        pending: &PendingLoginRecord,
        use_pkce: bool,
    ) -> Result<String, Error> {
        let location = crate::oidc::authorization_url(
            metadata,
            &AuthorizationRequest {
                client_id: &self.config.client_id,
                redirect_uri: &pending.redirect_uri,
                scopes: &self.config.scopes,
                state,
                nonce: &pending.nonce,
                pkce_verifier: use_pkce.then_some(pending.pkce_verifier.as_str()),
                response_mode: (self.config.response_mode == ResponseMode::FormPost)
                    .then_some("form_post"),
                extra_params: &self.config.authorization_params,
            },
        )?;
        Ok(location.into())
    }
}
