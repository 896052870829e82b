//! `defender certs`: a development CA and serving certificate, written to files.

use std::path::PathBuf;

use crate::certs::{DEFAULT_NAMESPACE, DEFAULT_SERVICE, DevCerts};

/// Write a development CA and serving certificate for the webhook Service.
#[derive(Debug, Clone, clap::Args)]
pub struct CertsArgs {
    /// Directory to write ca.crt, tls.crt, tls.key and ca-bundle.b64 into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Name of the Service in front of Defender.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SERVICE)]
    pub service: String,

    /// Namespace of that Service.
    #[arg(long, value_name = "NS", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,

    /// How long the certificates are valid.
    #[arg(long, value_name = "DAYS", default_value_t = 365)]
    pub days: u32,
}

impl CertsArgs {
    /// Writes the files and prints the caBundle to stdout, so it can be piped
    /// into the webhook configuration; what was written goes to stderr.
    pub fn run(self) -> anyhow::Result<std::process::ExitCode> {
        let certs = DevCerts::generate(&self.service, &self.namespace, self.days)?;
        let files = certs.write(&self.out)?;
        eprintln!(
            "wrote {}, {}, {} and {} for {}.{}.svc (valid {} days)",
            files.ca_cert.display(),
            files.cert.display(),
            files.key.display(),
            files.ca_bundle.display(),
            self.service,
            self.namespace,
            self.days
        );
        println!("{}", certs.ca_bundle());
        Ok(std::process::ExitCode::SUCCESS)
    }
}
