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
        (vec!["--namespace", "kube-system"], "--namespace kube-system: a core namespace"),
        (vec!["--namespace", "default"], "--namespace default: a core namespace"),
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

/// The JUnit XML a CI system would read: every testsuite with its counts
/// and its testcases, each with its failure or error element (`name`, `message`).
#[derive(Debug, Default)]
struct Junit {
    root: Option<(String, Vec<(String, String)>)>,
    suites: Vec<JunitSuite>,
}

#[derive(Debug, Default)]
struct JunitSuite {
    attributes: Vec<(String, String)>,
    cases: Vec<JunitCase>,
}

#[derive(Debug, Default)]
struct JunitCase {
    name: String,
    /// `failure` or `error`, its message attribute and its text.
    problem: Option<(String, String, String)>,
}

impl JunitSuite {
    fn attribute(&self, name: &str) -> &str {
        self.attributes.iter().find(|(key, _)| key == name).map_or("", |(_, value)| value)
    }
}

/// Parses with quick-xml, failing on anything that is not well-formed.
fn junit(xml: &[u8]) -> Junit {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut report = Junit::default();
    let attributes = |element: &quick_xml::events::BytesStart| -> Vec<(String, String)> {
        element
            .attributes()
            .map(|a| {
                let a = a.expect("a well-formed attribute");
                let key = String::from_utf8(a.key.as_ref().to_vec()).unwrap();
                let value = String::from_utf8(a.value.to_vec()).unwrap();
                (key, quick_xml::escape::unescape(&value).expect("an escaped attribute value").into_owned())
            })
            .collect()
    };
    let mut open: Vec<String> = Vec::new();
    let mut buffer = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buffer).expect("well-formed XML");
        match event {
            Event::Start(ref element) | Event::Empty(ref element) => {
                let name = String::from_utf8(element.name().as_ref().to_vec()).unwrap();
                let found = attributes(element);
                match name.as_str() {
                    "testsuites" => report.root = Some((name.clone(), found)),
                    "testsuite" => report.suites.push(JunitSuite { attributes: found, cases: Vec::new() }),
                    "testcase" => {
                        let case_name = found.iter().find(|(k, _)| k == "name").expect("a name").1.clone();
                        let suite = report.suites.last_mut().expect("testcase inside testsuite");
                        suite.cases.push(JunitCase { name: case_name, problem: None });
                    }
                    "failure" | "error" => {
                        let message =
                            found.iter().find(|(k, _)| k == "message").expect("a message").1.clone();
                        let case =
                            report.suites.last_mut().and_then(|s| s.cases.last_mut()).expect("in a case");
                        case.problem = Some((name.clone(), message, String::new()));
                    }
                    _ => {}
                }
                if matches!(event, Event::Start(_)) {
                    open.push(name);
                }
            }
            Event::Text(text) if open.last().is_some_and(|e| e == "failure" || e == "error") => {
                let text = text.decode().expect("text").into_owned();
                let text = quick_xml::escape::unescape(&text).expect("escaped text").into_owned();
                let case = report.suites.last_mut().and_then(|s| s.cases.last_mut()).unwrap();
                case.problem.as_mut().unwrap().2.push_str(&text);
            }
            Event::GeneralRef(reference) if open.last().is_some_and(|e| e == "failure" || e == "error") => {
                let name = reference.decode().expect("a reference").into_owned();
                let text =
                    quick_xml::escape::unescape(&format!("&{name};")).expect("a known entity").into_owned();
                let case = report.suites.last_mut().and_then(|s| s.cases.last_mut()).unwrap();
                case.problem.as_mut().unwrap().2.push_str(&text);
            }
            Event::End(_) => {
                open.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buffer.clear();
    }
    assert!(open.is_empty(), "unclosed elements: {open:?}");
    report
}

fn json_of(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", stdout(output)))
}

