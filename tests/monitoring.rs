//! The alerts (charts/defender/files/prometheus-rules.yaml) and the Grafana
//! dashboard (charts/defender/files/grafana-dashboard.json) query only metrics
//! Defender serves, every alert has a runbook and unit tests, and the
//! kustomize component carries the same files. tests/monitoring/check.sh runs
//! the rules' own unit tests with promtool.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value as Json, json};
use serde_yaml_ng::Value as Yaml;

#[path = "support/serve_process.rs"]
mod serve_process;
#[path = "support/wire.rs"]
mod wire;
use serve_process::ServeProcess;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const RULES: &str = "charts/defender/files/prometheus-rules.yaml";
const DASHBOARD: &str = "charts/defender/files/grafana-dashboard.json";
const RULE_TESTS: &str = "tests/monitoring/prometheus-rules.test.yaml";
const COMPONENT: &str = "deploy/components/monitoring";

/// Names queried that Defender does not serve yet, each with the reason.
/// A name served meanwhile must leave this list (the test says so).
const NOT_SERVED_YET: &[(&str, &str)] = &[];

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn rules() -> Yaml {
    serde_yaml_ng::from_str(&read(RULES)).unwrap()
}

fn dashboard() -> Json {
    serde_json::from_str(&read(DASHBOARD)).unwrap()
}

/// Every alerting rule of every group.
fn alerts(rules: &Yaml) -> Vec<&Yaml> {
    let groups = rules["groups"].as_sequence().expect("a groups: list");
    groups
        .iter()
        .flat_map(|group| group["rules"].as_sequence().expect("each group has rules"))
        .filter(|rule| rule["alert"].is_string())
        .collect()
}

/// The Defender metric names a PromQL expression mentions: identifiers
/// starting with `defender_`, read loosely (no PromQL parser).
fn defender_names(expr: &str, into: &mut BTreeSet<String>) {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut rest = expr;
    while let Some(at) = rest.find("defender_") {
        let preceded = rest[..at].chars().next_back().is_some_and(ident);
        let name: String = rest[at..].chars().take_while(|&c| ident(c)).collect();
        if !preceded {
            into.insert(name.clone());
        }
        rest = &rest[at + name.len()..];
    }
}

/// The strings of a dashboard that hold PromQL: panel targets and variable queries.
fn dashboard_queries(value: &Json, into: &mut Vec<String>) {
    match value {
        Json::Object(fields) => {
            for (key, field) in fields {
                match field {
                    Json::String(text) if ["expr", "query", "definition"].contains(&key.as_str()) => {
                        into.push(text.clone());
                    }
                    _ => dashboard_queries(field, into),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|item| dashboard_queries(item, into)),
        _ => {}
    }
}

/// Every name a scrape of `text` yields: the samples' names, and for each
/// `# TYPE` line the names its samples take (so a family with no sample yet
/// counts): counters end in `_total`, histograms add `_bucket`, `_count`, `_sum`.
fn served_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut words = declared.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else { continue };
            names.insert(name.to_owned());
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_count", "_sum"],
                "summary" => &["_count", "_sum"],
                _ => &[],
            };
            names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

#[test]
fn names_are_read_from_promql_and_from_a_scrape() {
    let mut found = BTreeSet::new();
    defender_names(
        r#"sum(rate(defender_reviews_total{job="defender"}[5m])) / x_defender_not(defender_b_bucket)"#,
        &mut found,
    );
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["defender_b_bucket", "defender_reviews_total"]);
    let scrape = "# TYPE defender_errors counter\n# TYPE defender_latency histogram\n\
                  defender_latency_bucket{le=\"1\"} 0\n# TYPE defender_up gauge\n# EOF\n";
    let served = served_names(scrape);
    for name in ["defender_errors_total", "defender_latency_count", "defender_latency_bucket", "defender_up"]
    {
        assert!(served.contains(name), "{name} in {served:?}");
    }
    assert!(!served.contains("defender_up_total"));
}

