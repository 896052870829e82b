//! `defender completions SHELL` and `defender man`: shell completions and
//! manual pages, generated from the same definitions as `--help`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory as _;

use super::Cli;
use crate::paths::{self, Depth};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

impl CompletionsArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let mut command = Cli::command();
        let out = &mut std::io::stdout().lock();
        clap_complete::generate(self.shell, &mut command, "defender", out);
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write defender.1 and a page per subcommand (defender-test.1, ...) into
    /// this directory instead of printing defender.1.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

impl ManArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let command = Cli::command();
        match &self.out {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("failed to create {}", dir.display()))?;
                clap_mangen::generate_to(command, dir)
                    .with_context(|| format!("failed to write manual pages to {}", dir.display()))?;
                for page in pages(dir)? {
                    println!("{}", page.display());
                }
            }
            None => {
                let out = &mut std::io::stdout().lock();
                clap_mangen::Man::new(command).render(out)?;
                out.flush()?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The pages written into `dir`, in name order.
fn pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    paths::files_under(dir, &["1"], Depth::Flat)
        .into_iter()
        .collect::<Result<_, _>>()
        .with_context(|| format!("failed to read {}", dir.display()))
}
