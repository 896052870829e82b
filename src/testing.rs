//! Builders shared by the unit tests: objects, requests and a fixed context.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::policy::{Context, Rule, Verdict, Violation};
use crate::request::{Operation, Request};
use crate::selector::Label;
use crate::synthetic::Synthetic;
use crate::view::{MemoryView, NamespaceInfo};

/// A fixed "now" and cluster view for tests.
pub struct Fixture {
    pub now: Timestamp,
    pub view: MemoryView,
    pub break_glass_groups: Vec<String>,
    pub namespace_exemptions: Vec<Label>,
}

impl Fixture {
    pub fn new() -> Self {
        Self {
            now: "2026-01-01T00:00:00Z".parse().expect("valid timestamp"),
            view: MemoryView::default(),
            break_glass_groups: vec!["defender:break-glass".to_owned()],
            namespace_exemptions: vec![Label {
                key: "defender.io/deletion-allowed".to_owned(),
                value: "true".to_owned(),
            }],
        }
    }

    pub fn with_namespace(mut self, name: &str, info: NamespaceInfo) -> Self {
        self.view.set_namespace(name, info);
        self
    }

    /// The cluster holds these objects (manifests, summarized as the live view would).
    pub fn with_objects(mut self, objects: &[Value]) -> Self {
        for object in objects {
            let held = self.view.add_manifest(object).expect("a manifest the view can summarize");
            assert!(held, "the view does not hold {}", object["kind"]);
        }
        self
    }

    pub fn context(&self) -> Context<'_> {
        Context {
            now: self.now,
            view: &self.view,
            break_glass_groups: &self.break_glass_groups,
            own_namespace: None,
            namespace_exemptions: &self.namespace_exemptions,
            policies: &[],
            counted: None,
            protected: None,
        }
    }

    pub fn create(&self, object: Value) -> Request {
        let mut synthetic = Synthetic::new(Operation::Create);
        synthetic.object = Some(object);
        synthetic.build().expect("buildable request")
    }

    pub fn update(&self, old: Value, new: Value) -> Request {
        let mut synthetic = Synthetic::new(Operation::Update);
        synthetic.old_object = Some(old);
        synthetic.object = Some(new);
        synthetic.build().expect("buildable request")
    }

    pub fn synthetic_delete(&self, object: Value) -> Synthetic {
        let mut synthetic = Synthetic::new(Operation::Delete);
        synthetic.old_object = Some(object);
        synthetic
    }

    pub fn delete(&self, object: Value) -> Request {
        self.synthetic_delete(object).build().expect("buildable request")
    }

    pub fn delete_collection_item(&self, object: Value) -> Request {
        let mut synthetic = Synthetic::new(Operation::Delete);
        synthetic.collection = true;
        synthetic.old_object = Some(object);
        synthetic.build().expect("buildable request")
    }

    pub fn legacy_collection_delete(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Request {
        let mut synthetic = Synthetic::new(Operation::Delete);
        synthetic.collection = true;
        let api_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
        synthetic.api_version_kind = Some((api_version, kind.to_owned()));
        synthetic.namespace = namespace.map(str::to_owned);
        synthetic.build().expect("buildable request")
    }

    /// Asserts the rule applies and finds a violation, and returns it.
    pub fn violation(&self, rule: &dyn Rule, request: &Request) -> Violation {
        assert!(rule.applies(request), "the rule should apply to {}", request.describe());
        match rule.evaluate(request, &self.context()) {
            Verdict::Violation(violation) => violation,
            other => panic!("expected a violation for {}, got {other:?}", request.describe()),
        }
    }
}

/// Asserts `text` (a violation's reason or remedy) contains `part`, showing `text` when not.
#[track_caller]
pub fn assert_contains(text: &str, part: &str) {
    assert!(text.contains(part), "{part:?} is not in: {text}");
}

fn pairs(entries: &[(&str, &str)]) -> Value {
    entries.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>().into()
}

pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub fn namespace_with_labels(name: &str, labels: &[(&str, &str)]) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": pairs(labels)}})
}

pub fn namespace_with_annotations(name: &str, annotations: &[(&str, &str)]) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "annotations": pairs(annotations)}})
}

pub fn object(api_version: &str, kind: &str, namespace: &str, name: &str, labels: &[(&str, &str)]) -> Value {
    json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": pairs(labels)}
    })
}

pub fn ingress(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "prod"},
        "spec": spec
    })
}
