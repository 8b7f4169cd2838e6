//! Opaque access tokens (RFC 7662) and the userinfo endpoint: the IdP's answers about a token,
//! the introspection ones through the bounded cache keyed by the token's hash.

use super::{Discovered, Provider};
use crate::config::ClientAuth;
use crate::metrics::IdpEndpoint;
use crate::oidc::AccessTokenError;
use crate::oidc::introspection::{self, Introspected};
use crate::oidc::userinfo::{self, UserinfoError};
use crate::secret::Secret;

impl Provider {
    /// The cached answer for this token, else the introspection endpoint's (then cached).
    pub(super) async fn introspect_through_cache(
        &self,
        access_token: &Secret,
    ) -> Result<serde_json::Map<String, serde_json::Value>, AccessTokenError> {
        let discovered = self
            .discovered()
            .ok_or(AccessTokenError::ProviderNotReady)?;
        let key = introspection::token_hash(access_token.expose());
        let now = self.clock.now_unix();
        let answer = match self.introspection_cache.get(&key, now) {
            Some(answer) => answer,
            None => {
                let answer = self
                    .ask_introspection_endpoint(&discovered, access_token)
                    .await?;
                self.introspection_cache.put(key, answer.clone(), now);
                answer
            }
        };
        match answer {
            Introspected::Active(members) => Ok((*members).clone()),
            Introspected::Inactive => Err(AccessTokenError::Inactive),
        }
    }

    /// One introspection request (RFC 7662 section 2.1), the client authenticated as at the
    /// token endpoint (RFC 6749 section 2.3.1: Basic credentials are form-encoded first).
    #[tracing::instrument(skip_all, name = "idp.introspection", fields(otel.kind = "client"))]
    async fn ask_introspection_endpoint(
        &self,
        discovered: &Discovered,
        access_token: &Secret,
    ) -> Result<Introspected, AccessTokenError> {
        let unavailable = AccessTokenError::IntrospectionUnavailable;
        let endpoint = discovered
            .metadata
            .introspection_endpoint()
            .ok_or_else(|| {
                unavailable("the discovery document has no introspection_endpoint".into())
            })?;
        // Built before any `.await`: the serializer is not `Send`.
        let (form, basic_auth) = introspection_request(
            access_token.expose(),
            &self.client.client_id,
            self.client.client_secret.expose(),
            self.client.auth,
        );
        let request = self.http.post_form(endpoint, form, basic_auth);
        let body = (self.metrics.time(IdpEndpoint::Introspection, request).await)
            .map_err(|error| unavailable(format!("POST introspection_endpoint: {error}")))?;
        introspection::parse(&body, self.clock.now_unix(), self.leeway_seconds)
            .map_err(|error| unavailable(error.to_string()))
    }

    /// The userinfo endpoint's claims for the holder of `access_token`, who must be `subject`.
    pub(super) async fn request_userinfo(
        &self,
        access_token: &Secret,
        subject: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, UserinfoError> {
        let discovered = self.discovered().ok_or(UserinfoError::ProviderNotReady)?;
        let endpoint = discovered
            .metadata
            .userinfo_endpoint()
            .ok_or(UserinfoError::NoEndpoint)?;
        let request = self.http.get_json_as(endpoint, Some(access_token.expose()));
        let document = (self.metrics.time(IdpEndpoint::Userinfo, request).await)
            .map_err(|error| UserinfoError::Unavailable(error.to_string()))?;
        userinfo::parse(&document.body, subject)
    }
}

/// The form and Basic credentials of an introspection request (RFC 6749 section 2.3.1: Basic
/// credentials are form-encoded first; `client_secret_post` puts them in the form).
fn introspection_request(
    token: &str,
    client_id: &str,
    client_secret: &str,
    auth: ClientAuth,
) -> (String, Option<(String, String)>) {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", token)
        .append_pair("token_type_hint", "access_token");
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect();
    let basic_auth = match auth {
        ClientAuth::ClientSecretBasic => Some((encode(client_id), encode(client_secret))),
        ClientAuth::ClientSecretPost => {
            form.append_pair("client_id", client_id)
                .append_pair("client_secret", client_secret);
            None
        }
    };
    (form.finish(), basic_auth)
}

#[cfg(test)]
mod introspection_request_tests {
    use super::*;

    #[test]
    fn the_client_authenticates_as_at_the_token_endpoint() {
        let (form, basic) = introspection_request(
            "tok+en",
            "my client",
            "s:e&cret",
            ClientAuth::ClientSecretBasic,
        );
        assert_eq!(form, "token=tok%2Ben&token_type_hint=access_token");
        assert_eq!(basic, Some(("my+client".into(), "s%3Ae%26cret".into())));
        let (form, basic) =
            introspection_request("t", "my client", "s&", ClientAuth::ClientSecretPost);
        assert_eq!(
            form,
            "token=t&token_type_hint=access_token&client_id=my+client&client_secret=s%26"
        );
        assert_eq!(basic, None);
    }
}
