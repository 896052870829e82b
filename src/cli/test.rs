use std::path::PathBuf;
use std::process::ExitCode;

use crate::harness;

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Suite files, or directories searched for them.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Also show what Defender answered for passing cases.
    #[arg(short, long)]
    verbose: bool,
}

impl TestArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let summary = harness::run(&self.paths, self.verbose, &mut std::io::stdout().lock())?;
        Ok(if summary.succeeded() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}
