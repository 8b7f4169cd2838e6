//! Every way a Check can fail, and the one place (`Error::answer`) that decides what each failure
//! means on the wire. A denial the flow chose is not an error (see `flow::Decision`); an `Error` is
//! either a request we refuse with a page, or "could not decide", which becomes a gRPC error so
//! Envoy's `status_on_error` (503) applies: we fail closed.

use crate::crypto::random::RandomError;
use crate::oidc::authorize::InvalidAuthorizationRequest;
use crate::oidc::{IdTokenError, LogoutTokenError, TokenError, UserinfoError};
use crate::policy::UnknownPolicy;
use crate::session::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("the OpenID Provider has not been discovered yet")]
    ProviderNotReady,
    /// The route names a provider that is not configured (a mistake in Envoy's or our config).
    /// Holds the name only when it is a valid provider name, else a fixed text (see `gateway`).
    #[error("the route names provider {0}, which is not configured")]
    UnknownProvider(String),
    #[error("the OpenID Provider could not refresh the session: {0}")]
    RefreshUnavailable(TokenError),
    /// Envoy's route names a policy we do not have (`context_extensions: { policy: ... }`): the
    /// two configurations disagree, and guessing a policy could let the wrong people in.
    #[error(transparent)]
    UnknownPolicy(#[from] UnknownPolicy),
    /// The IdP's introspection endpoint could not be asked (down, refusing our client, none
    /// discovered): not the token's fault.
    #[error("token introspection is unavailable: {0}")]
    IntrospectionUnavailable(String),
    /// The task a refresh runs in panicked or was cancelled (at shutdown).
    #[error("the refresh of the session was interrupted")]
    RefreshInterrupted,

    #[error("no authorization request can be built for this request: {0}")]
    AuthorizationRequest(#[from] InvalidAuthorizationRequest),
    #[error("the login callback lacks `state` or `code`")]
    CallbackIncomplete,
    #[error("the IdP answered the login with error `{error}`")]
    IdpRefusedLogin { error: String },
    #[error("the login state is unknown, expired or already used")]
    UnknownLoginState,
    #[error("the login callback came from another browser than the login")]
    LoginFromAnotherBrowser,
    #[error("the authorization code exchange failed: {0}")]
    CodeExchange(TokenError),
    #[error("the userinfo endpoint's answer could not be used: {0}")]
    Userinfo(UserinfoError),
    #[error("the token response has no ID token")]
    MissingIdToken,
    #[error(transparent)]
    InvalidIdToken(IdTokenError),
    #[error("the request's host is not in allowed_hosts")]
    HostNotAllowed,
    /// No method text: it is the caller's (a direct gRPC caller may send any string).
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error("the back-channel logout request is invalid: {0}")]
    InvalidLogoutToken(LogoutTokenError),
    #[error("the front-channel logout request is invalid: {0}")]
    InvalidFrontchannelLogout(FrontchannelRefusal),
}

/// Why a front-channel logout request was refused: fixed reasons, never the request's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrontchannelRefusal {
    #[error("no `iss` parameter")]
    MissingIssuer,
    #[error("`iss` is not the configured issuer")]
    WrongIssuer,
    #[error("no `sid` parameter")]
    MissingSessionId,
    #[error("`iss` or `sid` given more than once")]
    RepeatedParameter,
}

/// What a failure becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Refuse the request with this HTTP status and a short message for a person.
    Deny { status: u16, message: &'static str },
    /// We could not decide: Envoy answers with its `status_on_error`.
    CouldNotDecide,
}

/// What a failure that is not a decision depends on: the label of the failed-Checks metric and the
/// key of its rate-limited log line. Fixed values, never text from the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// The session store did not answer.
    Store,
    /// The IdP did not answer (not discovered yet, or a refresh it could not do).
    Idp,
    /// Anything else (no randomness, an interrupted refresh task, a refused request).
    Other,
}

impl FailureCause {
    pub const ALL: [FailureCause; 3] =
        [FailureCause::Store, FailureCause::Idp, FailureCause::Other];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            FailureCause::Store => "store",
            FailureCause::Idp => "idp",
            FailureCause::Other => "other",
        }
    }
}

/// IdP error codes that mean "this user may not log in", not "the request was malformed".
const REFUSAL_CODES: &[&str] = &[
    "access_denied",
    "login_required",
    "consent_required",
    "interaction_required",
    "account_selection_required",
    "unauthorized_client",
];

