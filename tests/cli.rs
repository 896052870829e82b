//! The `defender` binary as operators and CI pipelines run it: exit codes,
//! what lands on stdout and stderr.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn defender(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_defender"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("defender runs")
}

fn defender_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_defender"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("defender starts");
    child.stdin.take().expect("stdin").write_all(stdin).expect("stdin written");
    child.wait_with_output().expect("defender finishes")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The suites under tests/policies are the policy set's specification.
#[test]
fn policy_suites_pass() {
    let output = defender(&["test", "tests/policies"]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    let summary = text.lines().last().expect("a summary line");
    assert!(summary.ends_with(" passed, 0 failed"), "{summary}");
    let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 100, "{summary}");
    for suite in [
        "core-namespaces",
        "namespace-deletion",
        "deletion-guard",
        "ingress-hosts",
        "ingress-hosts-scope",
        "custom-policies",
        "cascading-protection",
        "in-use-guard",
        "duplicate-hosts",
    ] {
        assert!(text.contains(&format!(": {suite} (")), "suite {suite} did not run:\n{text}");
    }
}

#[test]
fn failing_cases_are_reported_with_their_reasons_and_exit_1() {
    let output = defender(&["test", "tests/fixtures/failing-suite.yaml"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for expected in [
        "  ok    right",
        "  FAIL  wrong verdict\n        expected allow, got deny: defender/core-namespaces:",
        "expected the message to contain \"no such text\"",
        "expected policy ingress-hosts to fire",
        "step 2 (at 1s): expected deny, got allow",
        "goes back in time",
        "unknown field `expected`",
        "no-such-file.yaml",
        "UPDATE needs object and oldObject",
        "objects[0]: deployment \"web\": spec.replicas: invalid type",
        "objects[0]: the cluster view keeps only Namespaces, Pods,",
        "1 passed, 10 failed",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn a_bad_policy_file_fails_the_suite_naming_file_document_and_field() {
    let output = defender(&["test", "tests/fixtures/bad-policies-suite.yaml"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text.contains("bad-policies/core.yaml: document 1 (core): spec.namespace: unknown field"),
        "{text}"
    );
}

#[test]
fn an_unreadable_cluster_declaration_fails_the_suite() {
    let output = defender(&["test", "tests/fixtures/bad-cluster-suite.yaml"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("bad-cluster-suite.yaml: document 1: spec.objects[0]")
            && text.contains("no-such-manifests.yaml: No such file"),
        "{text}"
    );
}

#[test]
fn test_without_suites_fails() {
    let output = defender(&["test", "tests/fixtures/manifests-ok"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("no test suites found"));
    let missing = defender(&["test", "no/such/dir"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stdout(&missing).contains("no/such/dir: no such file or directory"));
}

#[test]
fn review_prints_a_denial_and_exits_0() {
    let output = defender(&["review", "tests/fixtures/review-delete-kube-system.json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let response: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(response["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(response["response"]["uid"], "3f1c2f5e-1d4b-4a8e-9d55-0c1f0f3b8a11");
    assert_eq!(response["response"]["allowed"], false);
    assert_eq!(response["response"]["status"]["code"], 403);
    assert_eq!(response["response"]["status"]["reason"], "Forbidden");
    let message = response["response"]["status"]["message"].as_str().unwrap();
    assert!(message.starts_with("defender/core-namespaces: namespace \"kube-system\" is a core namespace"));
}

#[test]
fn review_reads_stdin_and_allows_what_no_policy_covers() {
    let review = std::fs::read_to_string("tests/fixtures/review-delete-kube-system.json")
        .unwrap()
        .replace("\"Namespace\"", "\"ServiceAccount\"")
        .replace("\"namespaces\"", "\"serviceaccounts\"");
    let output = defender_with_stdin(&["review"], review.as_bytes());
    assert!(output.status.success(), "{}", stderr(&output));
    let response: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(response["response"]["allowed"], true);
}

#[test]
fn review_rejects_unusable_input_with_a_clear_error() {
    let cases: [(&[u8], &str); 6] = [
        (b"{\"apiVersion\":", "failed to parse AdmissionReview"),
        (b"not json at all", "failed to parse AdmissionReview"),
        (br#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}"#, "expected a document of kind AdmissionReview"),
        (br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#, "has no request to judge"),
        (
            br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "u"}}"#,
            "admissionReviewVersions: [v1]",
        ),
        (
            br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 7}}"#,
            "request.uid",
        ),
    ];
    for (input, expected) in cases {
        let output = defender_with_stdin(&["review"], input);
        assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(input));
        assert!(output.stdout.is_empty());
        let error = stderr(&output);
        assert!(error.starts_with("defender: stdin: ") && error.contains(expected), "{error}");
    }
    let missing = defender(&["review", "no-such.json"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("failed to read no-such.json"));
}

#[test]
fn review_with_a_bad_policy_directory_names_the_problem() {
    let output = defender(&[
        "review",
        "--policies",
        "tests/fixtures/bad-policies",
        "tests/fixtures/review-delete-kube-system.json",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("core.yaml: document 1 (core): spec.namespace: unknown field"));
    let empty = tempfile::tempdir().unwrap();
    let output = defender(&["review", "--policies", empty.path().to_str().unwrap(), "x.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no policy documents found"));
}

#[test]
fn check_passes_clean_manifests() {
    let output = defender(&["check", "-f", "tests/fixtures/manifests-ok"]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("allow  ingress \"shop/web\""));
    assert!(
        text.contains("allow  configmap \"default/settings\""),
        "List items are unpacked, namespace defaulted"
    );
    assert!(text.ends_with("3 objects: 3 allowed, 0 denied, 0 unusable\n"));
}

#[test]
fn check_fails_on_a_denied_manifest_and_says_why() {
    let output =
        defender(&["check", "-f", "tests/fixtures/manifests-bad", "-f", "tests/fixtures/manifests-ok"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("deny   ingress \"shop/catch-all\""));
    assert!(text.contains("spec.rules[0].host \"*\" matches every host"));
}

/// Manifests of the v1beta1 Ingress versions still live in repositories; their
/// catch-all `spec.backend` is judged like `spec.defaultBackend`.
#[test]
fn check_denies_a_v1beta1_ingress_with_a_catch_all_backend() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("legacy.yaml");
    std::fs::write(
        &file,
        "apiVersion: extensions/v1beta1\n\
         kind: Ingress\n\
         metadata: {name: legacy, namespace: shop}\n\
         spec:\n  \
           backend: {serviceName: web, servicePort: 80}\n  \
           rules:\n  \
           - host: shop.example.com\n    \
             http: {paths: [{path: /, backend: {serviceName: web, servicePort: 80}}]}\n\
         ---\n\
         apiVersion: networking.k8s.io/v1beta1\n\
         kind: Ingress\n\
         metadata: {name: web, namespace: shop}\n\
         spec: {rules: [{host: shop.example.com}]}\n",
    )
    .unwrap();
    let output = defender(&["check", "-f", file.to_str().unwrap()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "legacy.yaml document 1)\n       defender/ingress-hosts: ingress \
             \"shop/legacy\" would take traffic meant for other hosts: spec.backend receives traffic for every \
             host no rule matches"
        ),
        "{text}"
    );
    assert!(text.contains("deny   ingress \"shop/legacy\" ("), "{text}");
    assert!(text.contains("allow  ingress \"shop/web\" ("), "{text}");
    assert!(text.ends_with("2 objects: 1 allowed, 1 denied, 0 unusable\n"), "{text}");
}

#[test]
fn review_denies_a_v1beta1_ingress_with_a_catch_all_backend() {
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "5d2c3a8e-0b1f-4c59-9a57-3e6f0f1d2b44",
            "kind": {"group": "networking.k8s.io", "version": "v1beta1", "kind": "Ingress"},
            "resource": {"group": "networking.k8s.io", "version": "v1beta1", "resource": "ingresses"},
            "name": "legacy", "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "developer@example.com", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "networking.k8s.io/v1beta1", "kind": "Ingress",
                "metadata": {"name": "legacy", "namespace": "shop"},
                "spec": {"backend": {"serviceName": "web", "servicePort": 80}}
            },
            "oldObject": null, "dryRun": false
        }
    });
    let output = defender_with_stdin(&["review"], review.to_string().as_bytes());
    assert!(output.status.success(), "{}", stderr(&output));
    let response: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(response["response"]["allowed"], false);
    let message = response["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("spec.backend receives traffic for every host no rule matches"), "{message}");
}

#[test]
fn check_judges_deletions_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ns.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system}\n").unwrap();
    let file = file.to_str().unwrap();
    let created = defender(&["check", "-f", file]);
    assert!(created.status.success());
    let deleted = defender(&["check", "--operation", "delete", "-f", file]);
    assert_eq!(deleted.status.code(), Some(1));
    assert!(stdout(&deleted).contains("is a core namespace and cannot be deleted"));
}

#[test]
fn check_reports_unusable_manifests_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.yaml"), "kind: [unclosed\n").unwrap();
    std::fs::write(dir.path().join("scalar.yaml"), "just a string\n").unwrap();
    std::fs::write(dir.path().join("nokind.yaml"), "metadata: {name: x}\n").unwrap();
    let output = defender(&["check", "-f", dir.path().to_str().unwrap()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("broken.yaml document 1: not valid YAML"), "{text}");
    assert!(text.contains("scalar.yaml document 1: expected a Kubernetes object"), "{text}");
    assert!(
        text.contains(
            "nokind.yaml document 1: cannot build an admission request: the object has no apiVersion"
        ),
        "{text}"
    );
}

/// deploy/ ships a copy of the default policies for operators to edit (kustomize
/// cannot read files outside its directory); it must start out identical.
#[test]
fn the_deploy_policy_copy_matches_the_embedded_policies() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = root.join("deploy/components/custom-policies/policies");
    for entry in std::fs::read_dir(root.join("policies")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        let copied = std::fs::read_to_string(copy.join(name)).unwrap_or_default();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), copied, "{name:?} differs in {}", copy.display());
    }
}

#[test]
fn a_symlink_loop_in_a_directory_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
        .unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
    let path = dir.path().to_str().unwrap();
    let checked = defender(&["check", "-f", path]);
    assert!(checked.status.success(), "{}", stdout(&checked));
    assert!(stdout(&checked).contains("1 objects: 1 allowed"));
    let tested = defender(&["test", path]);
    assert!(stdout(&tested).contains("no test suites found"));
}

fn webhooks_of(output: &Output) -> Vec<serde_yaml_ng::Value> {
    assert!(output.status.success(), "{}", stderr(output));
    let configuration: serde_yaml_ng::Value = serde_yaml_ng::from_str(&stdout(output)).expect("valid YAML");
    assert_eq!(configuration["kind"].as_str(), Some("ValidatingWebhookConfiguration"));
    configuration["webhooks"].as_sequence().expect("webhooks").clone()
}

/// The namespaces a webhook's namespaceSelector leaves out.
fn excluded(webhook: &serde_yaml_ng::Value) -> Vec<String> {
    let requirements =
        webhook["namespaceSelector"]["matchExpressions"].as_sequence().cloned().unwrap_or_default();
    requirements
        .iter()
        .flat_map(|r| r["values"].as_sequence().cloned().unwrap_or_default())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn webhook_config_prints_the_configuration_the_embedded_policies_need() {
    let webhooks = webhooks_of(&defender(&["webhook-config"]));
    let names: Vec<&str> = webhooks.iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "namespaces.defender.io",
            "deletions.defender.io",
            "pod-deletions.defender.io",
            "ingress-hosts.defender.io",
            "delete-protection.defender.io"
        ]
    );
    for webhook in &webhooks {
        assert_eq!(webhook["clientConfig"]["service"]["namespace"].as_str(), Some("defender-system"));
    }
    assert_eq!(excluded(&webhooks[1]), ["defender-system"]);
}