#[test]
fn test_reports_a_passing_suite_as_json_and_junit_with_exit_0() {
    let suite = "tests/policies/namespace-deletion.yaml";
    let json = defender(&["test", "--output", "json", suite]);
    assert_eq!(json.status.code(), Some(0), "{}", stdout(&json));
    let report = json_of(&json);
    assert_eq!(report["failed"], 0);
    let cases = report["suites"][0]["cases"].as_array().unwrap();
    assert_eq!(report["passed"].as_u64().unwrap() as usize, cases.len());
    assert_eq!(report["suites"][0]["suite"], "namespace-deletion");
    assert_eq!(report["suites"][0]["file"], suite);
    for case in cases {
        assert_eq!(case["outcome"], "passed", "{case}");
        assert!(case["message"].is_null());
        assert!(case["durationSeconds"].as_f64().unwrap() >= 0.0);
        for step in case["steps"].as_array().unwrap() {
            assert_eq!(step["expected"], step["actual"], "{step}");
        }
    }

    let xml = defender(&["test", "-o", "junit", suite]);
    assert_eq!(xml.status.code(), Some(0));
    let report = junit(&xml.stdout);
    let (_, root) = report.root.expect("a testsuites element");
    assert!(root.contains(&("failures".to_owned(), "0".to_owned())), "{root:?}");
    assert_eq!(report.suites.len(), 1);
    let only = &report.suites[0];
    assert_eq!(only.attribute("name"), "namespace-deletion");
    assert_eq!(only.attribute("tests"), cases.len().to_string());
    assert_eq!(only.attribute("failures"), "0");
    assert!(only.attribute("time").parse::<f64>().is_ok(), "{:?}", only.attributes);
    assert!(only.cases.iter().all(|c| c.problem.is_none()));
}

#[test]
fn test_reports_failures_as_json_and_junit_with_exit_1() {
    let suite = "tests/fixtures/failing-suite.yaml";
    let json = defender(&["test", "--output", "json", suite]);
    assert_eq!(json.status.code(), Some(1));
    let report = json_of(&json);
    assert_eq!((report["passed"].as_u64(), report["failed"].as_u64()), (Some(1), Some(10)));
    let cases = report["suites"][0]["cases"].as_array().unwrap();
    let case = |name: &str| cases.iter().find(|c| c["case"] == name).unwrap_or_else(|| panic!("no {name}"));
    let wrong = case("wrong verdict");
    assert_eq!(wrong["outcome"], "failed");
    assert!(wrong["message"].as_str().unwrap().starts_with("expected allow, got deny"));
    let step = &wrong["steps"][0];
    assert_eq!((step["expected"].as_str(), step["actual"].as_str()), (Some("allow"), Some("deny")));
    assert_eq!(step["firedPolicies"][0], "core-namespaces");
    assert!(step["message"].as_str().unwrap().contains("is a core namespace"));
    assert_eq!(case("wrong policy")["steps"][0]["policy"], "ingress-hosts");
    let stepped = &case("wrong step")["steps"];
    assert_eq!(stepped.as_array().unwrap().len(), 2);
    assert_eq!(
        (stepped[0]["outcome"].as_str(), stepped[1]["outcome"].as_str()),
        (Some("passed"), Some("failed"))
    );
    assert_eq!(stepped[1]["at"], "1s");
    assert!(case("unknown field")["message"].as_str().unwrap().contains("unknown field `expected`"));

    let xml = defender(&["test", "--output", "junit", suite]);
    assert_eq!(xml.status.code(), Some(1));
    let report = junit(&xml.stdout);
    let suite = &report.suites[0];
    assert_eq!((suite.attribute("tests"), suite.attribute("failures")), ("11", "10"));
    let failures: Vec<&JunitCase> = suite.cases.iter().filter(|c| c.problem.is_some()).collect();
    assert_eq!(failures.len(), 10);
    let wrong = suite.cases.iter().find(|c| c.name == "wrong verdict").unwrap();
    let (element, message, body) = wrong.problem.as_ref().unwrap();
    assert_eq!(element, "failure");
    assert!(
        message.starts_with("expected allow, got deny: defender/core-namespaces: namespace \"kube-system\"")
    );
    assert!(body.contains("group \"defender:break-glass\""), "{body}");
}

