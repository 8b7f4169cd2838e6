//! The RP-initiated logout URL (OpenID Connect RP-Initiated Logout 1.0 §2), built by the
//! openidconnect crate's `LogoutRequest`: the IdP's `end_session_endpoint` with the hint that names
//! the session (`id_token_hint`, or `logout_hint` when no token may appear in a URL), our
//! `client_id`, and `post_logout_redirect_uri`.

use std::str::FromStr;

use openidconnect::core::CoreIdToken;
use openidconnect::{ClientId, EndSessionUrl, LogoutHint, LogoutRequest, PostLogoutRedirectUrl};
use url::Url;

/// How the logout names the IdP session it ends.
pub enum SessionHint<'a> {
    /// The whole ID token (`id_token_hint`): what most IdPs need to skip their confirmation.
    IdToken(&'a str),
    /// `logout_hint` (we send the IdP's `sid`), with no token in the URL.
    LogoutHint(&'a str),
    None,
}

pub fn end_session_url(
    end_session_endpoint: &Url,
    hint: SessionHint,
    client_id: &str,
    post_logout_redirect_uri: Option<&str>,
) -> Url {
    let mut request = LogoutRequest::from(EndSessionUrl::from_url(end_session_endpoint.clone()));
    match hint {
        // A stored token the crate cannot read is left out rather than failing the logout.
        SessionHint::IdToken(token) => {
            if let Ok(token) = CoreIdToken::from_str(token) {
                request = request.set_id_token_hint(&token);
            }
        }
        SessionHint::LogoutHint(hint) => {
            request = request.set_logout_hint(LogoutHint::new(hint.to_owned()));
        }
        SessionHint::None => {}
    }
    request = request.set_client_id(ClientId::new(client_id.to_owned()));
    if let Some(uri) =
        post_logout_redirect_uri.and_then(|u| PostLogoutRedirectUrl::new(u.to_owned()).ok())
    {
        request = request.set_post_logout_redirect_uri(uri);
    }
    request.http_get_url()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn query(url: &Url) -> HashMap<String, String> {
        url.query_pairs().into_owned().collect()
    }

    #[test]
    fn logout_hint_puts_no_token_in_the_url_and_keeps_the_endpoint_query() {
        let endpoint = Url::parse("https://idp.example/logout?realm=a").unwrap();
        let url = end_session_url(
            &endpoint,
            SessionHint::LogoutHint("sid-1"),
            "envoy",
            Some("https://app.example/bye"),
        );
        let query = query(&url);
        assert_eq!(query["realm"], "a");
        assert_eq!(query["logout_hint"], "sid-1");
        assert_eq!(query["client_id"], "envoy");
        assert_eq!(query["post_logout_redirect_uri"], "https://app.example/bye");
        assert!(!query.contains_key("id_token_hint"));
        let bare = end_session_url(&endpoint, SessionHint::IdToken("not-a-jwt"), "envoy", None);
        assert_eq!(query_keys(&bare), ["client_id", "realm"]);
    }

    fn query_keys(url: &Url) -> Vec<String> {
        let mut keys: Vec<String> = query(url).into_keys().collect();
        keys.sort();
        keys
    }
}
