//! The IdP-client keys (`issuer`, `client_id`, `client_secret`, `client_auth`, `scopes`,
//! `redirect_uri`, `response_mode`, `pkce`, `authorization_params`, `id_token_signing_algs`,
//! `ca_file`), read the same way for the top level (the `default` provider) and for each entry of
//! `providers:`, where an absent key is inherited from the top level.

use jsonwebtoken::Algorithm;
use url::Url;

use super::fields::{pem_file, secret_text};
use super::reader::Reader;
use super::{ClientAuth, PkceMode, RedirectUri, ResponseMode};
use crate::secret::Secret;

const DEFAULT_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

const RESERVED_AUTHORIZATION_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
];

/// How oidc-authz is registered at one IdP: the keys every provider has.
#[derive(Debug, Clone)]
pub struct IdpClient {
    pub issuer: Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    pub redirect_uri: RedirectUri,
    pub response_mode: ResponseMode,
    pub pkce: PkceMode,
    /// Extra parameters for the authorization request (`prompt`, `acr_values`, `audience`...).
    pub authorization_params: Vec<(String, String)>,
    pub id_token_signing_algs: Vec<Algorithm>,
    /// `ca_file`: PEM certificates trusted for the IdP besides the system's CA store.
    pub idp_ca_pem: Option<String>,
}

/// The IdP-client keys of one mapping: the top level (`base` is `None`: defaults and required
/// keys apply) or a provider (`base` is the top level's client: absent keys are inherited, except
/// `redirect_uri`, which each provider needs its own of).
pub(super) fn idp_client(reader: &mut Reader, base: Option<&IdpClient>) -> IdpClient {
    IdpClient {
        issuer: issuer(reader, base),
        client_id: client_id(reader, base),
        client_secret: client_secret(reader, base),
        client_auth: client_auth(reader, base),
        scopes: scopes(reader, base),
        redirect_uri: redirect_uri(reader, base.is_some()),
        response_mode: response_mode(reader, base),
        pkce: pkce(reader, base),
        authorization_params: authorization_params(reader, base),
        id_token_signing_algs: signing_algs(reader, base),
        idp_ca_pem: pem_file(reader, "ca_file", "-----BEGIN CERTIFICATE-----")
            .or_else(|| base.and_then(|b| b.idp_ca_pem.clone())),
    }
}

fn client_id(reader: &mut Reader, base: Option<&IdpClient>) -> String {
    reader
        .string("client_id")
        .or_else(|| base.map(|b| b.client_id.clone()))
        .unwrap_or_else(|| {
            reader.error("client_id", "required");
            String::new()
        })
}

fn client_secret(reader: &mut Reader, base: Option<&IdpClient>) -> Secret {
    secret_text(reader, "client_secret")
        .map(|text| Secret::new(text.trim()))
        .or_else(|| base.map(|b| b.client_secret.clone()))
        .unwrap_or_else(|| {
            reader.error("client_secret", "required (or client_secret_file)");
            Secret::default()
        })
}

fn client_auth(reader: &mut Reader, base: Option<&IdpClient>) -> ClientAuth {
    reader.choice_or(
        "client_auth",
        &[
            ("client_secret_basic", ClientAuth::ClientSecretBasic),
            ("client_secret_post", ClientAuth::ClientSecretPost),
        ],
        base.map_or(ClientAuth::ClientSecretBasic, |b| b.client_auth),
    )
}

fn response_mode(reader: &mut Reader, base: Option<&IdpClient>) -> ResponseMode {
    reader.choice_or(
        "response_mode",
        &[
            ("query", ResponseMode::Query),
            ("form_post", ResponseMode::FormPost),
        ],
        base.map_or(ResponseMode::Query, |b| b.response_mode),
    )
}

fn pkce(reader: &mut Reader, base: Option<&IdpClient>) -> PkceMode {
    reader.choice_or(
        "pkce",
        &[
            ("auto", PkceMode::Auto),
            ("always", PkceMode::Always),
            ("never", PkceMode::Never),
        ],
        base.map_or(PkceMode::Auto, |b| b.pkce),
    )
}

