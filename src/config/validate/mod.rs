//! `validate`: the whole configuration, section by section, into a `Config`; every problem is
//! collected (with its key path) instead of stopping at the first. Each section's reader owns its
//! keys; `validate` reads them in the order below (which is the order problems are listed in) and
//! `assemble` puts the parts together.

mod logout;
mod session;
mod storage;

use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::fields::*;
use super::idp_client::{IdpClient, idp_client};
use super::limits::allowed_hosts;
use super::otel::OtelSettings;
use super::providers::{DefaultProvider, providers};
use super::reader::Reader;
use super::shutdown::ShutdownPeriods;
use super::*;
use crate::policy::Policies;
use logout::{Logout, check_distinct_paths, logout};
use session::{Session, session, session_secrets};
use storage::{Storage, storage};

pub(super) fn validate(root: &Mapping, errors: &mut Vec<String>) -> Config {
    let mut reader = Reader::new(Some(root), "", errors);
    let server = server(&mut reader);
    let client = idp_client(&mut reader, None);
    let login = login(&mut reader);
    let storage = storage(&mut reader);
    let session_secrets = session_secrets(&mut reader);
    let session = session(&mut reader);
    let policies = super::policies::policies(&mut reader);
    let requests = requests(&mut reader);
    let logout = logout(&mut reader);
    check_distinct_paths(&mut reader, client.redirect_uri.path(), &logout);
    let providers_map = reader.mapping("providers");
    let providers = providers(
        providers_map,
        &DefaultProvider {
            client: &client,
            session_cookie_name: &session.cookie_name,
            logout_path: logout.path.as_deref(),
            logout_redirect_uri: logout.redirect_uri.as_deref(),
            backchannel_logout_path: logout.backchannel_path.as_deref(),
        },
        reader.errors,
    );
    let shutdown = super::shutdown::shutdown_periods(&mut reader);
    let otel = super::otel::otel_settings(&mut reader);
    super::policies::check_providers(&mut reader, &policies, &providers);
    reader.finish();
    assemble(Sections {
        server,
        client,
        login,
        storage,
        session_secrets,
        session,
        policies,
        requests,
        logout,
        providers,
        shutdown,
        otel,
    })
}

/// Every section read, ready to become a `Config`.
struct Sections {
    server: Server,
    client: IdpClient,
    login: Login,
    storage: Storage,
    session_secrets: Vec<Secret>,
    session: Session,
    policies: Policies,
    requests: Requests,
    logout: Logout,
    providers: Vec<NamedProvider>,
    shutdown: ShutdownPeriods,
    otel: OtelSettings,
}

/// Where we listen and how we log.
struct Server {
    listen: ListenAddress,
    admin_listen: std::net::SocketAddr,
    log_format: LogFormat,
    log_level: String,
}

fn server(reader: &mut Reader) -> Server {
    Server {
        listen: listen_address(reader, "listen", "127.0.0.1:9191"),
        admin_listen: parse_addr(reader, "admin_listen", "127.0.0.1:9192"),
        log_format: reader.choice_or(
            "log_format",
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            LogFormat::Text,
        ),
        log_level: reader.string_or("log_level", "info"),
    }
}

/// The top-level login and IdP-request keys that are not the IdP client's own.
struct Login {
    preserve_query_args: bool,
    leeway: Duration,
    http_timeout: Duration,
    userinfo: bool,
    introspection_cache_ttl: Duration,
}

fn login(reader: &mut Reader) -> Login {
    let preserve_query_args = reader.bool_or("preserve_query_args", true);
    reader.choice_or("login_action", &[("redirect", ())], ());
    refuse_login_tokens(reader);
    Login {
        preserve_query_args,
        leeway: seconds(reader, "leeway", 60),
        http_timeout: http_timeout(reader),
        userinfo: reader.bool_or("userinfo", false),
        introspection_cache_ttl: seconds(reader, "introspection_cache_ttl", 30),
    }
}

/// Kong's `login_tokens` is accepted only empty: tokens never reach the browser.
fn refuse_login_tokens(reader: &mut Reader) {
    match reader.value("login_tokens") {
        None => {}
        Some(Value::Sequence(items)) if items.is_empty() => {}
        Some(Value::String(text)) if text.is_empty() => {}
        Some(_) => reader.error(
            "login_tokens",
            "must be empty: oidc-authz never hands tokens to the browser (they reach the upstream as headers)",
        ),
    }
}

/// Which requests we trust and build redirects for.
struct Requests {
    trust_forwarded_headers: bool,
    allowed_hosts: Vec<String>,
}

fn requests(reader: &mut Reader) -> Requests {
    Requests {
        trust_forwarded_headers: reader.bool_or("trust_forwarded_headers", false),
        allowed_hosts: allowed_hosts(reader),
    }
}

/// The sections, field by field, into the flat `Config` the rest of the program reads.
fn assemble(sections: Sections) -> Config {
    let Sections {
        server,
        client,
        login,
        storage,
        session_secrets,
        session,
        policies,
        requests,
        logout,
        providers,
        shutdown,
        otel,
    } = sections;
    Config {
        listen: server.listen,
        admin_listen: server.admin_listen,
        log_format: server.log_format,
        log_level: server.log_level,
        issuer: client.issuer,
        client_id: client.client_id,
        client_secret: client.client_secret,
        client_auth: client.client_auth,
        scopes: client.scopes,
        redirect_uri: client.redirect_uri,
        response_mode: client.response_mode,
        pkce: client.pkce,
        preserve_query_args: login.preserve_query_args,
        authorization_params: client.authorization_params,
        id_token_signing_algs: client.id_token_signing_algs,
        leeway: login.leeway,
        http_timeout: login.http_timeout,
        userinfo: login.userinfo,
        introspection_cache_ttl: login.introspection_cache_ttl,
        idp_ca_pem: client.idp_ca_pem,
        session_storage: storage.session_storage,
        memory_max_bytes: storage.memory_max_bytes,
        session_cache_size: storage.session_cache_size,
        max_pending_logins: session.max_pending_logins,
        session_secrets,
        session_cookie_name: session.cookie_name,
        session_cookie_secure: session.cookie_secure,
        session_cookie_domain: session.cookie_domain,
        login_timeout: session.login_timeout,
        session_idling_timeout: session.idling_timeout,
        session_absolute_timeout: session.absolute_timeout,
        refresh_margin: session.refresh_margin,
        policies,
        trust_forwarded_headers: requests.trust_forwarded_headers,
        allowed_hosts: requests.allowed_hosts,
        logout_path: logout.path,
        logout_methods: logout.methods,
        logout_redirect_uri: logout.redirect_uri,
        logout_id_token_hint: logout.id_token_hint,
        backchannel_logout_path: logout.backchannel_path,
        providers,
        shutdown,
        frontchannel_logout_path: logout.frontchannel_path,
        frontchannel_logout_sid_claim: logout.frontchannel_sid_claim,
        otel,
    }
}