#[test]
fn test_reports_an_unreadable_suite_file_in_every_format() {
    let json = json_of(&defender(&["test", "-o", "json", "no/such/suite.yaml"]));
    assert_eq!(json["failed"], 1);
    assert!(json["suites"][0]["suite"].is_null());
    assert!(json["suites"][0]["error"].as_str().unwrap().contains("no such file or directory"));
    let xml = defender(&["test", "-o", "junit", "no/such/suite.yaml"]);
    assert_eq!(xml.status.code(), Some(1));
    let report = junit(&xml.stdout);
    let (element, message, _) = report.suites[0].cases[0].problem.as_ref().unwrap();
    assert_eq!((element.as_str(), report.suites[0].attribute("errors")), ("error", "1"));
    assert!(message.contains("no/such/suite.yaml: no such file or directory"));
}

/// Names and messages come from operators' files: markup in them must stay text.
#[test]
fn junit_escapes_what_suites_and_messages_contain() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("markup.yaml");
    std::fs::write(
        &file,
        "apiVersion: defender.io/v1alpha1\nkind: TestSuite\nmetadata: {name: \"<suite> & 'co'\"}\nspec:\n  cases:\n\
         \x20   - name: \"</testcase><x a=\\\"1\\\">\\u0001\"\n      operation: DELETE\n      \
         object: {apiVersion: v1, kind: Namespace, metadata: {name: kube-system}}\n      expect: allow\n",
    )
    .unwrap();
    let output = defender(&["test", "-o", "junit", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let report = junit(&output.stdout);
    assert_eq!(report.suites[0].attribute("name"), "<suite> & 'co'");
    assert_eq!(report.suites[0].cases[0].name, "</testcase><x a=\"1\">\u{FFFD}");
    assert_eq!(report.suites[0].cases[0].problem.as_ref().unwrap().0, "failure");
}

#[test]
fn check_reports_as_json_and_junit_with_the_same_exit_codes() {
    let clean = defender(&["check", "-f", "tests/fixtures/manifests-ok", "-o", "json"]);
    assert_eq!(clean.status.code(), Some(0));
    let report = json_of(&clean);
    assert_eq!((report["objects"].as_u64(), report["allowed"].as_u64()), (Some(3), Some(3)));

    let args = ["check", "-f", "tests/fixtures/manifests-bad", "-f", "tests/fixtures/manifests-ok"];
    let json = defender(&[&args[..], &["--output", "json"]].concat());
    assert_eq!(json.status.code(), Some(1));
    let report = json_of(&json);
    assert_eq!((report["objects"].as_u64(), report["denied"].as_u64()), (Some(4), Some(1)));
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["file"], "tests/fixtures/manifests-bad/ingress.yaml");
    let denied = &files[0]["results"][0];
    assert_eq!((denied["verdict"].as_str(), denied["kind"].as_str()), (Some("deny"), Some("Ingress")));
    let finding = &denied["findings"][0];
    assert_eq!(
        (finding["policy"].as_str(), finding["action"].as_str()),
        (Some("ingress-hosts"), Some("deny"))
    );
    assert!(finding["reason"].as_str().unwrap().contains("spec.rules[0].host \"*\" matches every host"));
    assert_eq!(files[1]["results"].as_array().unwrap().len(), 3);

    let xml = defender(&[&args[..], &["--output", "junit"]].concat());
    assert_eq!(xml.status.code(), Some(1));
    let report = junit(&xml.stdout);
    assert_eq!(report.suites.len(), 2);
    assert_eq!(report.suites[0].attribute("failures"), "1");
    let (element, message, _) = report.suites[0].cases[0].problem.as_ref().unwrap();
    assert_eq!(element, "failure");
    assert!(message.starts_with("defender/ingress-hosts: ingress \"shop/catch-all\""), "{message}");
    assert_eq!(report.suites[1].attribute("tests"), "3");
    assert!(report.suites[1].cases.iter().all(|c| c.problem.is_none()));
}

#[test]
fn check_reports_unusable_manifests_as_errors_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.yaml"), "kind: [unclosed\n").unwrap();
    let path = dir.path().to_str().unwrap();
    let json = defender(&["check", "-f", path, "-o", "json"]);
    assert_eq!(json.status.code(), Some(2));
    let report = json_of(&json);
    assert_eq!(report["unusable"], 1);
    assert_eq!(report["files"][0]["results"][0]["verdict"], "unusable");
    let xml = defender(&["check", "-f", path, "-o", "junit"]);
    assert_eq!(xml.status.code(), Some(2));
    let report = junit(&xml.stdout);
    assert_eq!(report.suites[0].attribute("errors"), "1");
    assert!(report.suites[0].cases[0].problem.as_ref().unwrap().1.contains("not valid YAML"));
}

