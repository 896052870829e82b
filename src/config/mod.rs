//! Loads and validates policy documents.
//!
//! Policies are Kubernetes-style YAML documents (`apiVersion: defender.io/v1alpha1`,
//! `kind`, `metadata.name`, `spec`), several per file, read from a directory or
//! a single file, YAML merge keys (`<<: *anchor`) applied as in suites and
//! manifests; the default set is embedded in the binary. Every mistake is
//! reported with the file, the document and the field, and unknown fields are
//! errors: a typo must never silently turn a protection off.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use crate::decode;
use crate::paths::{self, Depth};
pub use crate::policy::PolicySet;
use crate::policy::{Policy, registry};
use crate::settings::Settings;
use crate::yaml;

pub const API_VERSION: &str = "defender.io/v1alpha1";

/// The files a policy directory is read from.
const POLICY_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// The document kind that holds the [`Settings`] rather than a policy.
const SETTINGS_KIND: &str = "Settings";

/// Every document kind a policy file may hold: the policy kinds, then `Settings`.
pub fn kinds() -> Vec<&'static str> {
    registry::KINDS.iter().map(|kind| kind.name).chain([SETTINGS_KIND]).collect()
}

/// The default policy set, compiled into the binary.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("policies/settings.yaml", include_str!("../../policies/settings.yaml")),
    ("policies/core-namespaces.yaml", include_str!("../../policies/core-namespaces.yaml")),
    ("policies/namespace-deletion.yaml", include_str!("../../policies/namespace-deletion.yaml")),
    ("policies/cascading-protection.yaml", include_str!("../../policies/cascading-protection.yaml")),
    ("policies/delete-protection.yaml", include_str!("../../policies/delete-protection.yaml")),
    ("policies/deletion-guard.yaml", include_str!("../../policies/deletion-guard.yaml")),
    ("policies/in-use-guard.yaml", include_str!("../../policies/in-use-guard.yaml")),
    ("policies/ingress-hosts.yaml", include_str!("../../policies/ingress-hosts.yaml")),
    ("policies/duplicate-hosts.yaml", include_str!("../../policies/duplicate-hosts.yaml")),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read policies from {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: document {document}{name}: {message}")]
    Invalid { file: String, document: usize, name: String, message: String },
    #[error(
        "{0}: no policy documents found (expected .yaml, .yml or .json files of apiVersion {API_VERSION})"
    )]
    Empty(String),
}

/// Loads the policies at `path` (a directory or one file), or the embedded set.
pub fn load(path: Option<&Path>) -> Result<PolicySet, ConfigError> {
    match path {
        Some(path) => load_path(path),
        None => load_embedded(),
    }
}

pub fn load_embedded() -> Result<PolicySet, ConfigError> {
    from_files(&embedded_files(), EMBEDDED_ORIGIN)
}

pub fn load_path(path: &Path) -> Result<PolicySet, ConfigError> {
    from_files(&read_path(path)?, &path.display().to_string())
}

/// How error messages name the embedded set.
pub const EMBEDDED_ORIGIN: &str = "the embedded policies";

/// The embedded policy files as `(file name, text)` pairs.
pub fn embedded_files() -> Vec<(String, String)> {
    EMBEDDED.iter().map(|(name, text)| ((*name).to_owned(), (*text).to_owned())).collect()
}

/// Reads the policy files at `path` (a directory's .yaml, .yml and .json
/// files in name order, or one file) as `(file name, text)` pairs: what
/// [`from_files`] builds a set from (fresh budgets each time), and what a
/// reloader compares to notice a change.
pub fn read_path(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let mut texts = Vec::new();
    for file in paths::files_under(path, POLICY_EXTENSIONS, Depth::Flat) {
        let file = file.map_err(|error| ConfigError::Read { path: error.dir, source: error.source })?;
        let text = std::fs::read_to_string(&file)
            .map_err(|source| ConfigError::Read { path: file.clone(), source })?;
        texts.push((file.display().to_string(), text));
    }
    Ok(texts)
}

/// Builds a policy set from `(file name, text)` pairs.
pub fn from_files(files: &[(String, String)], origin: &str) -> Result<PolicySet, ConfigError> {
    let mut settings: Option<Settings> = None;
    let mut policies: Vec<Policy> = Vec::new();
    let mut names = HashSet::new();
    for (file, text) in files {
        for (index, document) in yaml::yaml_documents(text) {
            let invalid = |name: &str, message: String| ConfigError::Invalid {
                file: file.clone(),
                document: index,
                name: if name.is_empty() { String::new() } else { format!(" ({name})") },
                message,
            };
            let value = document.map_err(|message| invalid("", message))?;
            let parsed = Document::parse(value).map_err(|message| invalid("", message))?;
            let name = parsed.name.clone();
            if !names.insert(name.clone()) {
                return Err(invalid(&name, format!("metadata.name: {name:?} is used by two documents")));
            }
            match parsed.build().map_err(|message| invalid(&name, message))? {
                Built::Settings(_) if settings.is_some() => {
                    return Err(invalid(&name, "only one Settings document is allowed".to_owned()));
                }
                Built::Settings(found) => settings = Some(found),
                Built::Policy(policy) => policies.push(policy),
            }
        }
    }
    if policies.is_empty() && settings.is_none() {
        return Err(ConfigError::Empty(origin.to_owned()));
    }
    Ok(PolicySet { settings: settings.unwrap_or_default(), policies })
}

/// One document, checked for its envelope but not yet for its spec.
struct Document {
    kind: String,
    name: String,
    spec: Value,
}

enum Built {
    Settings(Settings),
    Policy(Policy),
}

impl Document {
    fn parse(value: Value) -> Result<Self, String> {
        let Value::Mapping(mut map) = value else {
            return Err("expected a mapping with apiVersion, kind, metadata and spec".to_owned());
        };
        for key in map.keys() {
            let known = matches!(key.as_str(), Some("apiVersion" | "kind" | "metadata" | "spec"));
            if !known {
                return Err(format!(
                    "unknown field {}: expected apiVersion, kind, metadata or spec",
                    show(key)
                ));
            }
        }
        match map.get("apiVersion").and_then(Value::as_str) {
            Some(API_VERSION) => {}
            Some(other) => return Err(format!("apiVersion: expected {API_VERSION}, got {other:?}")),
            None => return Err(format!("apiVersion: missing (expected {API_VERSION})")),
        }
        let kind = map.get("kind").and_then(Value::as_str).ok_or("kind: missing")?.to_owned();
        let name = map
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or("metadata.name: missing")?
            .to_owned();
        let spec = map.remove("spec").unwrap_or(Value::Null);
        let spec = if spec.is_null() { Value::Mapping(Default::default()) } else { spec };
        Ok(Self { kind, name, spec })
    }

    fn build(self) -> Result<Built, String> {
        if self.kind == SETTINGS_KIND {
            let settings: Settings = spec(self.spec)?;
            settings.validate().map_err(|e| format!("spec.{e}"))?;
            return Ok(Built::Settings(settings));
        }
        match registry::find(&self.kind) {
            Some(kind) => Ok(Built::Policy(kind.build(self.name, self.spec)?)),
            None => Err(format!(
                "kind: {:?} is not a Defender policy kind (expected one of {})",
                self.kind,
                kinds().join(", ")
            )),
        }
    }
}

/// Deserializes a spec, naming the offending field on error.
fn spec<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    decode::deserialize(value, "spec")
}

fn show(key: &Value) -> String {
    match key.as_str() {
        Some(text) => format!("{text:?}"),
        None => format!("{key:?}"),
    }
}

#[cfg(test)]
mod tests;
