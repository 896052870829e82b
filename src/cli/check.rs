//! `defender check`: judges manifests on disk as CREATE (or DELETE) requests,
//! so a CI pipeline learns before `kubectl apply` what Defender would refuse.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use anyhow::Context as _;

use super::{PolicyArgs, USAGE};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, PolicySet};
use crate::engine::Engine;
use crate::paths;
use crate::routing::{self, Options};
use crate::synthetic::{Synthetic, SyntheticOperation, User};
use crate::view::MemoryView;
use crate::yaml;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Operation {
    Create,
    Delete,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    policies: PolicyArgs,
    /// Manifest files or directories (.yaml, .yml, .json; `kind: List` is unpacked).
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE_OR_DIR")]
    files: Vec<PathBuf>,
    /// Judge the manifests as creations or as deletions.
    #[arg(long, value_enum, default_value = "create", ignore_case = true)]
    operation: Operation,
    /// Namespace for objects that name none, as kubectl would default it.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The user the requests come from.
    #[arg(long, default_value = "developer@example.com")]
    user: String,
    /// The user's groups (repeatable).
    #[arg(long = "group", default_value = "system:authenticated")]
    groups: Vec<String>,
    /// The ValidatingWebhookConfiguration the cluster runs (YAML; kustomize
    /// output works): warns on stderr about what the policies judge but it
    /// never sends Defender [default: the one deploy/ ships, for the
    /// embedded policies].
    #[arg(long, value_name = "FILE")]
    webhook_config: Option<PathBuf>,
}

/// One manifest and where it came from.
pub(super) struct Manifest {
    pub origin: String,
    pub object: Value,
}

impl CheckArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let out = &mut std::io::stdout().lock();
        let set = self.policies.load()?;
        self.warn_unrouted(&set)?;
        let engine = Engine::new(set);
        let mut manifests = Vec::new();
        let mut unusable = 0;
        for path in &self.files {
            for manifest in read_manifests(path) {
                match manifest {
                    Ok(manifest) => manifests.push(manifest),
                    Err(error) => {
                        unusable += 1;
                        writeln!(out, "error  {error}")?;
                    }
                }
            }
        }
        // Namespaces in the input stand for the cluster's: their labels count
        // for the objects inside them, as they would once applied.
        let namespaces = namespace_view(&manifests);
        let now = SystemClock.now();
        let (mut allowed, mut denied) = (0, 0);
        for manifest in &manifests {
            let request = match self.request_for(&manifest.object) {
                Ok(request) => request,
                Err(error) => {
                    unusable += 1;
                    writeln!(out, "error  {}: {error}", manifest.origin)?;
                    continue;
                }
            };
            let decision = engine.review(&request, &engine.context(now, &namespaces));
            let verdict = decision.verdict();
            writeln!(out, "{verdict:<5}  {} ({})", request.describe(), manifest.origin)?;
            let details = decision.denial_message().map(|m| vec![m]).unwrap_or_else(|| decision.warnings());
            for line in details.iter().flat_map(|d| d.lines()) {
                writeln!(out, "       {line}")?;
            }
            if decision.allowed() { allowed += 1 } else { denied += 1 }
        }
        writeln!(
            out,
            "{} objects: {allowed} allowed, {denied} denied, {unusable} unusable",
            manifests.len()
        )?;
        Ok(match (unusable, denied) {
            (0, 0) => ExitCode::SUCCESS,
            (0, _) => ExitCode::FAILURE,
            _ => ExitCode::from(USAGE),
        })
    }

    /// Warns about what the policies need that the webhook configuration does
    /// not route: the API server would never send it, so it would pass.
    fn warn_unrouted(&self, set: &PolicySet) -> anyhow::Result<()> {
        let (configuration, which) = match &self.webhook_config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--webhook-config {}", path.display()))?;
                let configuration = routing::parse(&text)
                    .map_err(|error| anyhow::anyhow!("--webhook-config {}: {error}", path.display()))?;
                (configuration, path.display().to_string())
            }
            None => {
                let embedded = config::load_embedded()?;
                let deployed =
                    routing::configuration(&embedded.policies, &embedded.settings, &Options::default());
                (deployed, "the default webhook configuration (deploy/base)".to_owned())
            }
        };
        let unrouted = routing::unrouted(&set.policies, &configuration);
        if unrouted.is_empty() {
            return Ok(());
        }
        let err = &mut std::io::stderr().lock();
        for line in &unrouted {
            writeln!(err, "warning: {line}")?;
        }
        let policies = self
            .policies
            .policies
            .as_ref()
            .map(|p| format!(" --policies {}", p.display()))
            .unwrap_or_default();
        writeln!(
            err,
            "warning: {which} does not send Defender these requests, so they are never judged: \
             regenerate it with `defender webhook-config{policies}`"
        )?;
        Ok(())
    }

    fn request_for(&self, object: &Value) -> Result<crate::request::Request, String> {
        let mut object = object.clone();
        let cluster_scoped = object.get("kind").and_then(Value::as_str) == Some("Namespace");
        if !cluster_scoped && object.pointer("/metadata/namespace").is_none() {
            if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.insert("namespace".to_owned(), Value::String(self.namespace.clone()));
            }
        }
        let mut synthetic = match self.operation {
            Operation::Create => {
                let mut synthetic = Synthetic::new(SyntheticOperation::Create);
                synthetic.object = Some(object);
                synthetic
            }
            Operation::Delete => {
                let mut synthetic = Synthetic::new(SyntheticOperation::Delete);
                synthetic.old_object = Some(object);
                synthetic
            }
        };
        synthetic.user = User { username: self.user.clone(), groups: self.groups.clone() };
        synthetic.build().map_err(|e| e.to_string())
    }
}

fn namespace_view(manifests: &[Manifest]) -> MemoryView {
    let mut view = MemoryView::default();
    let namespaces =
        manifests.iter().filter(|m| m.object.get("kind").and_then(Value::as_str) == Some("Namespace"));
    for manifest in namespaces {
        // One that cannot be read is reported when it is judged itself.
        let _ = view.add_manifest(&manifest.object);
    }
    view
}

/// Every document under `path`, with `kind: List` unpacked.
pub(super) fn read_manifests(path: &Path) -> Vec<Result<Manifest, String>> {
    paths::files_under(path, &["yaml", "yml", "json"])
        .into_iter()
        .flat_map(|file| match file {
            Ok(file) => read_manifest_file(&file),
            Err(error) => vec![Err(error)],
        })
        .collect()
}

fn read_manifest_file(path: &Path) -> Vec<Result<Manifest, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => return vec![Err(format!("{}: {error}", path.display()))],
    };
    let mut manifests = Vec::new();
    for (index, document) in yaml::documents(&text) {
        let origin = format!("{} document {index}", path.display());
        let objects = match document {
            Ok(value) => yaml::objects(value),
            Err(error) => vec![(String::new(), Err(error))],
        };
        for (at, object) in objects {
            let origin = format!("{origin}{at}");
            manifests.push(match object {
                Ok(object) => Ok(Manifest { origin, object }),
                Err(error) => Err(format!("{origin}: {error}")),
            });
        }
    }
    manifests
}
