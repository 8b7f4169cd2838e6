//! `providers:`: named IdP clients next to the top-level one, which is the `default` provider.
//! Each provider's IdP-client keys (`issuer`, `client_id`, `client_secret`, `scopes`, ...) are
//! inherited from the top level when not given; what must differ between providers is not
//! inherited: `redirect_uri` (required), `session_cookie_name` (default: the top-level name, `-`,
//! the provider's name), `logout_path` and `backchannel_logout_path` (none unless given).
//! `logout_redirect_uri` is inherited. Validation here covers what spans providers: names, and
//! that callback/logout paths and cookie names are distinct across all of them.

use std::collections::HashMap;

use serde_yaml::Mapping;
use url::Url;

use super::Config;
use super::fields::path_key;
use super::idp_client::{IdpClient, idp_client};
use super::reader::Reader;

/// The name of the provider the top-level keys form.
pub const DEFAULT_PROVIDER: &str = "default";

/// Longest provider name: it appears in cookie names, store keys and metrics labels.
const MAX_PROVIDER_NAME_LEN: usize = 32;

/// One entry of `providers:`, inheritance applied.
#[derive(Debug, Clone)]
pub struct NamedProvider {
    /// `[a-z0-9_-]{1,32}`, never `default`.
    pub name: String,
    pub client: IdpClient,
    pub session_cookie_name: String,
    pub logout_path: Option<String>,
    pub logout_redirect_uri: Option<String>,
    pub backchannel_logout_path: Option<String>,
}

impl Config {
    /// Every provider's name, `default` first.
    pub fn provider_names(&self) -> Vec<&str> {
        std::iter::once(DEFAULT_PROVIDER)
            .chain(self.providers.iter().map(|p| p.name.as_str()))
            .collect()
    }

    /// Every provider's session cookie name, `default` first.
    pub fn session_cookie_names(&self) -> Vec<String> {
        std::iter::once(&self.session_cookie_name)
            .chain(self.providers.iter().map(|p| &p.session_cookie_name))
            .cloned()
            .collect()
    }

    /// The configuration one provider's flow runs with: this one, with the provider's IdP client,
    /// cookie name and logout paths in place of the top-level ones. `default` gives the top level.
    pub fn for_provider(&self, name: &str) -> Option<Config> {
        let mut config = self.clone();
        config.providers = Vec::new();
        if name == DEFAULT_PROVIDER {
            return Some(config);
        }
        let provider = self.providers.iter().find(|p| p.name == name)?.clone();
        let IdpClient {
            issuer,
            client_id,
            client_secret,
            client_auth,
            scopes,
            redirect_uri,
            response_mode,
            pkce,
            authorization_params,
            id_token_signing_algs,
            idp_ca_pem,
        } = provider.client;
        config.issuer = issuer;
        config.client_id = client_id;
        config.client_secret = client_secret;
        config.client_auth = client_auth;
        config.scopes = scopes;
        config.redirect_uri = redirect_uri;
        config.response_mode = response_mode;
        config.pkce = pkce;
        config.authorization_params = authorization_params;
        config.id_token_signing_algs = id_token_signing_algs;
        config.idp_ca_pem = idp_ca_pem;
        config.session_cookie_name = provider.session_cookie_name;
        config.logout_path = provider.logout_path;
        config.logout_redirect_uri = provider.logout_redirect_uri;
        config.backchannel_logout_path = provider.backchannel_logout_path;
        // Front-channel logout is the top-level provider's only (README, Several providers).
        config.frontchannel_logout_path = None;
        Some(config)
    }
}

/// A cookie name: letters, digits, `-` and `_`.
pub(super) fn cookie_name(reader: &mut Reader, key: &str, default: &str) -> String {
    let name = reader.string_or(key, default);
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        reader.error(key, "use letters, digits, - and _ only");
    }
    name
}

/// `logout_redirect_uri`: a path or an absolute URL; empty means none.
pub(super) fn logout_redirect_uri(reader: &mut Reader) -> Option<String> {
    let uri = reader
        .string("logout_redirect_uri")
        .filter(|s| !s.is_empty())?;
    if !uri.starts_with('/') && Url::parse(&uri).is_err() {
        reader.error(
            "logout_redirect_uri",
            format!("`{uri}` must be a path or an absolute URL"),
        );
    }
    Some(uri)
}

/// What the top level's provider (`default`) holds that the others must not repeat.
pub(super) struct DefaultProvider<'a> {
    pub client: &'a IdpClient,
    pub session_cookie_name: &'a str,
    pub logout_path: Option<&'a str>,
    pub logout_redirect_uri: Option<&'a str>,
    pub backchannel_logout_path: Option<&'a str>,
}

