//! The lean AdmissionReview parse against kube's `AdmissionReview<DynamicObject>`,
//! the parse it replaced: on the same bodies both accept, the lean request is
//! kube's minus exactly the parts no policy reads, and the decisions agree.
//! Checked on every review the repository holds (fixtures, hostile reviews,
//! the fuzz seeds and regressions) and on generated ones.

use std::path::{Path, PathBuf};

use defender::admission::{self, ReviewError};
use defender::config;
use defender::engine::Engine;
use defender::harness::{self, suite};
use defender::paths::{self, Depth};
use defender::request::{Operation, Request};
use defender::synthetic::Synthetic;
use defender::view::MemoryView;
use k8s_openapi::api::networking::v1::IngressSpec;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The request kube's types build from `body`.
fn kube_request(body: &[u8]) -> AdmissionRequest<DynamicObject> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).expect("kube parses the review");
    review.try_into().expect("the review has a request")
}

/// kube's object minus what the lean parse leaves out.
fn without_unread_parts(object: &mut DynamicObject) {
    object.metadata.managed_fields = None;
    let Value::Object(fields) = &mut object.data else { panic!("an object's fields are a map") };
    fields.remove("status");
    let values: &[&str] = match object.types.as_ref().map(|t| (t.api_version.as_str(), t.kind.as_str())) {
        Some(("v1", "Secret")) => &["data", "stringData"],
        Some(("v1", "ConfigMap")) => &["data", "binaryData"],
        _ => &[],
    };
    if values.is_empty() {
        return;
    }
    for field in values {
        fields.remove(*field);
    }
    if let Some(annotations) = &mut object.metadata.annotations {
        annotations.remove(LAST_APPLIED);
    }
}

/// Everything a request says, types included (kube's serialization skips them).
fn as_value(request: &AdmissionRequest<DynamicObject>) -> Value {
    json!({"types": request.types, "request": request})
}

fn decision(request: &Request) -> Value {
    let engine = Engine::new(config::load_embedded().expect("embedded policies load"));
    let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let view = MemoryView::default();
    let decision = engine.decide(request, &engine.context(now, &view));
    serde_json::to_value(admission::respond(request, &decision)).unwrap()
}

/// Takes the `spec` out of kube's objects, where the lean parse keeps it
/// apart ([`Request::object_spec`]).
fn take_specs(request: &mut AdmissionRequest<DynamicObject>) -> [Option<Value>; 2] {
    [&mut request.object, &mut request.old_object]
        .map(|object| object.as_mut()?.data.as_object_mut()?.remove("spec"))
}

/// Parses `body` both ways and checks the lean request is kube's minus the
/// unread parts, its specs what kube's objects hold, and that both are
/// judged alike.
fn assert_equivalent(body: &[u8]) -> Result<(), TestCaseError> {
    let lean = admission::parse_review(body).map_err(|e| TestCaseError::fail(format!("lean parse: {e}")))?;
    let mut kube = kube_request(body);
    let decision_before = decision(&Request::from(kube.clone()));
    kube.object.iter_mut().chain(kube.old_object.iter_mut()).for_each(without_unread_parts);
    let kube_specs = take_specs(&mut kube);
    prop_assert_eq!(as_value(lean.inner()), as_value(&kube));
    prop_assert_eq!(lean.inner().object.as_ref(), kube.object.as_ref());
    prop_assert_eq!(lean.inner().old_object.as_ref(), kube.old_object.as_ref());
    for (spec, kube_spec) in [lean.object_spec(), lean.old_object_spec()].into_iter().zip(kube_specs) {
        prop_assert_eq!(spec.map(|spec| spec.decode::<Value>().unwrap()), kube_spec.clone());
        // And typed, as the Ingress policies read it.
        let typed = spec.map(|spec| spec.ingress().ok().cloned());
        let kube_typed = kube_spec.map(|spec| IngressSpec::deserialize(&spec).ok());
        prop_assert_eq!(typed, kube_typed);
    }
    prop_assert_eq!(decision(&lean), decision_before);
    // The skeleton, answered for reviews too large to judge whole, is the
    // same request without its objects.
    let skeleton =
        admission::parse_review_skeleton(body).map_err(|e| TestCaseError::fail(format!("skeleton: {e}")))?;
    let mut without_objects = lean.inner().clone();
    (without_objects.object, without_objects.old_object) = (None, None);
    prop_assert_eq!(as_value(skeleton.inner()), as_value(&without_objects));
    Ok(())
}

fn review_of(operation: Operation, object: Value, dry_run: bool) -> Vec<u8> {
    let mut synthetic = Synthetic::new(operation);
    match synthetic.operation {
        Operation::Create => synthetic.object = Some(object),
        Operation::Update => {
            synthetic.object = Some(object.clone());
            synthetic.old_object = Some(object);
        }
        _ => synthetic.old_object = Some(object),
    }
    synthetic.dry_run = dry_run;
    serde_json::to_vec(&synthetic.to_review().expect("buildable review")).unwrap()
}

