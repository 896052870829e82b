//! The test suite format behind `defender test`.
//!
//! ```yaml
//! apiVersion: defender.io/v1alpha1
//! kind: TestSuite
//! metadata: {name: core-namespaces}
//! spec:
//!   policies: embedded            # or a policy directory/file, relative to this file
//!   startTime: 2026-01-01T00:00:00Z
//!   namespaces:                   # what the suite assumes about namespaces
//!     prod: {labels: {team: payments}}
//!   objects:                      # what else the cluster holds: manifests, or files of them
//!     - objectFile: manifests/prod-workloads.yaml
//!     - {apiVersion: v1, kind: Pod, metadata: {name: api, namespace: prod}, spec: {...}}
//!   cases:
//!     - name: kube-system cannot be deleted
//!       operation: DELETE
//!       object: {apiVersion: v1, kind: Namespace, metadata: {name: kube-system}}
//!       expect: deny
//!       message: core namespace
//!     - name: the fourth namespace deletion in 10 minutes is denied
//!       steps:
//!         - {at: 0s, operation: DELETE, objectFile: ns/a.yaml, expect: allow}
//!         - {at: 30s, ...}
//! ```
//!
//! A case is either one request (the step fields inline) or `steps`, a sequence
//! sharing one policy set, so budgets and cooldowns carry from step to step.
//! A case may add `namespaces` and `objects` of its own to the suite's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, de};
use serde_json::Value;

use crate::config::API_VERSION;
use crate::decode;
use crate::engine::Outcome;
use crate::manifests::{self, Manifest};
use crate::period::Period;
use crate::request::{Operation, User};
use crate::view::{MemoryView, NamespaceInfo};
use crate::yaml;

pub const KIND: &str = "TestSuite";

/// The time a suite starts at unless it says otherwise, so suites are reproducible.
pub const DEFAULT_START: &str = "2026-01-01T00:00:00Z";

#[derive(Debug)]
pub struct Suite {
    pub file: PathBuf,
    pub name: String,
    pub policies: PolicySource,
    pub start: Timestamp,
    /// The cluster the suite assumes: its namespaces and objects.
    pub cluster: MemoryView,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    Embedded,
    /// Resolved against the suite file's directory.
    Path(PathBuf),
}