#[test]
fn webhook_config_places_defender_where_the_flags_say() {
    let output =
        defender(&["webhook-config", "--namespace", "other", "--service-name", "guard", "--name", "g"]);
    let webhooks = webhooks_of(&output);
    for webhook in &webhooks {
        let service = &webhook["clientConfig"]["service"];
        assert_eq!((service["namespace"].as_str(), service["name"].as_str()), (Some("other"), Some("guard")));
        assert!(excluded(webhook).iter().all(|ns| ns == "other"), "{webhook:?}");
    }
    assert_eq!(excluded(&webhooks[1]), ["other"]);
    assert!(stdout(&output).contains("\n  name: g\n"));

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    let url = "https://127.0.0.1:8443/validate";
    let outside =
        webhooks_of(&defender(&["webhook-config", "--url", url, "--ca-bundle", ca.to_str().unwrap()]));
    for webhook in &outside {
        let client = &webhook["clientConfig"];
        assert_eq!(client["url"].as_str(), Some(url));
        assert!(client["service"].is_null());
        use base64::Engine as _;
        let pem =
            base64::engine::general_purpose::STANDARD.decode(client["caBundle"].as_str().unwrap()).unwrap();
        assert_eq!(pem, std::fs::read(&ca).unwrap());
    }
}

#[test]
fn webhook_config_refuses_unusable_flags() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    for (args, expected) in [
        (vec!["--url", "http://127.0.0.1:8443/validate"], "https:// only"),
        (vec!["--namespace", "Bad_Namespace"], "--namespace \"Bad_Namespace\""),
        (vec!["--ca-bundle", not_pem.to_str().unwrap()], "expected PEM certificates"),
        (vec!["--ca-bundle", "/nonexistent/ca.crt"], "--ca-bundle /nonexistent/ca.crt"),
    ] {
        let output = defender(&[&["webhook-config"][..], &args].concat());
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(stderr(&output).contains(expected), "{args:?}: {}", stderr(&output));
        assert!(stdout(&output).is_empty());
    }
}