/// A body kube's types may read that the lean parse refuses on purpose: a
/// review of another version or kind, or bytes that are not UTF-8 text.
fn refused_on_purpose(error: &ReviewError) -> bool {
    match error {
        ReviewError::ApiVersion(_) | ReviewError::Kind(_) => true,
        ReviewError::Json(message) => message.contains("not UTF-8"),
        ReviewError::MissingRequest => false,
    }
}

/// `body` parses to kube's request minus the unread parts and is judged
/// alike, or both parses refuse it (the lean one also where it refuses on purpose).
fn assert_equivalent_or_refused(body: &[u8]) -> Result<(), TestCaseError> {
    let kube = serde_json::from_slice::<AdmissionReview<DynamicObject>>(body)
        .ok()
        .and_then(|review| TryInto::<AdmissionRequest<DynamicObject>>::try_into(review).ok());
    match (admission::parse_review(body), kube) {
        (Ok(_), Some(_)) => assert_equivalent(body),
        (Err(_), None) => Ok(()),
        (Err(error), Some(_)) if refused_on_purpose(&error) => Ok(()),
        (Err(error), Some(_)) => Err(TestCaseError::fail(format!("only kube's parse reads it: {error}"))),
        (Ok(_), None) => Err(TestCaseError::fail("only the lean parse reads it")),
    }
}

/// The files in each directory (those with one of `extensions`, or all);
/// panics when a directory is missing or holds none, so a renamed folder
/// cannot turn the check into a check of nothing.
fn files_in(dirs: &[&str], extensions: &[&str], depth: Depth) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in dirs {
        assert!(root.join(dir).is_dir(), "{dir} is not a directory");
        let found: Vec<PathBuf> = paths::files_under(&root.join(dir), extensions, depth)
            .into_iter()
            .map(|file| file.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert!(!found.is_empty(), "{dir} holds no file to check");
        files.extend(found);
    }
    files
}

/// The fuzz target's seeds as fuzz/seeds.rs writes them: the review each
/// step of each policy suite sends.
fn suite_reviews() -> Vec<(String, Vec<u8>)> {
    let mut reviews = Vec::new();
    for file in files_in(&["tests/policies", "tests/fixtures"], &["yaml", "yml"], Depth::Tree) {
        if !suite::holds_suites(&std::fs::read_to_string(&file).unwrap()) {
            continue;
        }
        // Some fixtures are broken on purpose (they test the harness's errors).
        let Ok(suites) = suite::read_file(&file) else { continue };
        for step in suites.iter().flat_map(|s| &s.cases).flat_map(|c| &c.steps) {
            // Malformed steps exist on purpose (failing-suite fixtures); they send nothing.
            if let Ok(review) = harness::synthetic(step).to_review() {
                reviews.push((file.display().to_string(), serde_json::to_vec_pretty(&review).unwrap()));
            }
        }
    }
    reviews
}

#[test]
fn every_review_fixture_and_fuzz_seed_parses_and_decides_alike() {
    let files = files_in(&["tests/fixtures", "tests/hostile"], &["json"], Depth::Flat)
        .into_iter()
        .chain(files_in(&["fuzz/regressions/admission_review"], &[], Depth::Flat));
    let mut bodies: Vec<(String, Vec<u8>)> =
        files.map(|file| (file.display().to_string(), std::fs::read(&file).unwrap())).collect();
    let from_suites = suite_reviews();
    assert!(from_suites.len() >= 100, "the suites' reviews went missing: {}", from_suites.len());
    bodies.extend(from_suites);
    for (origin, body) in &bodies {
        assert_equivalent_or_refused(body).unwrap_or_else(|e| panic!("{origin}: {e}"));
    }
}

/// The objects the benchmarks judge, and the manifests the tests ship.
fn known_objects() -> Vec<Value> {
    let rules: Vec<Value> = (0..12)
        .map(|i| json!({"host": format!("app-{i}.shop.example.com"), "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": format!("web-{i}"), "port": {"number": 80}}}}
        ]}}))
        .collect();
    let env: Vec<Value> =
        (0..300).map(|i| json!({"name": format!("SETTING_{i}"), "value": format!("value-{i}")})).collect();
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
               "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["app-0.shop.example.com"], "secretName": "tls"}], "rules": rules}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "all", "namespace": "shop"},
               "spec": {"rules": [{"host": "*"}]}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-7d9f", "namespace": "shop", "labels": {"app": "web"}},
               "spec": {"containers": [{"name": "web", "image": "registry.example.com/web:1.2.3", "env": env}]},
               "status": {"phase": "Running"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
               "data": {"password": "c2VjcmV0"}, "type": "Opaque"}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bundle", "namespace": "shop"},
               "data": {"bundle.js": "x".repeat(1 << 16)}}),
    ];
    for dir in ["tests/fixtures/manifests-ok", "tests/fixtures/manifests-bad", "tests/policies/manifests"] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for (_, document) in defender::yaml::documents(&text) {
                objects.push(document.expect("fixture manifests parse"));
            }
        }
    }
    objects
}

