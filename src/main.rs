//! The `defender` command.

use std::process::ExitCode;

use clap::Parser;
use defender::certs::CertsArgs;
use defender::server::ServeArgs;

#[derive(Parser)]
#[command(version, about)]
enum Command {
    Serve(ServeArgs),
    Certs(CertsArgs),
}

fn main() -> ExitCode {
    let outcome = match Command::parse() {
        Command::Serve(args) => args.run(),
        Command::Certs(args) => args.run(),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("defender: {error:#}");
        ExitCode::FAILURE
    })
}
