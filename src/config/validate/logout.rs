//! The logout section: our logout path and its methods, where it sends the browser, the IdP's
//! back- and front-channel logout paths, and the rule that no two endpoints share a path.

use std::collections::HashSet;

use crate::config::fields::*;
use crate::config::providers::logout_redirect_uri;
use crate::config::reader::Reader;
use crate::config::*;

/// The logout endpoints: ours (RP-initiated) and the IdP's back- and front-channel ones.
pub(super) struct Logout {
    pub(super) path: Option<String>,
    pub(super) redirect_uri: Option<String>,
    pub(super) methods: Vec<String>,
    pub(super) id_token_hint: bool,
    pub(super) backchannel_path: Option<String>,
    pub(super) frontchannel_path: Option<String>,
    pub(super) frontchannel_sid_claim: FrontchannelSidClaim,
}

pub(super) fn logout(reader: &mut Reader) -> Logout {
    Logout {
        path: path_key(reader, "logout_path", Some("/logout")),
        redirect_uri: logout_redirect_uri(reader),
        methods: logout_methods(reader),
        id_token_hint: reader.bool_or("logout_id_token_hint", true),
        backchannel_path: path_key(reader, "backchannel_logout_path", None),
        frontchannel_path: path_key(reader, "frontchannel_logout_path", None),
        frontchannel_sid_claim: reader.choice_or(
            "frontchannel_logout_sid_claim",
            &[
                ("sid", FrontchannelSidClaim::Sid),
                ("sub", FrontchannelSidClaim::Sub),
            ],
            FrontchannelSidClaim::Sid,
        ),
    }
}

/// Kong's `logout_methods`, upper-cased: one or more of GET, POST, DELETE.
fn logout_methods(reader: &mut Reader) -> Vec<String> {
    let methods: Vec<String> = reader
        .string_list("logout_methods")
        .unwrap_or_else(|| vec!["GET".into(), "POST".into()])
        .into_iter()
        .map(|method| method.to_ascii_uppercase())
        .collect();
    if methods.is_empty()
        || methods
            .iter()
            .any(|method| !matches!(method.as_str(), "GET" | "POST" | "DELETE"))
    {
        reader.error(
            "logout_methods",
            "must list one or more of GET, POST, DELETE",
        );
    }
    methods
}

/// The callback and logout endpoints are distinct paths: each request goes to one of them.
pub(super) fn check_distinct_paths(reader: &mut Reader, redirect_path: &str, logout: &Logout) {
    let mut special_paths = HashSet::new();
    for (key, path) in [
        ("redirect_uri", Some(redirect_path)),
        ("logout_path", logout.path.as_deref()),
        (
            "backchannel_logout_path",
            logout.backchannel_path.as_deref(),
        ),
        (
            "frontchannel_logout_path",
            logout.frontchannel_path.as_deref(),
        ),
    ] {
        if let Some(path) = path
            && !special_paths.insert(path.to_owned())
        {
            reader.error(key, format!("`{path}` is already used by another endpoint"));
        }
    }
}
