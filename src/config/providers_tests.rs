//! `providers:` tests: inheritance from the top level, derived cookie names, and every problem
//! with its key path (names, distinct paths and cookies, unknown keys, required `redirect_uri`).

use super::tests::{MINIMAL, env, problems};
use super::*;

fn with_providers(providers: &str) -> String {
    format!("{MINIMAL}providers:\n{providers}")
}

fn load(yaml: &str) -> Config {
    load_from_str(yaml, "test.yaml", env(&[])).unwrap().0
}

#[test]
fn a_config_without_providers_has_only_the_default_one() {
    let config = load(MINIMAL);
    assert!(config.providers.is_empty());
    assert_eq!(config.provider_names(), ["default"]);
    let default = config.for_provider("default").unwrap();
    assert_eq!(default.client_id, "envoy");
    assert!(config.for_provider("corp").is_none());
}

#[test]
fn a_provider_inherits_what_it_does_not_set_and_gets_its_own_cookie() {
    let config = load(&with_providers(
        "  corp:\n    client_id: corp-app\n    redirect_uri: /corp/callback\n    scopes: [openid, groups]\n    logout_path: /corp/logout\n",
    ));
    assert_eq!(config.provider_names(), ["default", "corp"]);
    let corp = config.for_provider("corp").unwrap();
    assert_eq!(corp.client_id, "corp-app");
    assert_eq!(corp.issuer.as_str(), "https://idp.example/realms/demo");
    assert_eq!(corp.client_secret.expose(), "s3cr3t");
    assert_eq!(corp.scopes, ["openid", "groups"]);
    assert_eq!(
        corp.redirect_uri,
        RedirectUri::Path("/corp/callback".into())
    );
    assert_eq!(corp.session_cookie_name, "session-corp");
    assert_eq!(corp.logout_path.as_deref(), Some("/corp/logout"));
    assert_eq!(corp.backchannel_logout_path, None);
    assert!(corp.providers.is_empty());
    // The top level is untouched.
    let default = config.for_provider("default").unwrap();
    assert_eq!(default.client_id, "envoy");
    assert_eq!(default.session_cookie_name, "session");
    assert_eq!(default.logout_path.as_deref(), Some("/logout"));
}

#[test]
fn every_idp_key_can_be_set_per_provider() {
    let config = load(&with_providers(
        "  b:\n    issuer: https://other.example\n    client_secret: other\n    client_auth: client_secret_post\n    redirect_uri: https://b.example/cb\n    response_mode: form_post\n    pkce: never\n    authorization_params: { prompt: login }\n    id_token_signing_algs: [ES256]\n    session_cookie_name: b_session\n    logout_redirect_uri: /bye\n    backchannel_logout_path: /b/backchannel\n",
    ));
    let b = config.for_provider("b").unwrap();
    assert_eq!(b.issuer.as_str(), "https://other.example/");
    assert_eq!(b.client_secret.expose(), "other");
    assert_eq!(b.client_auth, ClientAuth::ClientSecretPost);
    assert_eq!(b.redirect_uri.path(), "/cb");
    assert_eq!(b.response_mode, ResponseMode::FormPost);
    assert_eq!(b.pkce, PkceMode::Never);
    assert_eq!(b.authorization_params, [("prompt".into(), "login".into())]);
    assert_eq!(b.id_token_signing_algs, [Algorithm::ES256]);
    assert_eq!(b.session_cookie_name, "b_session");
    assert_eq!(b.logout_redirect_uri.as_deref(), Some("/bye"));
    assert_eq!(b.backchannel_logout_path.as_deref(), Some("/b/backchannel"));
}

#[test]
fn a_provider_secret_may_come_from_an_environment_variable() {
    let yaml = with_providers("  corp:\n    redirect_uri: /corp/callback\n");
    let (config, _) = load_from_str(
        &yaml,
        "test.yaml",
        env(&[("OIDC_AUTHZ_PROVIDERS__CORP__CLIENT_SECRET", "from-env")]),
    )
    .unwrap();
    let corp = config.for_provider("corp").unwrap();
    assert_eq!(corp.client_secret.expose(), "from-env");
}

#[test]
fn provider_names_are_limited_and_default_is_the_top_level() {
    let found = problems(&with_providers(
        "  default: { redirect_uri: /d }\n  Corp: { redirect_uri: /c }\n  'a.b': { redirect_uri: /e }\n",
    ));
    assert_eq!(
        found,
        [
            "providers.default: the top-level keys are the `default` provider; set them there",
            "providers.Corp: a provider name is 1 to 32 of a-z, 0-9, - and _",
            "providers.a.b: a provider name is 1 to 32 of a-z, 0-9, - and _",
        ]
    );
}