/// A policy set guarding a custom resource: deploy/'s configuration never
/// sends its deletions, and `check` says so; the regenerated one does.
#[test]
fn check_warns_about_kinds_the_webhook_configuration_does_not_send() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("guard.yaml");
    std::fs::write(
        &policies,
        "apiVersion: defender.io/v1alpha1\nkind: DeletionGuard\nmetadata: {name: deletion-guard}\nspec:\n  \
         resources: [{kind: Certificate, group: cert-manager.io, mode: protect}]\n",
    )
    .unwrap();
    let policies = policies.to_str().unwrap();
    let manifests = "tests/fixtures/manifests-ok";
    let warned = defender(&["check", "--policies", policies, "-f", manifests]);
    assert!(warned.status.success(), "{}", stdout(&warned));
    let warnings = stderr(&warned);
    assert!(
        warnings.contains("warning: deletion-guard: UPDATE, DELETE of cert-manager.io/certificates"),
        "{warnings}"
    );
    assert!(warnings.contains(&format!("`defender webhook-config --policies {policies}`")), "{warnings}");

    let deployed = defender(&[
        "check",
        "--policies",
        policies,
        "-f",
        manifests,
        "--webhook-config",
        "deploy/base/validatingwebhookconfiguration.yaml",
    ]);
    assert!(stderr(&deployed).contains("cert-manager.io/certificates"), "{}", stderr(&deployed));

    let generated = dir.path().join("webhooks.yaml");
    let output = defender(&["webhook-config", "--policies", policies]);
    std::fs::write(&generated, &output.stdout).unwrap();
    let regenerated = defender(&[
        "check",
        "--policies",
        policies,
        "-f",
        manifests,
        "--webhook-config",
        generated.to_str().unwrap(),
    ]);
    assert!(regenerated.status.success());
    assert_eq!(stderr(&regenerated), "");

    let embedded = defender(&["check", "-f", manifests]);
    assert_eq!(stderr(&embedded), "", "the default policies are routed by the default configuration");
}

#[test]
fn audit_help_says_what_is_judged_and_the_exit_codes() {
    let output = defender(&["audit", "--help"]);
    assert!(output.status.success());
    let help = stdout(&output);
    for text in [
        "as if each object were created now",
        "Exit codes: 0 no violation, 1 at least one violation",
        "--apply",
        "policyreport",
        "--kubeconfig",
        "namespace-deletion",
    ] {
        assert!(help.contains(text), "{text:?} missing from:\n{help}");
    }
}

#[test]
fn audit_without_a_usable_cluster_exits_2_and_says_why() {
    let missing = defender(&["audit", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("cannot read kubeconfig /nonexistent/kubeconfig"),
        "{}",
        stderr(&missing)
    );

    // An API server nobody answers for (a closed loopback port): the view never lists.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', \
         insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\n\
         contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let kubeconfig = kubeconfig.display().to_string();
    let unreachable = defender(&["audit", "--kubeconfig", &kubeconfig, "--sync-timeout", "1s"]);
    assert_eq!(unreachable.status.code(), Some(2));
    let message = stderr(&unreachable);
    assert!(
        message.contains("the cluster view was not listed within 1s: still waiting for namespaces"),
        "{message}"
    );
}