#[test]
fn fixtures_and_benchmark_reviews_parse_and_decide_alike() {
    let fixture = std::fs::read("tests/fixtures/review-delete-kube-system.json").unwrap();
    assert_equivalent(&fixture).unwrap();
    for object in known_objects() {
        for operation in [Operation::Create, Operation::Update, Operation::Delete] {
            for dry_run in [false, true] {
                assert_equivalent(&review_of(operation.clone(), object.clone(), dry_run))
                    .unwrap_or_else(|e| panic!("{operation:?} of {object}: {e}"));
            }
        }
    }
}

/// A JSON object written with its fields in the given order (a
/// `serde_json::Value` would sort them).
fn object_text(fields: &[(String, String)]) -> String {
    let fields: Vec<String> =
        fields.iter().map(|(name, value)| format!("{}:{value}", Value::from(name.as_str()))).collect();
    format!("{{{}}}", fields.join(","))
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z.]{1,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn string_map() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z./-]{1,12}", "\\PC{0,12}", 0..3).prop_map(|map| json!(map))
}

fn metadata() -> impl Strategy<Value = String> {
    (
        "[a-z]{1,8}",
        proptest::option::of(string_map()),
        proptest::option::of(string_map()),
        any::<bool>(),
        any::<bool>(),
        json_value(),
    )
        .prop_map(|(name, labels, annotations, last_applied, managed, extra)| {
            let mut annotations = annotations.unwrap_or_else(|| json!({}));
            if last_applied {
                annotations[LAST_APPLIED] = json!("{\"data\":{\"password\":\"c2VjcmV0\"}}");
            }
            let mut meta = json!({"name": name, "namespace": "shop", "annotations": annotations,
                                  "uid": "5a1c", "creationTimestamp": "2026-01-01T00:00:00Z",
                                  "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "9"}],
                                  "futureField": extra});
            if let Some(labels) = labels {
                meta["labels"] = labels;
            }
            if managed {
                meta["managedFields"] = json!([{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                    "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {".": {}}}}]);
            }
            meta.to_string()
        })
}

/// An object of a kind policies read or skip parts of, its fields (type
/// fields included or not) in any order.
fn object() -> impl Strategy<Value = String> {
    let types = prop_oneof![
        Just(("v1", "Secret")),
        Just(("v1", "ConfigMap")),
        Just(("v1", "Pod")),
        Just(("v1", "Namespace")),
        Just(("networking.k8s.io/v1", "Ingress")),
        Just(("example.com/v1", "Secret")),
    ];
    let field_names = prop::sample::subsequence(
        vec!["apiVersion", "kind", "metadata", "spec", "status", "data", "stringData", "binaryData", "type"],
        0..=9,
    );
    (types, field_names, metadata(), json_value()).prop_flat_map(
        |((api_version, kind), names, metadata, value)| {
            let fields: Vec<(String, String)> = names
                .into_iter()
                .map(|name| {
                    let text = match name {
                        "apiVersion" => Value::from(api_version).to_string(),
                        "kind" => Value::from(kind).to_string(),
                        "metadata" => metadata.clone(),
                        _ => value.to_string(),
                    };
                    (name.to_owned(), text)
                })
                .collect();
            Just(fields).prop_shuffle().prop_map(|fields| object_text(&fields))
        },
    )
}

fn review_text(operation: &str, object: &str, old_object: &str, extra: &str) -> String {
    format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{
        "uid":"u","kind":{{"group":"","version":"v1","kind":"Secret"}},
        "resource":{{"group":"","version":"v1","resource":"secrets"}},
        "name":"db","namespace":"shop","operation":"{operation}",
        "userInfo":{{"username":"alice","groups":["devs"],"extra":{{"scopes":["a"]}}}},
        "object":{object},"oldObject":{old_object}{extra}}}}}"#
    )
}

proptest! {
    /// Whatever an object holds, and in whatever order its fields come, the
    /// lean parse keeps what kube's keeps except the unread parts, and the
    /// engine decides the same.
    #[test]
    fn any_object_parses_to_kube_minus_the_unread_parts(
        object in object(),
        old_object in object(),
        operation in prop::sample::select(vec!["CREATE", "UPDATE", "DELETE", "CONNECT"]),
        extra in prop::sample::select(vec![
            "",
            r#","dryRun":true"#,
            r#","subResource":"status","options":{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1"}"#,
            r#","options":null,"requestSubResource":"","futureField":[1,{"a":null}]"#,
        ]),
    ) {
        let (object, old_object) = match operation {
            "CREATE" => (object.as_str(), "null"),
            "DELETE" => ("null", old_object.as_str()),
            _ => (object.as_str(), old_object.as_str()),
        };
        assert_equivalent(review_text(operation, object, old_object, extra).as_bytes())?;
    }
}