fn issuer(reader: &mut Reader, base: Option<&IdpClient>) -> Url {
    let fallback = || Url::parse("http://invalid.invalid").expect("valid");
    let Some(text) = reader.string("issuer") else {
        if let Some(base) = base {
            return base.issuer.clone();
        }
        reader.error("issuer", "required (the IdP's issuer URL; discovery is at {issuer}/.well-known/openid-configuration)");
        return fallback();
    };
    match Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => url,
        _ => {
            reader.error("issuer", format!("`{text}` is not an http(s) URL"));
            fallback()
        }
    }
}

fn scopes(reader: &mut Reader, base: Option<&IdpClient>) -> Vec<String> {
    let Some(scopes) = reader.string_list("scopes") else {
        return base.map_or_else(
            || vec!["openid".into(), "profile".into(), "email".into()],
            |b| b.scopes.clone(),
        );
    };
    if !scopes.iter().any(|s| s == "openid") {
        reader.error("scopes", "must include `openid`");
    }
    scopes
}

/// `redirect_uri`: a path on whatever host the request came to, or an absolute URI. A provider
/// has no default: its callback path must differ from every other provider's.
fn redirect_uri(reader: &mut Reader, is_named_provider: bool) -> RedirectUri {
    let text = match reader.string("redirect_uri") {
        Some(text) => text,
        None if is_named_provider => {
            reader.error(
                "redirect_uri",
                "required: each provider needs its own callback path (e.g. /callback/NAME)",
            );
            return RedirectUri::Path(String::new());
        }
        None => "/callback".into(),
    };
    if text.starts_with('/') && !text.contains(['?', '#']) {
        return RedirectUri::Path(text);
    }
    match Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.query().is_none() => {
            RedirectUri::Absolute(url)
        }
        _ => {
            reader.error(
                "redirect_uri",
                format!("`{text}` must be a path like /callback or an absolute http(s) URI without query"),
            );
            // The top level falls back to its default, so its other paths are still checked
            // against it; a provider's fallback is skipped by the distinctness check.
            RedirectUri::Path(if is_named_provider { "" } else { "/callback" }.into())
        }
    }
}

fn authorization_params(reader: &mut Reader, base: Option<&IdpClient>) -> Vec<(String, String)> {
    let Some(map) = reader.mapping("authorization_params") else {
        return base.map_or_else(Vec::new, |b| b.authorization_params.clone());
    };
    let mut params = Vec::new();
    for (key, value) in map {
        let (Some(key), Some(value)) = (key.as_str(), value.as_str()) else {
            reader.error(
                "authorization_params",
                "expected a mapping of strings to strings",
            );
            continue;
        };
        if RESERVED_AUTHORIZATION_PARAMS.contains(&key) {
            reader.error(
                &format!("authorization_params.{key}"),
                "is set by oidc-authz itself; use the matching option instead",
            );
        } else {
            params.push((key.to_owned(), value.to_owned()));
        }
    }
    params
}

fn signing_algs(reader: &mut Reader, base: Option<&IdpClient>) -> Vec<Algorithm> {
    let Some(names) = reader.string_list("id_token_signing_algs") else {
        if let Some(base) = base {
            return base.id_token_signing_algs.clone();
        }
        return DEFAULT_ALGS
            .iter()
            .map(|name| name.parse().expect("a JWS algorithm"))
            .collect();
    };
    let mut algs = Vec::new();
    for name in &names {
        match name.parse::<Algorithm>() {
            Ok(alg) => algs.push(alg),
            Err(_) => reader.error(
                "id_token_signing_algs",
                format!("`{name}` is not a JWS algorithm (`none` is never accepted)"),
            ),
        }
    }
    if algs.is_empty() {
        reader.error("id_token_signing_algs", "must list at least one algorithm");
    }
    algs
}
