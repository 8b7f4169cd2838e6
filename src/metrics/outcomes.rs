//! What the metrics count, as closed label values (`label_values!`): how a Check, a refresh, a
//! reload or a session ended, what the session cache answered, which class of store command ran.

use super::labels::label_values;
use crate::error::FailureCause;

/// How a Check ended.
#[derive(Debug, Clone, Copy)]
pub enum CheckOutcome {
    Allow,
    Redirect,
    Deny,
    /// Could not decide: Envoy's `status_on_error` applies.
    Error,
}
label_values!(CheckOutcome, "outcome", {
    Allow => "allow", Redirect => "redirect", Deny => "deny", Error => "error",
});

#[derive(Debug, Clone, Copy)]
pub enum RefreshOutcome {
    Refreshed,
    /// The IdP refused (`invalid_grant`...): the session ended.
    Refused,
    /// The IdP was unreachable: the request failed closed.
    Failed,
}
label_values!(RefreshOutcome, "result", {
    Refreshed => "refreshed", Refused => "refused", Failed => "failed",
});

label_values!(FailureCause, "cause", { Store => "store", Idp => "idp", Other => "other" });

/// What the session cache answered (`session/cache.rs`).
#[derive(Debug, Clone, Copy)]
pub enum CacheLookup {
    /// Served from the cache: no store read.
    Hit,
    /// Read from the store (not cached, or the cache's feed is not live).
    Miss,
}
label_values!(CacheLookup, "result", { Hit => "hit", Miss => "miss" });

/// How a config reload (SIGHUP) ended.
#[derive(Debug, Clone, Copy)]
pub(super) enum ReloadResult {
    /// Validated and swapped in.
    Ok,
    /// Refused: the old config kept serving.
    Refused,
}
label_values!(ReloadResult, "result", { Ok => "ok", Refused => "refused" });

#[derive(Debug, Clone, Copy)]
pub(super) enum LogoutKind {
    RpInitiated,
    Backchannel,
    Frontchannel,
}
label_values!(LogoutKind, "kind", {
    RpInitiated => "rp_initiated", Backchannel => "backchannel", Frontchannel => "frontchannel",
});

/// Why a session ended.
#[derive(Debug, Clone, Copy)]
pub enum SessionEndReason {
    /// The user logged out here (RP-initiated logout).
    Logout,
    /// The IdP's back-channel logout token named it.
    Backchannel,
    /// The IdP's front-channel logout request named it.
    Frontchannel,
    /// Its idle or absolute lifetime ran out.
    Timeout,
    /// The IdP refused to refresh its tokens.
    RefreshRefused,
    /// Its access token expired with no refresh token to renew it.
    TokenExpired,
}
label_values!(SessionEndReason, "reason", {
    Logout => "logout", Backchannel => "backchannel", Frontchannel => "frontchannel",
    Timeout => "timeout", RefreshRefused => "refresh_refused", TokenExpired => "token_expired",
});

/// A class of session store command.
#[derive(Debug, Clone, Copy)]
pub enum StoreOperation {
    /// `get`.
    Read,
    /// `put`, `put_if_absent`, `put_if_present`, `add_to_set`, `push_bounded`.
    Write,
    /// `take`, `take_set`.
    Take,
    /// `delete`, `delete_if_equals`, `remove_from_set`.
    Delete,
    /// `ping` (readiness).
    Ping,
}
label_values!(StoreOperation, "operation", {
    Read => "read", Write => "write", Take => "take", Delete => "delete", Ping => "ping",
});
