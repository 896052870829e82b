//! Development certificates: a throwaway CA and a serving certificate it signs.
//!
//! The API server calls webhooks only over HTTPS and checks the serving
//! certificate against the `caBundle` of the webhook configuration. For a first
//! try or a development cluster Defender makes both itself; a production
//! cluster should issue the serving certificate with its own PKI.
//!
//! The CA's private key is never written: nothing else should be signed with it,
//! and a key that does not exist cannot leak.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;

pub const CA_CERT: &str = "ca.crt";
pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
/// `ca.crt` as one line of base64, ready for a webhook's `caBundle`.
pub const CA_BUNDLE: &str = "ca-bundle.b64";

/// Where the Deployment and Service live, unless told otherwise.
pub const DEFAULT_SERVICE: &str = "defender";
pub const DEFAULT_NAMESPACE: &str = "defender-system";

/// Backdate validity so a node whose clock is a little behind still accepts the certificate.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// Messages are complete on their own; no error is chained behind them.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("failed to generate certificates: {0}")]
    Generate(rcgen::Error),
    #[error("certificate validity of {0} days is out of range (1 to 3650)")]
    Validity(u32),
    #[error(
        "{what} {name:?} is not a valid DNS label (lowercase letters, digits and '-', \
         starting and ending with a letter or digit, at most 63 characters)"
    )]
    Name { what: &'static str, name: String },
    #[error("failed to write {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
}

/// A CA certificate and a serving certificate and key it signed, all PEM.
pub struct DevCerts {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// The paths [`DevCerts::write`] wrote.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca_bundle: PathBuf,
}

/// The names the API server may use to reach `service` in `namespace`, plus
/// the loopback names for running Defender locally.
pub fn subject_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

impl DevCerts {
    /// A new CA and a serving certificate for `service.namespace`, valid for `days`.
    pub fn generate(service: &str, namespace: &str, days: u32) -> Result<Self, CertError> {
        if !(1..=3650).contains(&days) {
            return Err(CertError::Validity(days));
        }
        check_label("service", service)?;
        check_label("namespace", namespace)?;
        let not_before = OffsetDateTime::now_utc() - CLOCK_SKEW;
        let not_after = not_before + CLOCK_SKEW + Duration::from_secs(u64::from(days) * 86_400);

        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name = common_name(&format!("Defender development CA ({service}.{namespace})"));
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.not_before = not_before;
        ca.not_after = not_after;
        let ca_cert = ca.self_signed(&ca_key)?;

        let key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(subject_names(service, namespace))?;
        serving.distinguished_name = common_name(&format!("{service}.{namespace}.svc"));
        serving.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        serving.not_before = not_before;
        serving.not_after = not_after;
        let cert = serving.signed_by(&key, &Issuer::from_params(&ca, &ca_key))?;

        Ok(Self { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// `ca.crt` as single-line base64, the form a webhook's `caBundle` takes.
    pub fn ca_bundle(&self) -> String {
        BASE64.encode(self.ca_pem.as_bytes())
    }

    /// Writes ca.crt, tls.crt, tls.key (mode 0600) and ca-bundle.b64 into `dir`,
    /// creating it (mode 0700) if needed. Each file is replaced atomically, so a
    /// server watching the directory never reads half a file.
    pub fn write(&self, dir: &Path) -> Result<CertFiles, CertError> {
        create_private_dir(dir).map_err(|error| CertError::Write { path: dir.to_owned(), error })?;
        let bundle = format!("{}\n", self.ca_bundle());
        Ok(CertFiles {
            ca_cert: write_file(dir, CA_CERT, self.ca_pem.as_bytes(), 0o644)?,
            key: write_file(dir, TLS_KEY, self.key_pem.as_bytes(), 0o600)?,
            cert: write_file(dir, TLS_CERT, self.cert_pem.as_bytes(), 0o644)?,
            ca_bundle: write_file(dir, CA_BUNDLE, bundle.as_bytes(), 0o644)?,
        })
    }
}

/// Services and namespaces are RFC 1123 labels; anything else makes a certificate
/// for a name the API server will never use.
fn check_label(what: &'static str, name: &str) -> Result<(), CertError> {
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let valid = (1..=63).contains(&name.len())
        && name.chars().all(valid_char)
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid { Ok(()) } else { Err(CertError::Name { what, name: name.to_owned() }) }
}

impl From<rcgen::Error> for CertError {
    fn from(error: rcgen::Error) -> Self {
        Self::Generate(error)
    }
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes through a fresh temporary file and a rename: readers see the old
/// file or the new one, and a symlink planted at `name` is replaced, not followed.
fn write_file(dir: &Path, name: &str, contents: &[u8], mode: u32) -> Result<PathBuf, CertError> {
    let path = dir.join(name);
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let attempt = || -> std::io::Result<()> {
        match fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, &path)
    };
    attempt().map_err(|error| {
        let _ = fs::remove_file(&temp);
        CertError::Write { path: path.clone(), error }
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    use super::*;

    fn verify(certs: &DevCerts, name: &str) -> Result<(), rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(certs.ca_pem.as_bytes()).unwrap()).unwrap();
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
        let leaf = CertificateDer::from_pem_slice(certs.cert_pem.as_bytes()).unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        verifier.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now()).map(|_| ())
    }

    #[test]
    fn the_serving_certificate_chains_to_the_ca_for_every_service_name() {
        let certs = DevCerts::generate("guard", "ops", 30).unwrap();
        for name in subject_names("guard", "ops") {
            verify(&certs, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(verify(&certs, "guard.other.svc").is_err());
    }

    #[test]
    fn writes_the_files_with_a_private_key_only_the_owner_reads() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested/certs");
        let certs = DevCerts::generate(DEFAULT_SERVICE, DEFAULT_NAMESPACE, 365).unwrap();
        let files = certs.write(&out).unwrap();
        assert_eq!(fs::read_to_string(&files.cert).unwrap(), certs.cert_pem);
        assert_eq!(fs::read_to_string(&files.key).unwrap(), certs.key_pem);
        let bundle = fs::read_to_string(&files.ca_bundle).unwrap();
        assert_eq!(bundle.lines().count(), 1);
        assert_eq!(BASE64.decode(bundle.trim_end()).unwrap(), fs::read(&files.ca_cert).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&files.key).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o700);
        }
        // No temporary files are left behind, and the CA key is never written.
        let mut names: Vec<String> =
            fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, [CA_BUNDLE, CA_CERT, TLS_CERT, TLS_KEY]);
    }

    #[test]
    fn rewriting_replaces_a_symlink_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, "untouched").unwrap();
        let out = dir.path().join("certs");
        fs::create_dir(&out).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&elsewhere, out.join(TLS_KEY)).unwrap();
        DevCerts::generate("a", "b", 1).unwrap().write(&out).unwrap();
        assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "untouched");
    }

    #[test]
    fn refuses_names_the_api_server_cannot_use() {
        for (service, namespace) in
            [("Defender", "ops"), ("a b", "ops"), ("-a", "ops"), ("a", ""), ("a", "x.y")]
        {
            let error = DevCerts::generate(service, namespace, 1).err();
            assert!(matches!(error, Some(CertError::Name { .. })), "{service:?} {namespace:?}: {error:?}");
        }
    }

    #[test]
    fn refuses_an_absurd_validity() {
        assert!(matches!(DevCerts::generate("a", "b", 0), Err(CertError::Validity(0))));
        assert!(matches!(DevCerts::generate("a", "b", 100_000), Err(CertError::Validity(_))));
    }
}
