//! Authorization rules with Kong openid-connect's semantics: `groups_required`, `roles_required`,
//! `scopes_required` and `audience_required` each list entries that are OR-ed, and the
//! space-separated words inside one entry are AND-ed (`["admins mfa", "root"]`: admins who did
//! MFA, or root). Each reads one claim (a `ClaimPath`), which may be an array of strings or one
//! string; the scope claim's string is split on spaces (RFC 8693 `scope`). Plus
//! `claims_required` (exact JSON values) and `email_domains` (oauth2-proxy). Pure: claims in,
//! verdict out. A missing claim or one of the wrong type fails its rule; nothing here panics.

use serde_json::{Map, Value};

use super::claim_path::ClaimPath;

/// OR of entries, each an AND of words.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requirement {
    entries: Vec<Vec<String>>,
}

impl Requirement {
    /// From the configured entries; words are split on whitespace, empty entries dropped.
    pub fn new(entries: &[String]) -> Requirement {
        Requirement {
            entries: entries
                .iter()
                .map(|entry| entry.split_whitespace().map(str::to_owned).collect())
                .filter(|words: &Vec<String>| !words.is_empty())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn is_met_by(&self, values: &[&str]) -> bool {
        self.entries
            .iter()
            .any(|words| words.iter().all(|word| values.contains(&word.as_str())))
    }
}

/// How a claim's string value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringClaim {
    /// One value (`groups: "staff"`).
    Single,
    /// Space-separated values (`scope: "openid orders:read"`).
    SpaceSeparated,
}

/// One list rule: a requirement on the values of one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRule {
    pub claim: ClaimPath,
    pub required: Requirement,
    pub strings: StringClaim,
}

impl ClaimRule {
    fn is_met_by(&self, claims: &Map<String, Value>) -> bool {
        if self.required.is_empty() {
            return true;
        }
        let values: Vec<&str> = match self.claim.lookup(claims) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(text)) => match self.strings {
                StringClaim::Single => vec![text.as_str()],
                StringClaim::SpaceSeparated => text.split_whitespace().collect(),
            },
            // Missing, or a number, object, bool, null: the rule fails.
            _ => return false,
        };
        self.required.is_met_by(&values)
    }
}

/// Which rule refused a request (for the log line and for choosing 401 over 403 on bearer
/// tokens: a token for another audience is not a valid token here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleFailure {
    #[error("groups_required is not met")]
    Groups,
    #[error("roles_required is not met")]
    Roles,
    #[error("scopes_required is not met")]
    Scopes,
    #[error("audience_required is not met")]
    Audience,
    #[error("claims_required is not met")]
    Claims,
    #[error("email_domains is not met")]
    EmailDomain,
}

/// Every rule of one policy; all must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub groups: ClaimRule,
    pub roles: ClaimRule,
    pub scopes: ClaimRule,
    pub audience: ClaimRule,
    /// Each claim must equal its value exactly (JSON equality: `true` is not `"true"`).
    pub claims_required: Vec<(ClaimPath, Value)>,
    /// Lower-case domains the `email` claim must be in; `*` allows any domain (but still needs an
    /// email). Empty: no email rule.
    pub email_domains: Vec<String>,
}

impl Rules {
    /// The first rule `claims` fail, in a fixed order (audience first: for bearer tokens it
    /// decides between 401 and 403).
    pub fn check(&self, claims: &Map<String, Value>) -> Result<(), RuleFailure> {
        let list_rules = [
            (&self.audience, RuleFailure::Audience),
            (&self.groups, RuleFailure::Groups),
            (&self.roles, RuleFailure::Roles),
            (&self.scopes, RuleFailure::Scopes),
        ];
        for (rule, failure) in list_rules {
            if !rule.is_met_by(claims) {
                return Err(failure);
            }
        }
        let claims_match = self
            .claims_required
            .iter()
            .all(|(path, expected)| path.lookup(claims) == Some(expected));
        if !claims_match {
            return Err(RuleFailure::Claims);
        }
        if !self.email_domains.is_empty() && !email_domain_allowed(claims, &self.email_domains) {
            return Err(RuleFailure::EmailDomain);
        }
        Ok(())
    }

