//! The `defender` command line: a thin layer of argument parsing over the
//! library. Exit codes: 0 success, 1 a denial or a failed test, 2 unusable
//! input (bad flags, unreadable files, malformed documents) or a refused
//! change (`confirm-delete`).
//!
//! Installed (or symlinked) as `kubectl-defender`, the binary is a kubectl
//! plugin: `kubectl defender confirm-delete NAMESPACE`.

mod audit;
mod certs;
mod check;
mod completions;
mod confirm_delete;
mod junit;
mod output;
mod review;
mod test;
mod webhook_config;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::config::{self, PolicySet};

#[derive(Debug, Parser)]
#[command(
    name = "defender",
    version,
    about = "A Kubernetes admission webhook that stops dangerous changes",
    after_help = "Exit codes: 0 success; 1 a denied manifest (check) or a failed test case (test); \
                  2 unusable input or a refused change.\n\
                  Installed or symlinked on PATH as kubectl-defender, Defender is a kubectl plugin: \
                  kubectl defender confirm-delete NAMESPACE."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the admission webhook over HTTPS.
    Serve(crate::server::ServeArgs),
    /// Write a development CA and serving certificate for the webhook.
    Certs(certs::CertsArgs),
    /// Run policy test suites (YAML, kind TestSuite) without a cluster.
    Test(test::TestArgs),
    /// Judge one AdmissionReview (a file, or - for stdin) and print the response.
    Review(review::ReviewArgs),
    /// Judge manifests as the API server would see them, before `kubectl apply`.
    Check(check::CheckArgs),
    /// Print the ValidatingWebhookConfiguration that sends Defender what the policies judge.
    WebhookConfig(webhook_config::WebhookConfigArgs),
    Audit(audit::AuditArgs),
    /// Confirm a namespace for deletion: set the annotation the namespace-deletion policy asks for.
    ConfirmDelete(confirm_delete::ConfirmDeleteArgs),
    /// Print shell completions (e.g. `defender completions bash > /etc/bash_completion.d/defender`).
    Completions(completions::CompletionsArgs),
    /// Print the manual page, or write a page per subcommand with --out.
    Man(completions::ManArgs),
}

/// `--policies`, shared by the commands that judge requests.
#[derive(Debug, clap::Args)]
struct PolicyArgs {
    /// A policy directory or file; the embedded default policies when absent.
    #[arg(long, value_name = "PATH")]
    policies: Option<PathBuf>,
}

impl PolicyArgs {
    fn load(&self) -> Result<PolicySet, config::ConfigError> {
        config::load(self.policies.as_deref())
    }
}

/// Exit code for unusable input.
const USAGE: u8 = 2;

/// The name kubectl runs a plugin by: `kubectl defender ...` runs `kubectl-defender ...`.
const KUBECTL_PLUGIN: &str = "kubectl-defender";

/// Parses the command line; run as a kubectl plugin, help and errors say
/// `kubectl defender`, as the user typed it.
fn parse() -> Cli {
    let invoked_as = std::env::args_os().next().map(PathBuf::from);
    let plugin = invoked_as.as_deref().and_then(|path| path.file_stem()).is_some_and(|n| n == KUBECTL_PLUGIN);
    let command = Cli::command();
    let command = if plugin { command.bin_name("kubectl defender") } else { command };
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

pub fn main() -> ExitCode {
    let cli = parse();
    let result = match cli.command {
        Command::Serve(args) => args.run(),
        Command::Certs(args) => args.run(),
        Command::Test(args) => args.run(),
        Command::Review(args) => args.run(),
        Command::Check(args) => args.run(),
        Command::WebhookConfig(args) => args.run(),
        Command::Audit(args) => args.run(),
        Command::ConfirmDelete(args) => args.run(),
        Command::Completions(args) => args.run(),
        Command::Man(args) => args.run(),
    };
    result.unwrap_or_else(|error| {
        // A reader that went away (`defender test ... | head`) is not an error.
        let broken_pipe = error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe);
        if !broken_pipe {
            eprintln!("defender: {error:#}");
        }
        ExitCode::from(USAGE)
    })
}
