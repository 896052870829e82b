use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::PolicyArgs;
use crate::admission;
use crate::clock::{Clock, SystemClock};
use crate::engine::Engine;
use crate::manifests;
use crate::view::MemoryView;

#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    #[command(flatten)]
    policies: PolicyArgs,
    /// The AdmissionReview JSON file; - reads stdin.
    #[arg(default_value = "-", value_name = "FILE")]
    file: PathBuf,
    /// Manifests of what the cluster holds (namespaces with their labels or
    /// deletionTimestamp, pods, workloads, Ingresses...), as the webhook's
    /// cluster view would know them. Files or directories; repeatable.
    #[arg(long = "cluster", value_name = "FILE_OR_DIR")]
    cluster: Vec<PathBuf>,
}

impl ReviewArgs {
    /// Prints the response whatever the verdict; fails only on unusable input.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let engine = Engine::new(self.policies.load()?);
        let body = read_input(&self.file)?;
        let request = admission::parse_review(&body).with_context(|| input_name(&self.file))?;
        let view = cluster_view(&self.cluster)?;
        let decision = engine.decide(&request, &engine.context(SystemClock.now(), &view));
        let response = admission::respond(&request, &decision);
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &response)?;
        writeln!(out)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// The cluster view the review is judged against, from manifests on disk.
fn cluster_view(paths: &[PathBuf]) -> anyhow::Result<MemoryView> {
    let mut view = MemoryView::default();
    for path in paths {
        for manifest in manifests::read(path) {
            let manifest = manifest.map_err(|unusable| anyhow::Error::msg(unusable.message))?;
            let held = view.add_manifest(&manifest.object).map_err(anyhow::Error::msg);
            if !held.with_context(|| manifest.origin.clone())? {
                anyhow::bail!("{}: {}", manifest.origin, crate::view::NOT_HELD);
            }
        }
    }
    Ok(view)
}

fn input_name(file: &Path) -> String {
    if file.as_os_str() == "-" { "stdin".to_owned() } else { file.display().to_string() }
}

fn read_input(file: &Path) -> anyhow::Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::stdin().read_to_end(&mut body).context("failed to read stdin")?;
        Ok(body)
    } else {
        std::fs::read(file).with_context(|| format!("failed to read {}", file.display()))
    }
}
