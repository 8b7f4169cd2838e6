//! The shipped Grafana dashboard and Prometheus alert rules (deploy/observability/) only use what
//! oidc-authz exports: every metric they name, with every label value they select, is in the
//! `/metrics` answer of a real server (`promtool` checks the rules' syntax and behaviour, in
//! scripts/validate-deploy).

mod support;

use std::sync::Arc;

use oidc_authz::session::memory::MemoryStore;
use support::{Authz, FakeIdp};

const DASHBOARD: &str = include_str!("../deploy/observability/grafana-dashboard.json");
const ALERTS: &str = include_str!("../deploy/observability/alerts.yaml");
const README: &str = include_str!("../README.md");

/// Each `oidc_authz_…` name in `text`, with the `label="value"` pairs of its selector (`=~`,
/// `!=` and `$variables` skipped: they match sets, not one value).
fn referenced_series(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("oidc_authz_") {
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = rest[..end].to_owned();
        rest = &rest[end..];
        let mut labels = Vec::new();
        if let Some(selector) = rest.strip_prefix('{').and_then(|s| s.split_once('}')) {
            for matcher in selector.0.split(',') {
                let Some((key, value)) = matcher.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches(|c| c == '"' || c == '\\');
                if key.ends_with('!') || value.starts_with('~') || value.contains('$') {
                    continue;
                }
                labels.push((key.trim().to_owned(), value.to_owned()));
            }
        }
        found.push((name, labels));
    }
    found
}

#[test]
fn the_reference_parser_finds_names_and_fixed_label_values() {
    let found = referenced_series(
        r#"sum(rate(oidc_authz_checks_total{instance=~"$instance",outcome="error"}[5m])) / oidc_authz_logins_total"#,
    );
    assert_eq!(
        found,
        vec![
            (
                "oidc_authz_checks_total".to_owned(),
                vec![("outcome".to_owned(), "error".to_owned())]
            ),
            ("oidc_authz_logins_total".to_owned(), vec![]),
        ]
    );
}

#[tokio::test]
async fn every_series_the_dashboard_and_alerts_use_is_exported() {
    let idp = FakeIdp::start().await;
    let authz = Authz::start(&idp, "", Arc::new(MemoryStore::default())).await;
    let exported = reqwest::get(format!("http://{}/metrics", authz.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let samples: Vec<&str> = exported.lines().filter(|l| !l.starts_with('#')).collect();
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| p.len() >= 10)
    );
    let mut checked = 0;
    for (source, text) in [("dashboard", DASHBOARD), ("alerts", ALERTS)] {
        for (name, labels) in referenced_series(text) {
            let series: Vec<&str> = samples
                .iter()
                .copied()
                .filter(|line| {
                    line.strip_prefix(name.as_str())
                        .is_some_and(|rest| rest.starts_with(['{', ' ']))
                })
                .collect();
            assert!(
                !series.is_empty(),
                "{source}: `{name}` is not exported:\n{exported}"
            );
            for (key, value) in labels {
                let pair = format!("{key}=\"{value}\"");
                assert!(
                    series.iter().any(|line| line.contains(&pair)),
                    "{source}: no `{name}` series has {pair}:\n{exported}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} references found");
    // And the README's Metrics table names every family.
    for family in exported.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split(' ').next().unwrap();
        assert!(
            README.contains(&format!("| `{name}")),
            "README's Metrics table does not list `{name}`"
        );
    }
    authz.stop().await;
}