#[derive(Debug)]
pub struct Case {
    pub name: String,
    /// The suite's cluster with the case's own namespaces and objects added, if it has any.
    pub cluster: Option<MemoryView>,
    pub steps: Vec<Step>,
    /// Set when the case itself is malformed; it then fails with this reason.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Step {
    /// Offset from the suite's start time; steps may not go back in time.
    #[serde(default)]
    pub at: Option<Period>,
    #[serde(deserialize_with = "sent_operation")]
    pub operation: Operation,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub object_file: Option<PathBuf>,
    #[serde(default)]
    pub old_object_file: Option<PathBuf>,
    #[serde(default)]
    pub user_info: Option<User>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// DELETE as part of a deletecollection (`kubectl delete --all` does not do this).
    #[serde(default)]
    pub collection: bool,
    /// For a collection-level DELETE that carries no object: what it deletes.
    #[serde(default)]
    pub resource: Option<Resource>,
    pub expect: Outcome,
    /// A substring the denial message (or, for `warn`, a warning) must contain.
    #[serde(default)]
    pub message: Option<String>,
    /// A policy that must be among those that fired.
    #[serde(default)]
    pub policy: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resource {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Document {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    policies: Option<String>,
    #[serde(default)]
    start_time: Option<Timestamp>,
    #[serde(default)]
    namespaces: BTreeMap<String, NamespaceInfo>,
    #[serde(default)]
    objects: Vec<Value>,
    cases: Vec<Value>,
}

/// Reads every TestSuite document in `file`. Errors name the file and document.
pub fn read_file(file: &Path) -> Result<Vec<Suite>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    parse(file, &text)
}

/// Whether `text` holds at least one TestSuite document; a directory run skips
/// other YAML (the manifests that cases refer to).
pub fn holds_suites(text: &str) -> bool {
    yaml::documents(text).iter().any(|(_, document)| {
        document.as_ref().is_ok_and(|v| v.get("kind").and_then(Value::as_str) == Some(KIND))
    })
}

pub fn parse(file: &Path, text: &str) -> Result<Vec<Suite>, String> {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut suites = Vec::new();
    for (index, document) in yaml::documents(text) {
        let at = || format!("{}: document {index}", file.display());
        let value = document.map_err(|e| format!("{}: {e}", at()))?;
        let document: Document = decode::deserialize(value, "").map_err(|e| format!("{}: {e}", at()))?;
        if document.kind != KIND || document.api_version != API_VERSION {
            return Err(format!(
                "{}: expected apiVersion {API_VERSION} and kind {KIND}, got {} {}",
                at(),
                document.api_version,
                document.kind
            ));
        }
        let policies = match document.spec.policies.as_deref() {
            None | Some("embedded") => PolicySource::Embedded,
            Some(path) => PolicySource::Path(base.join(path)),
        };
        let start = match document.spec.start_time {
            Some(start) => start,
            None => DEFAULT_START.parse().expect("the default start time is valid"),
        };
        let mut cluster = MemoryView::default();
        add_objects(&mut cluster, document.spec.objects, base).map_err(|e| format!("{}: spec.{e}", at()))?;
        for (name, info) in document.spec.namespaces {
            cluster.set_namespace(&name, info);
        }
        let cases = document
            .spec
            .cases
            .into_iter()
            .enumerate()
            .map(|(i, c)| parse_case(i, c, base, &cluster))
            .collect();
        suites.push(Suite {
            file: file.to_owned(),
            name: document.metadata.name,
            policies,
            start,
            cluster,
            cases,
        });
    }
    if suites.is_empty() {
        return Err(format!("{}: no {KIND} documents", file.display()));
    }
    Ok(suites)
}

/// Parses one case. A malformed case becomes a failing case rather than
/// hiding the rest of the suite.
fn parse_case(index: usize, mut value: Value, base: &Path, cluster: &MemoryView) -> Case {
    let name = value.get("name").and_then(Value::as_str).map(str::to_owned);
    let name = name.unwrap_or_else(|| format!("case {}", index + 1));
    let mut case = Case { name, cluster: None, steps: Vec::new(), error: None };
    if let Err(error) = fill_case(&mut case, &mut value, base, cluster) {
        case.error = Some(error);
    }
    case
}

fn fill_case(case: &mut Case, value: &mut Value, base: &Path, cluster: &MemoryView) -> Result<(), String> {
    let fields = value.as_object_mut().ok_or("a case must be a mapping")?;
    fields.remove("name");
    let objects = fields.remove("objects");
    let namespaces = fields.remove("namespaces");
    if objects.is_some() || namespaces.is_some() {
        let mut view = cluster.clone();
        if let Some(objects) = objects {
            add_objects(&mut view, decode::deserialize(objects, "objects")?, base)?;
        }
        if let Some(namespaces) = namespaces {
            let namespaces: BTreeMap<String, NamespaceInfo> = decode::deserialize(namespaces, "namespaces")?;
            for (name, info) in namespaces {
                view.set_namespace(&name, info);
            }
        }
        case.cluster = Some(view);
    }
    let single = !fields.contains_key("steps");
    let steps = match fields.remove("steps") {
        Some(_) if !fields.is_empty() => {
            let extra = fields.keys().next().expect("fields is not empty");
            return Err(format!("a case with steps cannot also have {extra:?}; move it into a step"));
        }
        Some(Value::Array(steps)) => steps,
        Some(_) => return Err("steps must be a list".to_owned()),
        None => vec![Value::Object(std::mem::take(fields))],
    };
    if steps.is_empty() {
        return Err("steps is empty".to_owned());
    }
    for (index, step) in steps.into_iter().enumerate() {
        let in_step = |error: String| if single { error } else { format!("step {}: {error}", index + 1) };
        let mut step: Step = decode::deserialize(step, "").map_err(in_step)?;
        resolve_files(&mut step, base).map_err(in_step)?;
        check_shape(&step).map_err(in_step)?;
        case.steps.push(step);
    }
    Ok(())
}

/// Replaces `objectFile` / `oldObjectFile` with the manifests they name.
fn resolve_files(step: &mut Step, base: &Path) -> Result<(), String> {
    if let Some(file) = step.object_file.take() {
        if step.object.is_some() {
            return Err("give object or objectFile, not both".to_owned());
        }
        step.object = Some(manifests::read_single(&base.join(file))?);
    }
    if let Some(file) = step.old_object_file.take() {
        if step.old_object.is_some() {
            return Err("give oldObject or oldObjectFile, not both".to_owned());
        }
        step.old_object = Some(manifests::read_single(&base.join(file))?);
    }
    Ok(())
}

/// Adds `objects:` entries to `view`: manifests, or `{objectFile: path}`
/// naming a file of them (`kind: List` unpacked). A file may hold kinds the
/// view does not keep (Secrets, Services): they are skipped; an inline
/// object of such a kind is a mistake.
fn add_objects(view: &mut MemoryView, entries: Vec<Value>, base: &Path) -> Result<(), String> {
    for (index, entry) in entries.into_iter().enumerate() {
        let at = format!("objects[{index}]");
        let file =
            entry.as_object().filter(|fields| fields.len() == 1).and_then(|fields| fields.get("objectFile"));
        match file {
            Some(file) => {
                let file = file.as_str().ok_or_else(|| format!("{at}.objectFile: expected a path"))?;
                let objects: Vec<Manifest> = manifests::read_file(&base.join(file))
                    .into_iter()
                    .collect::<Result<_, _>>()
                    .map_err(|unusable| format!("{at}: {}", unusable.message))?;
                for manifest in objects {
                    view.add_manifest(&manifest.object)
                        .map_err(|e| format!("{at}: {}: {e}", manifest.origin))?;
                }
            }
            None => {
                if !view.add_manifest(&entry).map_err(|e| format!("{at}: {e}"))? {
                    return Err(format!("{at}: {}", crate::view::NOT_HELD));
                }
            }
        }
    }
    Ok(())
}

/// A step's operation: CREATE, UPDATE or DELETE (no webhook sends Defender a CONNECT).
fn sent_operation<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Operation, D::Error> {
    match String::deserialize(deserializer)?.as_str() {
        "CREATE" => Ok(Operation::Create),
        "UPDATE" => Ok(Operation::Update),
        "DELETE" => Ok(Operation::Delete),
        other => Err(de::Error::unknown_variant(other, &["CREATE", "UPDATE", "DELETE"])),
    }
}

/// The objects an operation needs, as the API server would send them.
fn check_shape(step: &Step) -> Result<(), String> {
    match step.operation {
        Operation::Create if step.object.is_none() => Err("CREATE needs object".to_owned()),
        Operation::Update if step.object.is_none() || step.old_object.is_none() => {
            Err("UPDATE needs object and oldObject".to_owned())
        }
        Operation::Delete if step.object.is_some() && step.old_object.is_some() => {
            Err("DELETE takes the deleted object as object or oldObject, not both".to_owned())
        }
        Operation::Delete if step.object.is_none() && step.old_object.is_none() => {
            match (&step.resource, step.collection) {
                (Some(_), true) => Ok(()),
                (Some(_), false) => {
                    Err("resource is only for collection deletes (collection: true)".to_owned())
                }
                (None, _) => Err("DELETE needs the deleted object (object or oldObject)".to_owned()),
            }
        }
        Operation::Create | Operation::Update if step.collection => {
            Err("collection is only for DELETE".to_owned())
        }
        _ => Ok(()),
    }
}