/// Reads `providers:` and checks that every provider's paths and cookie names are its own.
pub(super) fn providers(
    map: Option<&Mapping>,
    top: &DefaultProvider,
    errors: &mut Vec<String>,
) -> Vec<NamedProvider> {
    let mut reader = Reader::new(map, "providers", errors);
    let mut claims = Claims::default();
    claims.add_provider(
        &mut reader,
        DEFAULT_PROVIDER,
        top_endpoints(top),
        top.session_cookie_name,
    );
    let mut providers = Vec::new();
    for key in map.into_iter().flat_map(Mapping::keys) {
        let Some(name) = key.as_str() else {
            reader
                .errors
                .push(format!("providers: `{key:?}` is not a provider name"));
            continue;
        };
        if !valid_name(&mut reader, name) {
            continue;
        }
        let Some(provider_map) = reader.mapping(name) else {
            continue;
        };
        let path = reader.path(name);
        let mut provider_reader = Reader::new(Some(provider_map), &path, reader.errors);
        let provider = named_provider(&mut provider_reader, name, top);
        claims.add_provider(
            &mut provider_reader,
            name,
            endpoints(&provider),
            &provider.session_cookie_name,
        );
        provider_reader.finish();
        providers.push(provider);
    }
    reader.finish();
    providers
}

fn valid_name(reader: &mut Reader, name: &str) -> bool {
    let problem = if name == DEFAULT_PROVIDER {
        "the top-level keys are the `default` provider; set them there"
    } else if name.is_empty()
        || name.len() > MAX_PROVIDER_NAME_LEN
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        "a provider name is 1 to 32 of a-z, 0-9, - and _"
    } else {
        return true;
    };
    // Marks the key read, so `finish` does not also call it unknown.
    reader.value(name);
    reader.error(name, problem);
    false
}

fn named_provider(reader: &mut Reader, name: &str, top: &DefaultProvider) -> NamedProvider {
    let client = idp_client(reader, Some(top.client));
    let default_cookie = format!("{}-{name}", top.session_cookie_name);
    NamedProvider {
        name: name.to_owned(),
        client,
        session_cookie_name: cookie_name(reader, "session_cookie_name", &default_cookie),
        logout_path: path_key(reader, "logout_path", None),
        logout_redirect_uri: logout_redirect_uri(reader)
            .or_else(|| top.logout_redirect_uri.map(str::to_owned)),
        backchannel_logout_path: path_key(reader, "backchannel_logout_path", None),
    }
}

type Endpoints<'a> = [(&'static str, Option<&'a str>); 3];

fn top_endpoints<'a>(top: &'a DefaultProvider) -> Endpoints<'a> {
    [
        ("redirect_uri", Some(top.client.redirect_uri.path())),
        ("logout_path", top.logout_path),
        ("backchannel_logout_path", top.backchannel_logout_path),
    ]
}

fn endpoints(provider: &NamedProvider) -> Endpoints<'_> {
    [
        ("redirect_uri", Some(provider.client.redirect_uri.path())),
        ("logout_path", provider.logout_path.as_deref()),
        (
            "backchannel_logout_path",
            provider.backchannel_logout_path.as_deref(),
        ),
    ]
}

/// Paths and cookie names taken so far, each with the provider and key that took it.
#[derive(Default)]
struct Claims {
    paths: HashMap<String, (String, &'static str)>,
    cookies: HashMap<String, String>,
}

impl Claims {
    /// Records a provider's endpoints and cookies; a clash is reported on the provider's key
    /// (the top level's own clashes are `validate/logout.rs`'s, so `default` only records).
    fn add_provider(
        &mut self,
        reader: &mut Reader,
        name: &str,
        endpoints: Endpoints,
        session_cookie_name: &str,
    ) {
        let is_default = name == DEFAULT_PROVIDER;
        for (key, path) in endpoints {
            let Some(path) = path.filter(|path| !path.is_empty()) else {
                continue;
            };
            match self.paths.get(path) {
                Some((owner, owner_key)) if !is_default => reader.error(
                    key,
                    format!("`{path}` is already the {owner_key} of provider `{owner}`"),
                ),
                Some(_) => {}
                None => {
                    self.paths.insert(path.to_owned(), (name.to_owned(), key));
                }
            }
        }
        // A provider's login cookie is `<session cookie>_login`: both names must be free.
        let names = [
            session_cookie_name.to_owned(),
            format!("{session_cookie_name}_login"),
        ];
        if let Some((taken, owner)) = names
            .iter()
            .find_map(|n| self.cookies.get(n).map(|owner| (n, owner)))
        {
            reader.error(
                "session_cookie_name",
                format!(
                    "`{session_cookie_name}` makes cookie `{taken}`, which provider `{owner}` already uses"
                ),
            );
            return;
        }
        for cookie in names {
            self.cookies.insert(cookie, name.to_owned());
        }
    }
}
