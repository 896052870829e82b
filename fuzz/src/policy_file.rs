//! Any file -> policy loading (`config::from_files`), as `--policies` reads it.
//!
//! Whatever the text: no panic; loading is deterministic; an error names the
//! file; a set that loads has unique names and judges ordinary requests
//! (each kind a policy can act on) without panicking.

use std::collections::HashSet;
use std::sync::LazyLock;

use defender::clock::{Clock, SystemClock};
use defender::config::{self, ConfigError, PolicySet};
use defender::engine::Engine;
use defender::request::{Operation, Request};
use defender::synthetic::Synthetic;
use defender::view::MemoryView;
use serde_json::{Value, json};

const FILE: &str = "fuzz/policies.yaml";

pub fn check(data: &[u8]) {
    // Policy files are read as UTF-8 text; anything else is refused before parsing.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let files = [(FILE.to_owned(), text.to_owned())];
    let loaded = config::from_files(&files, FILE);
    let again = config::from_files(&files, FILE);
    assert_eq!(outcome(&loaded), outcome(&again), "loading the same text twice differs");
    match loaded {
        Ok(set) => {
            let mut names = HashSet::new();
            for policy in &set.policies {
                assert!(names.insert(policy.name().to_owned()), "two policies named {:?}", policy.name());
            }
            let engine = Engine::new(set);
            let view = MemoryView::default();
            let context = engine.context(SystemClock.now(), &view);
            for request in REQUESTS.iter() {
                let decision = engine.decide(request, &context);
                if !decision.allowed() {
                    assert!(decision.denial_message().is_some_and(|m| !m.is_empty()));
                }
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with(FILE), "the error does not name the file: {message}");
        }
    }
}

/// What a load produced, comparable: the policy names, or the error message.
fn outcome(loaded: &Result<PolicySet, ConfigError>) -> Result<Vec<String>, String> {
    match loaded {
        Ok(set) => Ok(set.policies.iter().map(|p| p.name().to_owned()).collect()),
        Err(error) => Err(error.to_string()),
    }
}

/// One request per kind of change a policy can judge.
static REQUESTS: LazyLock<Vec<Request>> = LazyLock::new(|| {
    let object = |api_version: &str, kind: &str, name: &str, spec: Value| {
        json!({"apiVersion": api_version, "kind": kind,
               "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}}, "spec": spec})
    };
    let ingress = object("networking.k8s.io/v1", "Ingress", "web", json!({"rules": [{"host": "*"}]}));
    let deletes = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        object("v1", "Pod", "web-1", json!({})),
        object("v1", "Secret", "db", json!({})),
        object("v1", "Service", "web", json!({})),
        object("v1", "ConfigMap", "settings", json!({})),
        ingress.clone(),
    ];
    let mut requests: Vec<Synthetic> = deletes
        .into_iter()
        .map(|object| Synthetic { old_object: Some(object), ..Synthetic::new(Operation::Delete) })
        .collect();
    requests.push(Synthetic { object: Some(ingress), ..Synthetic::new(Operation::Create) });
    requests.iter().map(|s| s.build().expect("a buildable request")).collect()
});
