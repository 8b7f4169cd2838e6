//! A reader over one YAML mapping that converts each key to its type and collects every problem
//! with its key path instead of stopping at the first, then reports the keys nobody asked for.

use std::collections::HashSet;

use serde_yaml::{Mapping, Value};

pub(super) struct Reader<'a> {
    map: Option<&'a Mapping>,
    path: String,
    pub(super) errors: &'a mut Vec<String>,
    read: HashSet<String>,
}

fn key_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// A scalar as text: YAML reads `port: 80` or `secret: 123` as numbers; we want strings for those.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

impl<'a> Reader<'a> {
    pub(super) fn new(map: Option<&'a Mapping>, path: &str, errors: &'a mut Vec<String>) -> Self {
        Reader {
            map,
            path: path.to_owned(),
            errors,
            read: HashSet::new(),
        }
    }

    pub(super) fn path(&self, key: &str) -> String {
        key_path(&self.path, key)
    }

    pub(super) fn error(&mut self, key: &str, message: impl std::fmt::Display) {
        let path = self.path(key);
        self.errors.push(format!("{path}: {message}"));
    }

    /// The raw value, `None` when absent or null.
    pub(super) fn value(&mut self, key: &str) -> Option<&'a Value> {
        self.read.insert(key.to_owned());
        self.map?
            .get(Value::String(key.to_owned()))
            .filter(|v| !v.is_null())
    }

    pub(super) fn string(&mut self, key: &str) -> Option<String> {
        let value = self.value(key)?;
        match scalar_text(value) {
            Some(text) => Some(text),
            None => {
                self.error(key, "expected a string");
                None
            }
        }
    }

    pub(super) fn string_or(&mut self, key: &str, default: &str) -> String {
        self.string(key).unwrap_or_else(|| default.to_owned())
    }

    pub(super) fn bool_or(&mut self, key: &str, default: bool) -> bool {
        match self.value(key) {
            None => default,
            Some(Value::Bool(flag)) => *flag,
            Some(Value::String(text)) if text == "true" || text == "false" => text == "true",
            Some(_) => {
                self.error(key, "expected true or false");
                default
            }
        }
    }

    /// A non-negative whole number (seconds, sizes).
    pub(super) fn u64_or(&mut self, key: &str, default: u64) -> u64 {
        let Some(value) = self.value(key) else {
            return default;
        };
        let parsed = match value {
            Value::Number(number) => number.as_u64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        };
        parsed.unwrap_or_else(|| {
            self.error(key, "expected a whole number >= 0");
            default
        })
    }

    /// A list of strings; a single string or a comma-separated string (from an environment
    /// variable) is accepted too.
    pub(super) fn string_list(&mut self, key: &str) -> Option<Vec<String>> {
        let value = self.value(key)?;
        match value {
            Value::Sequence(items) => {
                let mut list = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    match scalar_text(item) {
                        Some(text) => list.push(text),
                        None => self.error(&format!("{key}[{index}]"), "expected a string"),
                    }
                }
                Some(list)
            }
            other => match scalar_text(other) {
                Some(text) => Some(
                    text.split([',', ' '])
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                ),
                None => {
                    self.error(key, "expected a list of strings");
                    None
                }
            },
        }
    }

    /// One of `choices`; the error lists them.
    pub(super) fn choice_or<T: Copy>(&mut self, key: &str, choices: &[(&str, T)], default: T) -> T {
        let Some(text) = self.string(key) else {
            return default;
        };
        if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
            return *value;
        }
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        self.error(key, format!("`{text}` is not one of: {}", names.join(", ")));
        default
    }

    /// A nested mapping, read with its own reader (its errors land in the same list).
    pub(super) fn mapping(&mut self, key: &str) -> Option<&'a Mapping> {
        match self.value(key)? {
            Value::Mapping(map) => Some(map),
            _ => {
                self.error(key, "expected a mapping");
                None
            }
        }
    }

    /// Reports every key present that no one read.
    pub(super) fn finish(self) {
        let Some(map) = self.map else { return };
        for key in map.keys() {
            let name = scalar_text(key).unwrap_or_else(|| format!("{key:?}"));
            if !self.read.contains(&name) {
                let path = key_path(&self.path, &name);
                let hint = self
                    .read
                    .iter()
                    .filter(|known| edit_distance(known, &name) <= 2)
                    .min_by_key(|known| edit_distance(known, &name))
                    .map(|known| format!(" (did you mean `{known}`?)"))
                    .unwrap_or_default();
                self.errors.push(format!("{path}: unknown key{hint}"));
            }
        }
    }
}

/// Levenshtein distance, for "did you mean" hints on misspelt keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}
