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

/// The sections, field by field, into the flat `Config` the rest of the program reads. The
/// section structs are private, so a field left unread here is a dead-code warning; `IdpClient`
/// is destructured whole for the same reason.
fn assemble(sections: Sections) -> Config {
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
    } = sections.client;
    Config {
        listen: sections.server.listen,
        admin_listen: sections.server.admin_listen,
        log_format: sections.server.log_format,
        log_level: sections.server.log_level,
        issuer,
        client_id,
        client_secret,
        client_auth,
        scopes,
        redirect_uri,
        response_mode,
        pkce,
        preserve_query_args: sections.login.preserve_query_args,
        authorization_params,
        id_token_signing_algs,
        leeway: sections.login.leeway,
        http_timeout: sections.login.http_timeout,
        userinfo: sections.login.userinfo,
        introspection_cache_ttl: sections.login.introspection_cache_ttl,
        idp_ca_pem,
        session_storage: sections.storage.session_storage,
        memory_max_bytes: sections.storage.memory_max_bytes,
        session_cache_size: sections.storage.session_cache_size,
        max_pending_logins: sections.session.max_pending_logins,
        session_secrets: sections.session_secrets,
        session_cookie_name: sections.session.cookie_name,
        session_cookie_secure: sections.session.cookie_secure,
        session_cookie_domain: sections.session.cookie_domain,
        login_timeout: sections.session.login_timeout,
        session_idling_timeout: sections.session.idling_timeout,
        session_absolute_timeout: sections.session.absolute_timeout,
        refresh_margin: sections.session.refresh_margin,
        policies: sections.policies,
        trust_forwarded_headers: sections.requests.trust_forwarded_headers,
        allowed_hosts: sections.requests.allowed_hosts,
        logout_path: sections.logout.path,
        logout_methods: sections.logout.methods,
        logout_redirect_uri: sections.logout.redirect_uri,
        logout_id_token_hint: sections.logout.id_token_hint,
        backchannel_logout_path: sections.logout.backchannel_path,
        providers: sections.providers,
        shutdown: sections.shutdown,
        frontchannel_logout_path: sections.logout.frontchannel_path,
        frontchannel_logout_sid_claim: sections.logout.frontchannel_sid_claim,
        otel: sections.otel,
    }
}
