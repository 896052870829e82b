//! The `defender` command line: a thin layer of argument parsing over the
//! library. Exit codes: 0 success, 1 a denial or a failed test, 2 unusable
//! input (bad flags, unreadable files, malformed documents).

mod audit;
mod check;
mod review;
mod test;
mod webhook_config;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, PolicySet};

#[derive(Debug, Parser)]
#[command(name = "defender", version, about = "A Kubernetes admission webhook that stops dangerous changes")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the admission webhook over HTTPS.
    Serve(crate::server::ServeArgs),
    /// Write a development CA and serving certificate for the webhook.
    Certs(crate::certs::CertsArgs),
    /// Run policy test suites (YAML, kind TestSuite) without a cluster.
    Test(test::TestArgs),
    /// Judge one AdmissionReview (a file, or - for stdin) and print the response.
    Review(review::ReviewArgs),
    /// Judge manifests as the API server would see them, before `kubectl apply`.
    Check(check::CheckArgs),
    /// Print the ValidatingWebhookConfiguration that sends Defender what the policies judge.
    WebhookConfig(webhook_config::WebhookConfigArgs),
    Audit(audit::AuditArgs),
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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => args.run(),
        Command::Certs(args) => args.run(),
        Command::Test(args) => args.run(),
        Command::Review(args) => args.run(),
        Command::Check(args) => args.run(),
        Command::WebhookConfig(args) => args.run(),
        Command::Audit(args) => args.run(),
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