    /// Whether any rule needs the claims at all (none: a Check need not decode them).
    pub fn is_empty(&self) -> bool {
        self.groups.required.is_empty()
            && self.roles.required.is_empty()
            && self.scopes.required.is_empty()
            && self.audience.required.is_empty()
            && self.claims_required.is_empty()
            && self.email_domains.is_empty()
    }
}

/// The `email` claim's domain (after its one `@`, case-insensitive) is listed, and the IdP did not
/// say the address is unverified (`email_verified: false` fails; an IdP that sends no
/// `email_verified` is trusted, as many do not).
fn email_domain_allowed(claims: &Map<String, Value>, domains: &[String]) -> bool {
    if claims.get("email_verified") == Some(&Value::Bool(false)) {
        return false;
    }
    let Some(email) = claims.get("email").and_then(Value::as_str) else {
        return false;
    };
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    // Two `@`s: not an address we can read a domain from, whatever the IdP says.
    if local.is_empty() || domain.is_empty() || local.contains('@') {
        return false;
    }
    let domain = domain.to_ascii_lowercase();
    domains
        .iter()
        .any(|allowed| allowed == "*" || *allowed == domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(claim: &str, entries: &[&str], strings: StringClaim) -> ClaimRule {
        ClaimRule {
            claim: ClaimPath::parse(claim).unwrap(),
            required: Requirement::new(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()),
            strings,
        }
    }

    fn rules() -> Rules {
        Rules {
            groups: rule("groups", &[], StringClaim::Single),
            roles: rule("roles", &[], StringClaim::Single),
            scopes: rule("scope", &[], StringClaim::SpaceSeparated),
            audience: rule("aud", &[], StringClaim::Single),
            claims_required: Vec::new(),
            email_domains: Vec::new(),
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    /// `(claims, expected)` pairs against one rule set.
    fn check(rules: &Rules, cases: &[(Value, Result<(), RuleFailure>)]) {
        for (value, expected) in cases {
            assert_eq!(rules.check(&claims(value.clone())), *expected, "{value}");
        }
    }

    #[test]
    fn entries_are_ored_and_words_inside_an_entry_are_anded() {
        let mut policy = rules();
        policy.groups = rule("groups", &["admins mfa", "root"], StringClaim::Single);
        check(
            &policy,
            &[
                (json!({"groups": ["admins", "mfa"]}), Ok(())),
                (json!({"groups": ["root"]}), Ok(())),
                (json!({"groups": ["x", "mfa", "root"]}), Ok(())),
                (json!({"groups": ["admins"]}), Err(RuleFailure::Groups)),
                (json!({"groups": ["mfa"]}), Err(RuleFailure::Groups)),
                (json!({"groups": []}), Err(RuleFailure::Groups)),
                (json!({"groups": "root"}), Ok(())),
                (json!({"groups": "admins mfa"}), Err(RuleFailure::Groups)),
            ],
        );
    }

    #[test]
    fn the_scope_claim_may_be_a_string_or_an_array() {
        let mut policy = rules();
        policy.scopes = rule("scope", &["orders:read"], StringClaim::SpaceSeparated);
        check(
            &policy,
            &[
                (json!({"scope": "openid orders:read"}), Ok(())),
                (json!({"scope": ["orders:read"]}), Ok(())),
                (json!({"scope": "openid"}), Err(RuleFailure::Scopes)),
                (json!({"scope": "orders:readx"}), Err(RuleFailure::Scopes)),
            ],
        );
    }

    #[test]
    fn missing_claims_and_wrong_types_fail_the_rule() {
        let mut policy = rules();
        policy.roles = rule("realm_access.roles", &["admin"], StringClaim::Single);
        check(
            &policy,
            &[
                (json!({"realm_access": {"roles": ["admin"]}}), Ok(())),
                (json!({}), Err(RuleFailure::Roles)),
                (json!({"realm_access": null}), Err(RuleFailure::Roles)),
                (json!({"realm_access": "admin"}), Err(RuleFailure::Roles)),
                (
                    json!({"realm_access": {"roles": 1}}),
                    Err(RuleFailure::Roles),
                ),
                (
                    json!({"realm_access": {"roles": {"admin": true}}}),
                    Err(RuleFailure::Roles),
                ),
                (
                    json!({"realm_access": {"roles": [1, true, null, ["admin"]]}}),
                    Err(RuleFailure::Roles),
                ),
                (json!({"realm_access": {"roles": [1, "admin"]}}), Ok(())),
            ],
        );
    }

    #[test]
    fn no_requirement_means_no_rule() {
        assert!(rules().is_empty());
        check(&rules(), &[(json!({}), Ok(()))]);
    }

    #[test]
    fn audience_is_checked_first() {
        let mut policy = rules();
        policy.audience = rule("aud", &["orders-api"], StringClaim::Single);
        policy.scopes = rule("scope", &["orders:read"], StringClaim::SpaceSeparated);
        check(
            &policy,
            &[
                (
                    json!({"aud": ["x", "orders-api"], "scope": "orders:read"}),
                    Ok(()),
                ),
                (json!({"aud": "orders-api", "scope": "orders:read"}), Ok(())),
                (
                    json!({"aud": "other", "scope": "x"}),
                    Err(RuleFailure::Audience),
                ),
                (
                    json!({"aud": "orders-api", "scope": "x"}),
                    Err(RuleFailure::Scopes),
                ),
            ],
        );
    }

    #[test]
    fn claims_required_compares_exact_json_values() {
        let mut policy = rules();
        policy.claims_required = vec![
            (ClaimPath::parse("email_verified").unwrap(), json!(true)),
            (ClaimPath::parse("org.tier").unwrap(), json!("gold")),
        ];
        check(
            &policy,
            &[
                (
                    json!({"email_verified": true, "org": {"tier": "gold"}}),
                    Ok(()),
                ),
                (
                    json!({"email_verified": "true", "org": {"tier": "gold"}}),
                    Err(RuleFailure::Claims),
                ),
                (json!({"email_verified": true}), Err(RuleFailure::Claims)),
                (
                    json!({"email_verified": true, "org": {"tier": ["gold"]}}),
                    Err(RuleFailure::Claims),
                ),
            ],
        );
    }

    #[test]
    fn email_domains_match_the_domain_and_refuse_unverified_addresses() {
        let mut policy = rules();
        policy.email_domains = vec!["example.com".into()];
        check(
            &policy,
            &[
                (json!({"email": "a@Example.COM"}), Ok(())),
                (
                    json!({"email": "a@example.com", "email_verified": true}),
                    Ok(()),
                ),
                (
                    json!({"email": "a@example.com", "email_verified": false}),
                    Err(RuleFailure::EmailDomain),
                ),
                (
                    json!({"email": "a@evil.com@example.com"}),
                    Err(RuleFailure::EmailDomain),
                ),
                (
                    json!({"email": "a@example.com.evil"}),
                    Err(RuleFailure::EmailDomain),
                ),
                (
                    json!({"email": "a@sub.example.com"}),
                    Err(RuleFailure::EmailDomain),
                ),
                (
                    json!({"email": "example.com"}),
                    Err(RuleFailure::EmailDomain),
                ),
                (
                    json!({"email": "@example.com"}),
                    Err(RuleFailure::EmailDomain),
                ),
                (
                    json!({"email": ["a@example.com"]}),
                    Err(RuleFailure::EmailDomain),
                ),
                (json!({}), Err(RuleFailure::EmailDomain)),
            ],
        );
        policy.email_domains = vec!["*".into()];
        check(
            &policy,
            &[
                (json!({"email": "a@any.example"}), Ok(())),
                (json!({}), Err(RuleFailure::EmailDomain)),
            ],
        );
    }
}