impl Error {
    /// What the failure depends on; exhaustive like `answer`.
    pub fn cause(&self) -> FailureCause {
        match self {
            Error::Store(_) => FailureCause::Store,
            Error::ProviderNotReady
            | Error::RefreshUnavailable(_)
            | Error::IntrospectionUnavailable(_)
            | Error::Userinfo(_) => FailureCause::Idp,
            Error::Random(_)
            | Error::UnknownProvider(_)
            | Error::InvalidFrontchannelLogout(_)
            | Error::UnknownPolicy(_)
            | Error::RefreshInterrupted
            | Error::AuthorizationRequest(_)
            | Error::CallbackIncomplete
            | Error::IdpRefusedLogin { .. }
            | Error::UnknownLoginState
            | Error::LoginFromAnotherBrowser
            | Error::CodeExchange(_)
            | Error::MissingIdToken
            | Error::InvalidIdToken(_)
            | Error::HostNotAllowed
            | Error::MethodNotAllowed
            | Error::InvalidLogoutToken(_) => FailureCause::Other,
        }
    }

    pub fn answer(&self) -> Answer {
        use Answer::*;
        match self {
            Error::Store(_)
            | Error::Random(_)
            | Error::ProviderNotReady
            | Error::UnknownProvider(_)
            | Error::RefreshUnavailable(_)
            | Error::RefreshInterrupted
            | Error::UnknownPolicy(_)
            | Error::IntrospectionUnavailable(_) => CouldNotDecide,
            Error::AuthorizationRequest(_) => Deny {
                status: 400,
                message: "This address cannot be used to sign in.",
            },
            Error::CallbackIncomplete => Deny {
                status: 400,
                message: "The login response is incomplete. Please go back and try again.",
            },
            Error::IdpRefusedLogin { error } if REFUSAL_CODES.contains(&error.as_str()) => Deny {
                status: 403,
                message: "The identity provider did not allow this login.",
            },
            Error::IdpRefusedLogin { .. } => Deny {
                status: 400,
                message: "The identity provider could not complete the login. Please try again.",
            },
            Error::UnknownLoginState => Deny {
                status: 400,
                message: "This login has expired or was already used. Please open the page again.",
            },
            Error::LoginFromAnotherBrowser => Deny {
                status: 403,
                message: "This login was started in another browser. Please open the page again here.",
            },
            Error::CodeExchange(_)
            | Error::MissingIdToken
            | Error::InvalidIdToken(_)
            | Error::Userinfo(_) => Deny {
                status: 502,
                message: "The identity provider's answer could not be accepted. Please try again later.",
            },
            Error::HostNotAllowed => Deny {
                status: 400,
                message: "This site is not served here.",
            },
            Error::MethodNotAllowed => Deny {
                status: 405,
                message: "This method is not allowed here.",
            },
            Error::InvalidLogoutToken(_) => Deny {
                status: 400,
                message: "Invalid logout token.",
            },
            Error::InvalidFrontchannelLogout(_) => Deny {
                status: 400,
                message: "Invalid front-channel logout request.",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_fail_closed_and_bad_callbacks_get_pages() {
        let store_down = Error::Store(StoreError::Unavailable("connection refused".into()));
        assert_eq!(store_down.answer(), Answer::CouldNotDecide);
        assert_eq!(Error::ProviderNotReady.answer(), Answer::CouldNotDecide);
        assert_eq!(store_down.cause(), FailureCause::Store);
        assert_eq!(Error::ProviderNotReady.cause(), FailureCause::Idp);
        assert_eq!(
            Error::RefreshUnavailable(TokenError::Unreachable("x".into())).cause(),
            FailureCause::Idp
        );
        assert_eq!(Error::RefreshInterrupted.cause(), FailureCause::Other);
        assert_eq!(
            Error::UnknownProvider("`corp`".into()).answer(),
            Answer::CouldNotDecide
        );
        let unknown = Error::UnknownPolicy(UnknownPolicy("api".into()));
        assert_eq!(unknown.answer(), Answer::CouldNotDecide);
        let status = |error: Error| match error.answer() {
            Answer::Deny { status, .. } => status,
            Answer::CouldNotDecide => 0,
        };
        assert_eq!(status(Error::UnknownLoginState), 400);
        assert_eq!(status(Error::LoginFromAnotherBrowser), 403);
        assert_eq!(
            status(Error::IdpRefusedLogin {
                error: "access_denied".into()
            }),
            403
        );
        assert_eq!(
            status(Error::IdpRefusedLogin {
                error: "invalid_scope".into()
            }),
            400
        );
        assert_eq!(
            status(Error::CodeExchange(TokenError::Unreachable("x".into()))),
            502
        );
        assert_eq!(
            status(Error::InvalidIdToken(IdTokenError::NonceMismatch)),
            502
        );
    }
}
