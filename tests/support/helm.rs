//! The pinned helm (`.ci/helm.sh` builds it once into the tools cache, or
//! `HELM` names one) and rendering charts/defender with it.

// Each test crate that includes this uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_yaml_ng::Value;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart() -> PathBuf {
    repo().join("charts/defender")
}

/// The helm binary: `HELM`, or the one `.ci/helm.sh` installs.
pub fn helm() -> Result<PathBuf, String> {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(path) = std::env::var_os("HELM") {
            return Ok(PathBuf::from(path));
        }
        let output = Command::new("bash")
            .arg(repo().join(".ci/helm.sh"))
            .output()
            .map_err(|e| format!("bash .ci/helm.sh: {e}"))?;
        if !output.status.success() {
            return Err(format!("bash .ci/helm.sh failed: {}", String::from_utf8_lossy(&output.stderr)));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout.lines().last().unwrap_or_default().trim();
        if last.is_empty() {
            return Err("bash .ci/helm.sh printed no path".to_owned());
        }
        Ok(PathBuf::from(last))
    })
    .clone()
}

/// Runs helm with `args`; its stdout, or stderr as the error.
pub fn run(args: &[&str]) -> Result<String, String> {
    let helm = helm()?;
    let output = Command::new(&helm).args(args).output().map_err(|e| format!("{}: {e}", helm.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("helm {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr)))
    }
}

/// `helm template defender charts/defender -n defender-system ARGS`.
pub fn template(args: &[&str]) -> Result<String, String> {
    let chart = chart();
    let mut all =
        vec!["template", "defender", chart.to_str().expect("a UTF-8 path"), "-n", "defender-system"];
    all.extend_from_slice(args);
    run(&all)
}

/// The objects in a multi-document YAML stream, empty documents skipped.
pub fn objects(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("helm renders YAML"))
        .filter(|object| !object.is_null())
        .collect()
}

/// The one object of `kind` named `name`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}
