//! Configuration: the validated `Config` the rest of the program reads, and how it is loaded
//! (`load`: YAML file, then `OIDC_AUTHZ_*` environment overrides, then secrets from files). A bad
//! configuration is reported whole, one line per problem with its key path, before any port is bound.

mod fields;
mod idp_client;
mod limits;
#[cfg(test)]
mod listen_tests;
mod load;
mod otel;
mod policies;
#[cfg(test)]
mod policies_tests;
mod providers;
#[cfg(test)]
mod providers_tests;
mod reader;
#[cfg(test)]
mod redis_tests;
#[cfg(test)]
mod redis_tls_tests;
mod redis_topology;
mod shutdown;
#[cfg(test)]
mod tests;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use crate::secret::Secret;
pub use idp_client::IdpClient;
pub use load::{ConfigError, ENV_PREFIX, load, load_from_str};
pub use otel::{CollectorUrlError, OtelSettings, collector_url};
pub use providers::{DEFAULT_PROVIDER, NamedProvider};
pub use shutdown::ShutdownPeriods;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
}

/// How the IdP returns the authorization response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// Code in the callback URL's query (it may reach access logs).
    Query,
    /// Code in a POSTed form body, never in a URL.
    FormPost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkceMode {
    /// When the discovery document lists `S256` in `code_challenge_methods_supported`.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSecure {
    /// `Secure` when the request came over https.
    Auto,
    Always,
    Never,
}

/// Where the IdP sends the browser back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectUri {
    /// A path on whatever host the request came to.
    Path(String),
    Absolute(Url),
}

impl RedirectUri {
    pub fn path(&self) -> &str {
        match self {
            RedirectUri::Path(path) => path,
            RedirectUri::Absolute(url) => url.path(),
        }
    }
}

/// Which Redis: exactly one of `redis.url`, `redis.cluster_urls`, `redis.sentinel`. URLs may hold
/// passwords: they are `Secret`s, printed only as `[redacted]`.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisMode {
    /// `redis.url`: one server.
    Single { url: Secret },
    /// `redis.cluster_urls`: seed nodes of a Redis Cluster.
    Cluster { urls: Vec<Secret> },
    /// `redis.sentinel`: sentinels that know the master `master_name`. `username`/`password`
    /// log in to the master (and its replicas); the URLs' credentials are for the sentinels.
    Sentinel {
        urls: Vec<Secret>,
        master_name: String,
        db: i64,
        /// An ACL user on the master; only with `password`.
        username: Option<String>,
        password: Option<Secret>,
    },
}

/// Where the gRPC Check service listens: a TCP address, or a Unix socket (`unix:/path`) that only
/// processes allowed to write to the socket file can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddress::Tcp(address) => write!(f, "{address}"),
            ListenAddress::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// PEM read from `redis.ca_file`, `redis.cert_file` and `redis.key_file`, for `rediss://`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedisTlsFiles {
    /// CAs that sign the servers' certificates, instead of the system's.
    pub ca_pem: Option<String>,
    /// A client certificate and its key (both or neither), for `tls-auth-clients yes`.
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    pub mode: RedisMode,
    /// Boxed: most configurations have none, and `SessionStorage` stays small.
    pub tls: Box<RedisTlsFiles>,
    pub key_prefix: String,
    pub pool_size: usize,
    pub command_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SessionStorage {
    Memory,
    Redis(RedisConfig),
}

