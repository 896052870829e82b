//! charts/defender: it lints, renders what tests/snapshots holds, carries
//! Defender's version, lets the namespace flow everywhere, and refuses bad
//! values with a message that names them. (tests/e2e checks that it renders
//! what deploy/ does, and applies it to a real API server.)
//!
//! After an intended change to the chart (or to its files/), regenerate the
//! snapshots and review the diff:
//!
//!     UPDATE_SNAPSHOTS=1 cargo test --test chart

#[path = "support/helm.rs"]
mod helm;

use std::path::Path;

use serde_yaml_ng::Value;

use helm::{find, objects, template};

const FULL_VALUES: &str = "charts/defender/ci/full-values.yaml";

fn full_values() -> String {
    helm::repo().join(FULL_VALUES).display().to_string()
}

fn chart_yaml() -> Value {
    let text = std::fs::read_to_string(helm::chart().join("Chart.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

#[test]
fn the_chart_version_and_app_version_are_defenders_version() {
    let chart = chart_yaml();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["version"].as_str(), Some(version), "Chart.yaml version, Cargo.toml {version}");
    assert_eq!(chart["appVersion"].as_str(), Some(version), "Chart.yaml appVersion, Cargo.toml {version}");
}

#[test]
fn the_default_image_is_the_one_built_from_this_version() {
    let rendered = objects(&template(&[]).unwrap());
    let deployment = find(&rendered, "Deployment", "defender");
    let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap();
    assert_eq!(image, format!("ghcr.io/defender-dev/defender:{}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn helm_lint_passes_with_the_default_and_the_full_values() {
    let chart = helm::chart().display().to_string();
    helm::run(&["lint", "--strict", &chart]).unwrap();
    helm::run(&["lint", "--strict", &chart, "-f", &full_values()]).unwrap();
}

/// The serving certificate and key generated at install differ on every
/// render; the snapshot keeps their place, not their bytes.
fn without_generated_keys(rendered: &str) -> String {
    let mut out = String::new();
    for line in rendered.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        match ["caBundle: ", "tls.crt: ", "tls.key: ", "ca.crt: "].iter().find(|k| trimmed.starts_with(**k)) {
            Some(key) => out.push_str(&format!("{indent}{key}<generated at install>")),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn matches_snapshot(name: &str, rendered: &str) {
    let path = helm::repo().join("tests/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, rendered).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected == rendered {
        return;
    }
    let line = expected.lines().zip(rendered.lines()).position(|(a, b)| a != b);
    let line = line.unwrap_or_else(|| expected.lines().count().min(rendered.lines().count()));
    panic!(
        "the chart no longer renders {}: first difference at line {}:\n  expected: {:?}\n  rendered: {:?}\n\
         If the change is intended: UPDATE_SNAPSHOTS=1 cargo test --test chart, then review `git diff`.",
        path.display(),
        line + 1,
        expected.lines().nth(line).unwrap_or("<end>"),
        rendered.lines().nth(line).unwrap_or("<end>"),
    );
}

#[test]
fn the_default_values_render_the_snapshot() {
    matches_snapshot("chart-default.yaml", &without_generated_keys(&template(&[]).unwrap()));
}

#[test]
fn the_full_values_render_the_snapshot() {
    matches_snapshot("chart-full.yaml", &without_generated_keys(&template(&["-f", &full_values()]).unwrap()));
}

#[test]
fn the_namespace_flows_everywhere_defender_system_was_written() {
    let rendered = template(&["-f", &full_values()]).unwrap();
    assert!(
        !rendered.contains("defender-system"),
        "with namespace: guard, no object names defender-system:\n{rendered}"
    );
    let objects = objects(&rendered);
    for object in &objects {
        let kind = object["kind"].as_str().unwrap();
        let namespace = &object["metadata"]["namespace"];
        let cluster_scoped =
            ["Namespace", "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"]
                .contains(&kind);
        let elsewhere = kind == "ConfigMap" && object["metadata"]["name"] == "defender-grafana-dashboard";
        if !cluster_scoped && !elsewhere {
            assert_eq!(namespace.as_str(), Some("guard"), "{kind} {:?}", object["metadata"]["name"]);
        }
    }
    let webhooks = find(&objects, "ValidatingWebhookConfiguration", "defender");
    for webhook in webhooks["webhooks"].as_sequence().unwrap() {
        assert_eq!(webhook["clientConfig"]["service"]["namespace"].as_str(), Some("guard"));
        let excluded = &webhook["namespaceSelector"]["matchExpressions"][0]["values"];
        assert!(excluded.is_null() || excluded[0].as_str() == Some("guard"), "{webhook:?}");
    }
    let certificate = find(&objects, "Certificate", "defender");
    assert_eq!(certificate["spec"]["dnsNames"][0].as_str(), Some("defender.guard.svc"));
    assert_eq!(
        webhooks["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].as_str(),
        Some("guard/defender")
    );
}

/// The ConfigMap's files, written to `dir`.
fn write_policy_set(objects: &[Value], dir: &Path) {
    let set = find(objects, "ConfigMap", "defender-policies");
    for (name, text) in set["data"].as_mapping().unwrap() {
        std::fs::write(dir.join(name.as_str().unwrap()), text.as_str().unwrap()).unwrap();
    }
}

#[test]
fn a_policy_file_from_values_replaces_its_default_and_the_set_loads() {
    let objects = objects(&template(&["-f", &full_values()]).unwrap());
    let dir = tempfile::tempdir().unwrap();
    write_policy_set(&objects, dir.path());
    let set = defender::config::load_path(dir.path()).unwrap();
    let embedded = defender::config::load_embedded().unwrap();
    assert_eq!(set.policies.len(), embedded.policies.len(), "the defaults stay, one replaced");
    let guard = std::fs::read_to_string(dir.path().join("deletion-guard.yaml")).unwrap();
    assert!(guard.contains("ConfigMaps and Ingresses may go"), "{guard}");
    let core = std::fs::read_to_string(dir.path().join("core-namespaces.yaml")).unwrap();
    assert!(core.contains("- guard   # Defender's own namespace"), "{core}");
    let deployment = find(&objects, "Deployment", "defender");
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(args.as_sequence().unwrap().contains(&Value::from("--policies=/etc/defender/policies")));
    assert!(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/policies"].is_string());
}

#[test]
fn the_chart_copy_of_the_default_policies_is_the_embedded_set() {
    let copy = helm::chart().join("files/policies");
    for entry in std::fs::read_dir(helm::repo().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        let copied = std::fs::read_to_string(copy.join(name)).unwrap_or_default();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), copied, "{name:?} differs in {}", copy.display());
    }
    assert_eq!(
        std::fs::read_dir(&copy).unwrap().count(),
        std::fs::read_dir(helm::repo().join("policies")).unwrap().count(),
        "{} holds exactly the default policies",
        copy.display()
    );
}

#[test]
fn by_default_defender_runs_the_embedded_policies() {
    let objects = objects(&template(&[]).unwrap());
    assert!(!objects.iter().any(|o| o["kind"] == "ConfigMap"), "no policy ConfigMap");
    let deployment = find(&objects, "Deployment", "defender");
    let args =
        serde_yaml_ng::to_string(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]).unwrap();
    assert!(!args.contains("--policies"), "{args}");
}

#[test]
fn an_existing_policy_configmap_is_mounted_as_the_set() {
    let objects = objects(&template(&["--set", "policies.existingConfigMap=my-policies"]).unwrap());
    assert!(!objects.iter().any(|o| o["kind"] == "ConfigMap"), "the chart makes none");
    let deployment = find(&objects, "Deployment", "defender");
    let volumes = serde_yaml_ng::to_string(&deployment["spec"]["template"]["spec"]["volumes"]).unwrap();
    assert!(volumes.contains("name: my-policies"), "{volumes}");
}

use rustls::client::danger::ServerCertVerifier;

fn pem_certificates(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).map(Result::unwrap).collect()
}

fn base64_text(value: &Value) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.as_str().unwrap()).unwrap();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn the_generated_certificate_is_for_the_service_and_the_webhooks_trust_its_ca() {
    let objects = objects(&template(&["--set", "namespace=guard"]).unwrap());
    let secret = find(&objects, "Secret", "defender-tls");
    let ca = base64_text(&secret["data"]["ca.crt"]);
    let webhooks = find(&objects, "ValidatingWebhookConfiguration", "defender");
    for webhook in webhooks["webhooks"].as_sequence().unwrap() {
        assert_eq!(base64_text(&webhook["clientConfig"]["caBundle"]), ca, "{:?}", webhook["name"]);
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certificates(&ca) {
        roots.add(cert).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(std::sync::Arc::new(roots), provider)
            .build()
            .unwrap();
    let leaf = pem_certificates(&base64_text(&secret["data"]["tls.crt"])).remove(0);
    let now = rustls::pki_types::UnixTime::now();
    for name in ["defender.guard.svc", "defender.guard.svc.cluster.local"] {
        let server = rustls::pki_types::ServerName::try_from(name).unwrap();
        verifier.verify_server_cert(&leaf, &[], &server, &[], now).unwrap();
    }
    let other = rustls::pki_types::ServerName::try_from("defender.defender-system.svc").unwrap();
    assert!(verifier.verify_server_cert(&leaf, &[], &other, &[], now).is_err());
}

#[test]
fn an_existing_secret_is_mounted_and_its_ca_trusted() {
    let rendered = template(&[
        "--set",
        "certificates.source=existingSecret",
        "--set",
        "certificates.existingSecret.name=my-tls",
        "--set",
        "certificates.existingSecret.caBundle=Q0E=",
    ])
    .unwrap();
    let objects = objects(&rendered);
    assert!(!objects.iter().any(|o| o["kind"] == "Secret"), "the chart makes no Secret");
    let deployment = find(&objects, "Deployment", "defender");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"].as_str(),
        Some("my-tls")
    );
    let webhooks = find(&objects, "ValidatingWebhookConfiguration", "defender");
    for webhook in webhooks["webhooks"].as_sequence().unwrap() {
        assert_eq!(webhook["clientConfig"]["caBundle"].as_str(), Some("Q0E="));
    }
}

#[test]
fn a_url_sends_the_reviews_past_the_service() {
    let objects = objects(&template(&["--set", "webhooks.url=https://10.1.2.3:8443/validate"]).unwrap());
    let webhooks = find(&objects, "ValidatingWebhookConfiguration", "defender");
    for webhook in webhooks["webhooks"].as_sequence().unwrap() {
        assert_eq!(webhook["clientConfig"]["url"].as_str(), Some("https://10.1.2.3:8443/validate"));
        assert!(webhook["clientConfig"]["service"].is_null());
    }
}

fn webhooks_without_client_config(rendered: &str) -> Vec<Value> {
    let objects = objects(rendered);
    let mut webhooks = find(&objects, "ValidatingWebhookConfiguration", "defender")["webhooks"]
        .as_sequence()
        .unwrap()
        .clone();
    for webhook in &mut webhooks {
        webhook.as_mapping_mut().unwrap().remove("clientConfig");
    }
    webhooks
}

#[test]
fn a_generated_configuration_gives_its_rules_and_keeps_the_chart_settings() {
    let base = helm::repo().join("deploy/base/validatingwebhookconfiguration.yaml").display().to_string();
    let settings =
        ["--set", "webhooks.podDeletions.failurePolicy=Fail", "--set", "webhooks.deletions.timeoutSeconds=9"];
    let default = template(&settings).unwrap();
    let generated_file = format!("webhooks.generated={base}");
    let mut with_generated = settings.to_vec();
    with_generated.extend(["--set-file", &generated_file]);
    let generated = template(&with_generated).unwrap();
    assert_eq!(webhooks_without_client_config(&generated), webhooks_without_client_config(&default));
    let objects = objects(&generated);
    let webhooks = find(&objects, "ValidatingWebhookConfiguration", "defender");
    assert!(webhooks["webhooks"][0]["clientConfig"]["caBundle"].is_string(), "{webhooks:?}");

    let other_namespace =
        template(&["--set", "namespace=guard", "--set-file", &format!("webhooks.generated={base}")])
            .unwrap_err();
    assert!(
        other_namespace.contains("generate it with `defender webhook-config --namespace guard`"),
        "{other_namespace}"
    );
}

/// `helm template` with `args` fails, saying `message`.
fn refused(args: &[&str], message: &str) {
    match template(args) {
        Ok(rendered) => panic!("{args:?} rendered:\n{rendered}"),
        Err(error) => assert!(error.contains(message), "{args:?}: {error}"),
    }
}

#[test]
fn bad_values_are_refused_with_what_to_change() {
    refused(
        &["--set", "webhooks.deletions.failurePolicy=Never"],
        "webhooks.deletions.failurePolicy is Never",
    );
    refused(
        &["--set", "webhooks.namespaces.timeoutSeconds=4"],
        "webhooks.namespaces.timeoutSeconds is 4; the API server takes 1 to 30, and it must exceed \
         server.requestTimeoutSeconds (4)",
    );
    refused(
        &["--set", "webhooks.ingressHosts.timeoutSeconds=31"],
        "webhooks.ingressHosts.timeoutSeconds is 31",
    );
    for core in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        refused(
            &["--set", &format!("namespace={core}")],
            &format!("Defender's namespace is \"{core}\", a core namespace"),
        );
    }
    refused(&["--set", "certificates.source=vault"], "certificates.source is \"vault\"");
    refused(&["--set", "certificates.source=existingSecret"], "certificates.existingSecret.name");
    refused(
        &["--set", "certificates.source=existingSecret", "--set", "certificates.existingSecret.name=my-tls"],
        "certificates.existingSecret.caBundle: give the base64 of the CA that signed Secret defender-system/my-tls",
    );
    refused(
        &["--set", "policies.replaceDefaults=true"],
        "policies.replaceDefaults is true but policies.files is empty",
    );
    refused(
        &["--set", "webhooks.generated=kind: ConfigMap"],
        "webhooks.generated: expected the ValidatingWebhookConfiguration",
    );
}

/// A copy of the chart whose files/ holds `files` (name, content) instead
/// of the monitoring files.
fn chart_with_monitoring_files(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status =
        std::process::Command::new("cp").arg("-r").arg(helm::chart()).arg(dir.path()).status().unwrap();
    assert!(status.success());
    let copy = dir.path().join("defender/files");
    for name in ["prometheus-rules.yaml", "grafana-dashboard.json"] {
        let _ = std::fs::remove_file(copy.join(name));
    }
    for (name, text) in files {
        std::fs::write(copy.join(name), text).unwrap();
    }
    dir
}

fn template_chart_at(dir: &Path, args: &[&str]) -> Result<String, String> {
    let chart = dir.join("defender").display().to_string();
    let mut all = vec!["template", "defender", &chart, "-n", "defender-system"];
    all.extend_from_slice(args);
    helm::run(&all)
}

#[test]
fn monitoring_renders_its_files_and_refuses_to_go_without_them() {
    let rules = "# alerts\ngroups:\n  - name: defender\n    rules:\n      - alert: DefenderDown\n        expr: up == 0\n";
    let dashboard = "{\"title\": \"Defender\", \"panels\": []}\n";
    let with = chart_with_monitoring_files(&[
        ("prometheus-rules.yaml", rules),
        ("grafana-dashboard.json", dashboard),
    ]);
    let all_on = [
        "--set",
        "monitoring.serviceMonitor.enabled=true",
        "--set",
        "monitoring.prometheusRule.enabled=true",
        "--set",
        "monitoring.grafanaDashboard.enabled=true",
    ];
    let objects = objects(&template_chart_at(with.path(), &all_on).unwrap());
    let rule = find(&objects, "PrometheusRule", "defender");
    assert_eq!(rule["spec"], serde_yaml_ng::from_str::<Value>(rules).unwrap());
    let configmap = find(&objects, "ConfigMap", "defender-grafana-dashboard");
    assert_eq!(configmap["metadata"]["labels"]["grafana_dashboard"].as_str(), Some("1"));
    assert_eq!(configmap["data"]["defender.json"].as_str(), Some(dashboard.trim()));
    // The ServiceMonitor scrapes /metrics on the Service port that reaches
    // the container's 8443, where Defender serves it.
    let monitor = find(&objects, "ServiceMonitor", "defender");
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"].as_str(), Some("/metrics"));
    assert_eq!(endpoint["scheme"].as_str(), Some("https"));
    let service = find(&objects, "Service", "defender");
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["name"], endpoint["port"]);
    let deployment = find(&objects, "Deployment", "defender");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["name"], port["targetPort"]);
    assert_eq!(container["ports"][0]["containerPort"].as_u64(), Some(8443));
    for (key, value) in monitor["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&service["metadata"]["labels"][key], value, "the ServiceMonitor selects Service defender");
    }

    let without = chart_with_monitoring_files(&[]);
    let rules_missing = template_chart_at(without.path(), &all_on[2..4]).unwrap_err();
    assert!(rules_missing.contains("the chart has no files/prometheus-rules.yaml"), "{rules_missing}");
    let dashboard_missing = template_chart_at(without.path(), &all_on[4..6]).unwrap_err();
    assert!(
        dashboard_missing.contains("the chart has no files/grafana-dashboard.json"),
        "{dashboard_missing}"
    );
    let broken = chart_with_monitoring_files(&[("prometheus-rules.yaml", "rules: [")]);
    let rules_broken = template_chart_at(broken.path(), &all_on[2..4]).unwrap_err();
    assert!(rules_broken.contains("files/prometheus-rules.yaml is not YAML"), "{rules_broken}");
}

#[test]
fn the_chart_carries_the_alerts_and_the_dashboard_as_they_are() {
    let on = [
        "--set",
        "monitoring.prometheusRule.enabled=true",
        "--set",
        "monitoring.grafanaDashboard.enabled=true",
    ];
    let objects = objects(&template(&on).unwrap());
    let files = helm::chart().join("files");
    let rules = std::fs::read_to_string(files.join("prometheus-rules.yaml")).unwrap();
    let rule = find(&objects, "PrometheusRule", "defender");
    assert!(
        rule["spec"] == serde_yaml_ng::from_str::<Value>(&rules).unwrap(),
        "the rule's spec is not the file"
    );
    let dashboard = std::fs::read_to_string(files.join("grafana-dashboard.json")).unwrap();
    let configmap = find(&objects, "ConfigMap", "defender-grafana-dashboard");
    assert_eq!(configmap["data"]["defender.json"].as_str(), Some(dashboard.trim()));
}

#[test]
fn client_certificates_are_required_with_a_client_ca() {
    let objects = objects(&template(&["--set", "clientCA.secretName=api-server-ca"]).unwrap());
    let deployment = find(&objects, "Deployment", "defender");
    let pod = &deployment["spec"]["template"]["spec"];
    let args = pod["containers"][0]["args"].as_sequence().unwrap();
    assert!(args.contains(&Value::from("--client-ca=/etc/defender/client-ca/ca.crt")), "{args:?}");
    let volumes = serde_yaml_ng::to_string(&pod["volumes"]).unwrap();
    assert!(volumes.contains("secretName: api-server-ca"), "{volumes}");
    // The kubelet presents no client certificate: its probes would be refused.
    assert!(pod["containers"][0]["readinessProbe"]["httpGet"].is_null());
}
