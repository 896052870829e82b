use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::PolicyArgs;
use crate::admission;
use crate::clock::{Clock, SystemClock};
use crate::engine::Engine;
use crate::view::MemoryView;

#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    #[command(flatten)]
    policies: PolicyArgs,
    /// The AdmissionReview JSON file; - reads stdin.
    #[arg(default_value = "-", value_name = "FILE")]
    file: PathBuf,
}

impl ReviewArgs {
    /// Prints the response whatever the verdict; fails only on unusable input.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let engine = Engine::new(self.policies.load()?);
        let body = read_input(&self.file)?;
        let request = admission::parse_review(&body).with_context(|| input_name(&self.file))?;
        let view = MemoryView::default();
        let decision = engine.review(&request, &engine.context(SystemClock.now(), &view));
        let response = admission::respond(&request, &decision);
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &response)?;
        writeln!(out)?;
        Ok(ExitCode::SUCCESS)
    }
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
