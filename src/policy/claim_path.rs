//! `ClaimPath`: where a rule finds its claim, written with dots between nested member names
//! (`realm_access.roles`, `resource_access.orders-api.roles`). A dot that belongs to a member name
//! is written `\.` and a backslash `\\` (Auth0-style namespaced claims:
//! `https://example\.com/roles`). Lookups never panic: a missing member or a non-object on the way
//! gives `None`.

use serde_json::{Map, Value};

/// A parsed claim path: one or more non-empty member names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    segments: Vec<String>,
}

/// Why a claim path does not parse; the text is for the config error line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimPathError {
    #[error("is empty")]
    Empty,
    #[error("has an empty member name (two dots in a row, or a dot at either end)")]
    EmptySegment,
    #[error("ends with a lone `\\` (write `\\\\` for a backslash, `\\.` for a dot in a name)")]
    DanglingEscape,
    #[error("has `\\{0}`: only `\\.` and `\\\\` are escapes")]
    UnknownEscape(char),
}

impl ClaimPath {
    pub fn parse(text: &str) -> Result<ClaimPath, ClaimPathError> {
        if text.is_empty() {
            return Err(ClaimPathError::Empty);
        }
        let mut segments = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped @ ('.' | '\\')) => current.push(escaped),
                    Some(other) => return Err(ClaimPathError::UnknownEscape(other)),
                    None => return Err(ClaimPathError::DanglingEscape),
                },
                '.' => segments.push(std::mem::take(&mut current)),
                other => current.push(other),
            }
        }
        segments.push(current);
        if segments.iter().any(String::is_empty) {
            return Err(ClaimPathError::EmptySegment);
        }
        Ok(ClaimPath { segments })
    }

    /// The value at this path, `None` when any member on the way is missing or not an object.
    pub fn lookup<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.segments.split_first()?;
        let mut value = claims.get(first)?;
        for segment in rest {
            value = value.as_object()?.get(segment)?;
        }
        Some(value)
    }
}

impl std::fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let escaped: Vec<String> = self
            .segments
            .iter()
            .map(|segment| segment.replace('\\', "\\\\").replace('.', "\\."))
            .collect();
        f.write_str(&escaped.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn dotted_paths_reach_nested_members() {
        let token = claims(json!({
            "groups": ["a"],
            "realm_access": { "roles": ["admin"] },
            "resource_access": { "orders-api": { "roles": ["reader"] } },
            "https://example.com/roles": ["x"],
        }));
        let at = |path: &str| ClaimPath::parse(path).unwrap().lookup(&token).cloned();
        assert_eq!(at("groups"), Some(json!(["a"])));
        assert_eq!(at("realm_access.roles"), Some(json!(["admin"])));
        assert_eq!(
            at("resource_access.orders-api.roles"),
            Some(json!(["reader"]))
        );
        assert_eq!(at("https://example\\.com/roles"), Some(json!(["x"])));
        assert_eq!(at("https://example.com/roles"), None, "unescaped dots nest");
        assert_eq!(at("groups.0"), None, "arrays are not objects");
        assert_eq!(at("realm_access.roles.x"), None);
        assert_eq!(at("missing.roles"), None);
    }

    #[test]
    fn malformed_paths_are_refused_with_a_reason() {
        assert_eq!(ClaimPath::parse(""), Err(ClaimPathError::Empty));
        for text in ["a..b", ".a", "a."] {
            assert_eq!(
                ClaimPath::parse(text),
                Err(ClaimPathError::EmptySegment),
                "{text}"
            );
        }
        assert_eq!(ClaimPath::parse("a\\"), Err(ClaimPathError::DanglingEscape));
        assert_eq!(
            ClaimPath::parse("a\\x"),
            Err(ClaimPathError::UnknownEscape('x'))
        );
    }

    #[test]
    fn display_gives_back_the_escaped_form() {
        for text in [
            "realm_access.roles",
            "https://example\\.com/roles",
            "a\\\\b.c",
        ] {
            assert_eq!(ClaimPath::parse(text).unwrap().to_string(), text);
        }
    }
}