#[tokio::test]
async fn every_metric_the_alerts_and_the_dashboard_query_is_served() {
    let mut queried = BTreeSet::new();
    for alert in alerts(&rules()) {
        defender_names(alert["expr"].as_str().expect("each alert has an expr"), &mut queried);
    }
    let mut queries = Vec::new();
    dashboard_queries(&dashboard(), &mut queries);
    for query in &queries {
        defender_names(query, &mut queried);
    }
    // The files are read at all: the golden signals are among the names.
    for name in
        ["defender_reviews_total", "defender_review_duration_seconds_bucket", "defender_in_flight_requests"]
    {
        assert!(queried.contains(name), "{name} not found in {RULES} or {DASHBOARD}: {queried:?}");
    }

    let server = ServeProcess::start(&[]);
    let client = wire::client(&server.ca, Duration::from_secs(15));
    // Families with labels show up once they have a series: one review
    // denied by a policy, one let through unjudged for an exempt user.
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}});
    for (operation, user) in [("DELETE", "alice"), ("CREATE", "system:kube-controller-manager")] {
        let (object, old_object) = if operation == "DELETE" {
            (Json::Null, namespace.clone())
        } else {
            (namespace.clone(), Json::Null)
        };
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "1", "operation": operation, "name": "kube-system", "dryRun": false,
            "kind": {"group": "", "version": "v1", "kind": "Namespace"},
            "resource": {"group": "", "version": "v1", "resource": "namespaces"},
            "userInfo": {"username": user}, "object": object, "oldObject": old_object,
        }});
        let answer = client.post(server.url("/validate")).json(&review).send().await.unwrap();
        assert_eq!(answer.status(), 200);
    }
    let text = client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let served = served_names(&text);

    for (name, why) in NOT_SERVED_YET {
        assert!(
            !served.contains(*name),
            "{name} is served now: remove it from NOT_SERVED_YET (it was there because {why})"
        );
        queried.remove(*name);
    }
    let missing: Vec<&String> = queried.iter().filter(|name| !served.contains(*name)).collect();
    assert!(missing.is_empty(), "queried but not served by defender serve: {missing:?}\n/metrics:\n{text}");
}

#[test]
fn every_alert_has_a_severity_a_summary_and_a_runbook_section() {
    let runbooks = read("docs/runbooks.md");
    let rules = rules();
    let alerts = alerts(&rules);
    assert!(!alerts.is_empty());
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap();
        let severity = alert["labels"]["severity"].as_str();
        assert!(matches!(severity, Some("critical" | "warning")), "{name}: severity {severity:?}");
        assert!(alert["annotations"]["summary"].is_string(), "{name}: no summary");
        assert!(alert["annotations"]["description"].is_string(), "{name}: no description");
        let url = alert["annotations"]["runbook_url"].as_str().unwrap_or_default();
        // GitHub's anchor for a heading `## DefenderDown` is `#defenderdown`.
        let anchor = format!("docs/runbooks.md#{}", name.to_lowercase());
        assert!(url.ends_with(&anchor), "{name}: runbook_url {url:?} should end in {anchor}");
        assert!(
            runbooks.lines().any(|line| line == format!("## {name}")),
            "{name}: no section in docs/runbooks.md"
        );
    }
}

/// The alert names a promtool test file expects at some evaluation to fire
/// (`exp_alerts` not empty) and to stay silent (`exp_alerts: []`).
fn tested(tests: &Yaml) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut firing, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for test in tests["tests"].as_sequence().expect("a tests: list") {
        for check in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = check["alertname"].as_str().unwrap().to_owned();
            let expected = check["exp_alerts"].as_sequence().map_or(0, Vec::len);
            if expected > 0 { &mut firing } else { &mut silent }.insert(name);
        }
    }
    (firing, silent)
}

#[test]
fn every_alert_is_unit_tested_firing_and_silent() {
    let tests: Yaml = serde_yaml_ng::from_str(&read(RULE_TESTS)).unwrap();
    let files: Vec<&str> =
        tests["rule_files"].as_sequence().unwrap().iter().filter_map(Yaml::as_str).collect();
    assert_eq!(files, [format!("../../{RULES}")], "{RULE_TESTS} must test the rules file");
    let (firing, silent) = tested(&tests);
    for alert in alerts(&rules()) {
        let name = alert["alert"].as_str().unwrap();
        assert!(firing.contains(name), "{RULE_TESTS} never expects {name} to fire");
        assert!(silent.contains(name), "{RULE_TESTS} never expects {name} to stay silent");
    }
}

#[test]
fn the_kustomize_component_carries_the_same_alerts_and_dashboard() {
    let resync = "run `bash tests/monitoring/sync.sh` after changing charts/defender/files/";
    let rule: Yaml = serde_yaml_ng::from_str(&read(&format!("{COMPONENT}/prometheusrule.yaml"))).unwrap();
    assert_eq!(rule["kind"].as_str(), Some("PrometheusRule"));
    assert!(rule["spec"] == rules(), "{COMPONENT}/prometheusrule.yaml's spec differs from {RULES}: {resync}");
    assert!(
        read(&format!("{COMPONENT}/grafana-dashboard.json")) == read(DASHBOARD),
        "{COMPONENT}/grafana-dashboard.json differs from {DASHBOARD}: {resync}"
    );
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_with_unique_panel_ids() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"].as_str(), Some("defender"));
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|panel| panel["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids repeat");
    for panel in panels.iter().filter(|panel| panel["type"] != "row") {
        let title = panel["title"].as_str().unwrap();
        let targets = panel["targets"].as_array().map_or(0, Vec::len);
        assert!(targets > 0, "panel {title:?} queries nothing");
    }
}