/// A header injected toward the upstream: `authorization:bearer` means `Authorization: Bearer <token>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamHeader {
    pub name: String,
    /// `Some("Bearer")` puts `Bearer ` before the value.
    pub scheme: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: ListenAddress,
    pub admin_listen: SocketAddr,
    pub log_format: LogFormat,
    pub log_level: String,

    pub issuer: Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    pub redirect_uri: RedirectUri,
    pub response_mode: ResponseMode,
    pub pkce: PkceMode,
    pub preserve_query_args: bool,
    /// Extra parameters for the authorization request (`prompt`, `acr_values`, `audience`...).
    pub authorization_params: Vec<(String, String)>,
    pub id_token_signing_algs: Vec<Algorithm>,
    pub leeway: Duration,
    /// Each IdP request's timeout, at most `(ext_authz_timeout - 1) / 2` (see `fields.rs`); the
    /// refresh lock's TTL is derived from it.
    pub http_timeout: Duration,
    /// `userinfo`: fetch the userinfo endpoint at login and refresh, and merge its claims.
    pub userinfo: bool,
    /// `introspection_cache_ttl`: how long an introspection answer is reused at most (never past
    /// the token's `exp`); 0 asks the IdP every time.
    pub introspection_cache_ttl: Duration,
    /// `ca_file`: PEM certificates trusted for the IdP besides the system's CA store.
    pub idp_ca_pem: Option<String>,

    pub session_storage: SessionStorage,
    /// `memory.max_bytes`: the in-memory store's bound (keys and values); pending logins go first.
    pub memory_max_bytes: usize,
    /// `session_cache_size`: opened sessions a replica keeps while Redis reports every change to
    /// them (`session/cache.rs`); 0 for other stores or when turned off.
    pub session_cache_size: usize,
    /// Pending logins one login cookie may hold; a newer one drops the oldest.
    pub max_pending_logins: usize,
    pub session_secrets: Vec<Secret>,
    pub session_cookie_name: String,
    pub session_cookie_secure: CookieSecure,
    pub session_cookie_domain: Option<String>,
    pub login_timeout: Duration,
    pub session_idling_timeout: Duration,
    pub session_absolute_timeout: Duration,
    pub refresh_margin: Duration,

    /// `policies:` and the top-level policy keys (the `default` policy): who may pass, and the
    /// headers the upstream gets (see `policies.rs` for the merge rule).
    pub policies: crate::policy::Policies,
    pub trust_forwarded_headers: bool,
    /// Lower-case `host[:port]` values we build redirect URIs for; empty means any host.
    pub allowed_hosts: Vec<String>,

    pub logout_path: Option<String>,
    /// Methods the logout path answers (Kong's `logout_methods`); others get 405.
    pub logout_methods: Vec<String>,
    pub logout_redirect_uri: Option<String>,
    /// `true`: the end-session URL carries the whole ID token as `id_token_hint` (what most IdPs
    /// need to skip their confirmation). `false`: `logout_hint` = the IdP session id (`sid`)
    /// instead, so no token ever appears in a URL (OIDC RP-Initiated Logout 1.0, section 2).
    pub logout_id_token_hint: bool,
    pub backchannel_logout_path: Option<String>,
    /// `providers:`, the named IdP clients besides the top-level `default` (see `providers.rs`
    /// and `Config::for_provider`); empty in a provider's own `Config`.
    pub providers: Vec<NamedProvider>,
    /// `shutdown_drain_period`, `shutdown_grace_period`: SIGTERM to exit (`server::run`).
    pub shutdown: ShutdownPeriods,
    /// The path the IdP loads in an iframe with `iss` and `sid` after a logout there.
    pub frontchannel_logout_path: Option<String>,
    /// Which ID-token claim a front-channel logout's `sid` parameter names.
    pub frontchannel_logout_sid_claim: FrontchannelSidClaim,
    /// `otel:`: where traces go (`telemetry`); off when neither it nor `OTEL_EXPORTER_OTLP_*` says.
    pub otel: OtelSettings,
}

/// `frontchannel_logout_sid_claim`: what a front-channel logout's `sid` parameter is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontchannelSidClaim {
    /// The ID token's `sid` (OIDC Front-Channel Logout 1.0): the sessions of one IdP session end.
    Sid,
    /// The ID token's `sub`, for IdPs that send the user's id as `sid` and no `sid` claim
    /// (LemonLDAP::NG 2.16): every session of the user ends, and whoever knows a user's `sub`
    /// can end them.
    Sub,
}