#[test]
fn an_unknown_output_format_is_a_usage_error() {
    let output = defender(&["test", "--output", "yaml", "tests/policies"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("possible values: text, json, junit"), "{}", stderr(&output));
}

const SUBCOMMANDS: &[&str] = &["serve", "test", "check", "review", "webhook-config", "confirm-delete"];

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let output = defender(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        for subcommand in SUBCOMMANDS {
            assert!(script.contains(subcommand), "{shell} completions lack {subcommand}");
        }
        assert!(script.contains("output"), "{shell} completions lack --output");
    }
    assert_eq!(defender(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn man_renders_a_page_naming_the_subcommands_and_one_per_subcommand() {
    let output = defender(&["man"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let page = stdout(&output);
    assert!(page.contains(".TH defender 1"), "{page}");
    for subcommand in SUBCOMMANDS {
        assert!(page.contains(&format!("defender\\-{}", subcommand.replace('-', "\\-"))), "no {subcommand}");
    }
    let dir = tempfile::tempdir().unwrap();
    let written = defender(&["man", "--out", dir.path().to_str().unwrap()]);
    assert!(written.status.success(), "{}", stderr(&written));
    for page in ["defender.1", "defender-test.1", "defender-check.1", "defender-confirm-delete.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH "), "{page}");
    }
    let confirm = std::fs::read_to_string(dir.path().join("defender-confirm-delete.1")).unwrap();
    assert!(confirm.contains("\\-\\-after"), "{confirm}");
}

/// kubectl runs `kubectl defender ...` as `kubectl-defender ...` from PATH.
fn kubectl_plugin(dir: &std::path::Path) -> std::path::PathBuf {
    let plugin = dir.join("kubectl-defender");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_defender"), &plugin).unwrap();
    plugin
}

#[test]
fn runs_as_a_kubectl_plugin_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = kubectl_plugin(dir.path());
    let run = |args: &[&str]| {
        Command::new(&plugin).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("runs")
    };
    let help = run(&["confirm-delete", "--help"]);
    assert!(help.status.success());
    assert!(
        stdout(&help).contains("Usage: kubectl defender confirm-delete [OPTIONS] <NAMESPACE>"),
        "{}",
        stdout(&help)
    );
    let top = stdout(&run(&["--help"]));
    assert!(
        top.contains("Usage: kubectl defender [OPTIONS] <COMMAND>")
            || top.contains("Usage: kubectl defender <COMMAND>"),
        "{top}"
    );
    assert!(
        top.contains("Exit codes: 0 success; 1 a denied manifest (check) or a failed test case (test)"),
        "{top}"
    );
    let tested = run(&["test", "tests/policies/namespace-deletion.yaml"]);
    assert!(tested.status.success(), "{}", stdout(&tested));
    let mistaken = run(&["confirm-delete"]);
    assert_eq!(mistaken.status.code(), Some(2));
    assert!(stderr(&mistaken).contains("kubectl defender confirm-delete"), "{}", stderr(&mistaken));
}

#[test]
fn confirm_delete_refuses_a_time_shorter_than_the_cooldown_before_calling_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = kubectl_plugin(dir.path());
    // No cluster is reachable: the refusal must come before any request.
    let kubeconfig = dir.path().join("no-such-kubeconfig");
    let output = Command::new(&plugin)
        .args(["confirm-delete", "shop", "--after", "1m", "--kubeconfig", kubeconfig.to_str().unwrap()])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--after 1m is shorter than the 5m cooldown of policy namespace-deletion"),
        "{}",
        stderr(&output)
    );
    let unreadable = defender(&["confirm-delete", "shop", "--kubeconfig", kubeconfig.to_str().unwrap()]);
    assert_eq!(unreadable.status.code(), Some(2));
    assert!(stderr(&unreadable).contains("cannot read kubeconfig"), "{}", stderr(&unreadable));
    let nonsense = defender(&["confirm-delete", "shop", "--after", "soon"]);
    assert_eq!(nonsense.status.code(), Some(2));
    assert!(stderr(&nonsense).contains("not a duration"), "{}", stderr(&nonsense));
}