#[test]
fn each_provider_needs_its_own_callback_path() {
    assert_eq!(
        problems(&with_providers("  corp: { client_id: x }\n")),
        [
            "providers.corp.redirect_uri: required: each provider needs its own callback path (e.g. /callback/NAME)"
        ]
    );
    assert_eq!(
        problems(&with_providers(
            "  corp: { redirect_uri: 'https://app.example/callback' }\n"
        )),
        [
            "providers.corp.redirect_uri: `/callback` is already the redirect_uri of provider `default`"
        ]
    );
}

#[test]
fn callback_and_logout_paths_are_distinct_across_providers() {
    let found = problems(&format!(
        "{MINIMAL}backchannel_logout_path: /bc\nproviders:\n  a: {{ redirect_uri: /a/cb, logout_path: /logout }}\n  b: {{ redirect_uri: /a/cb, backchannel_logout_path: /bc }}\n  c: {{ redirect_uri: /c/cb, logout_path: /a/cb }}\n"
    ));
    assert_eq!(
        found,
        [
            "providers.a.logout_path: `/logout` is already the logout_path of provider `default`",
            "providers.b.redirect_uri: `/a/cb` is already the redirect_uri of provider `a`",
            "providers.b.backchannel_logout_path: `/bc` is already the backchannel_logout_path of provider `default`",
            "providers.c.logout_path: `/a/cb` is already the redirect_uri of provider `a`",
        ]
    );
}

#[test]
fn cookie_names_are_distinct_across_providers_login_cookies_included() {
    let found = problems(&with_providers(
        "  a: { redirect_uri: /a, session_cookie_name: session }\n  b: { redirect_uri: /b, session_cookie_name: session_login }\n  c: { redirect_uri: /c, session_cookie_name: 'bad name' }\n",
    ));
    assert_eq!(
        found,
        [
            "providers.a.session_cookie_name: `session` makes cookie `session`, which provider `default` already uses",
            "providers.b.session_cookie_name: `session_login` makes cookie `session_login`, which provider `default` already uses",
            "providers.c.session_cookie_name: use letters, digits, - and _ only",
        ]
    );
}

#[test]
fn provider_keys_are_checked_with_their_path() {
    let found = problems(&with_providers(
        "  corp:\n    redirect_uri: /corp\n    issuer: ftp://x\n    scopes: [profile]\n    client_secret: a\n    client_secret_file: /nonexistent\n    authorization_params: { state: x }\n    id_token_signing_algs: [none]\n    logout_path: relative\n    client_idd: typo\n    session_idling_timeout: 5\n",
    ));
    assert_eq!(
        found,
        [
            "providers.corp.issuer: `ftp://x` is not an http(s) URL",
            "providers.corp.client_secret: set either client_secret or client_secret_file, not both",
            "providers.corp.scopes: must include `openid`",
            "providers.corp.authorization_params.state: is set by oidc-authz itself; use the matching option instead",
            "providers.corp.id_token_signing_algs: `none` is not a JWS algorithm (`none` is never accepted)",
            "providers.corp.id_token_signing_algs: must list at least one algorithm",
            "providers.corp.logout_path: `relative` must be a path starting with / (no query)",
            "providers.corp.client_idd: unknown key (did you mean `client_id`?)",
            "providers.corp.session_idling_timeout: unknown key",
        ]
    );
}

#[test]
fn providers_must_be_a_mapping_of_mappings() {
    assert_eq!(
        problems(&format!("{MINIMAL}providers: [a, b]\n")),
        ["providers: expected a mapping"]
    );
    assert_eq!(
        problems(&with_providers("  corp: yes\n")),
        ["providers.corp: expected a mapping"]
    );
}

#[test]
fn a_policy_chooses_a_configured_provider() {
    let yaml = format!(
        "{}policies:\n  corp-app:\n    provider: corp\n  stray:\n    provider: nope\n",
        with_providers(
            "  corp:\n    issuer: https://corp.example.com\n    redirect_uri: /corp/callback\n"
        )
    );
    let found = problems(&yaml);
    assert_eq!(
        found,
        ["policies.stray.provider: `nope` is not a configured provider (known: default, corp)"],
        "{found:?}"
    );
}
