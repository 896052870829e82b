//! TLS: the rustls configuration and the serving certificate that can be swapped
//! while connections are open.
//!
//! The certificate is picked per handshake by [`CurrentCert`], so a rotated
//! certificate is used by the next connection without a restart; connections
//! already open keep the one they were made with.

use std::sync::{Arc, RwLock};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the certificate file holds no PEM certificate")]
    NoCertificate,
    #[error("the certificate file is not valid PEM: {0}")]
    CertificatePem(pem::Error),
    #[error("the key file is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {0}")]
    KeyPem(pem::Error),
    #[error("the private key cannot be used: {0}")]
    Key(rustls::Error),
    #[error("the private key does not belong to the certificate")]
    Mismatch,
    #[error("the certificate cannot be used: {0}")]
    Certificate(rustls::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Config(rustls::Error),
    #[error("the client CA cannot verify client certificates: {0}")]
    ClientCa(String),
    #[error("the validity of a certificate cannot be read: {0}")]
    Validity(String),
}

/// The crypto Defender uses, named explicitly so no process-wide default is needed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain (leaf first) and its private key, and checks
/// that the key belongs to the leaf.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::CertificatePem)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::KeyPem)?;
    let key = provider().key_provider.load_private_key(key).map_err(TlsError::Key)?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(TlsError::Mismatch),
        Err(other) => Err(TlsError::Certificate(other)),
    }
}

/// [`certified_key`], and when its chain stops being valid ([`expiry`]). A
/// certificate whose validity cannot be read is refused like one that does not parse.
pub fn serving_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<(CertifiedKey, i64), TlsError> {
    let key = certified_key(cert_pem, key_pem)?;
    let expires = expiry(&key.cert)?;
    Ok((key, expires))
}

/// When `chain` stops verifying: the earliest `notAfter` among its
/// certificates, in Unix seconds. For a served chain that is usually the leaf,
/// but an intermediate that expires first breaks the chain just the same.
pub fn expiry(chain: &[CertificateDer<'_>]) -> Result<i64, TlsError> {
    let mut earliest: Option<i64> = None;
    for der in chain {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| TlsError::Validity(e.to_string()))?;
        let not_after = cert.validity().not_after.timestamp();
        earliest = Some(earliest.map_or(not_after, |e| e.min(not_after)));
    }
    earliest.ok_or(TlsError::NoCertificate)
}

/// [`expiry`] of the PEM certificates in `pem` (a CA bundle).
pub fn pem_expiry(pem: &[u8]) -> Result<i64, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::CertificatePem)?;
    expiry(&chain)
}

/// The serving certificate in force.
#[derive(Debug)]
pub struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl CurrentCert {
    pub fn new(key: CertifiedKey) -> Self {
        Self(RwLock::new(Arc::new(key)))
    }

    pub fn get(&self) -> Arc<CertifiedKey> {
        // The lock only guards an Arc swap, which cannot leave it half-written.
        Arc::clone(&self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn replace(&self, key: CertifiedKey) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The CAs whose client certificates are accepted, when clients must present
/// one (`--client-ca`: the API server's admission kubeconfig names its own).
pub fn client_verifier(ca_pem: &[u8]) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.map_err(TlsError::CertificatePem)?).map_err(TlsError::Certificate)?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::ClientCa(e.to_string()))
}

/// TLS 1.2 and 1.3 only, HTTP/2 or HTTP/1.1; client certificates required
/// when a verifier is given.
pub fn server_config(
    cert: Arc<CurrentCert>,
    clients: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?;
    let builder = match clients {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // No session resumption: a resumed session skips the certificate, so a
    // client could keep trusting a certificate after it was rotated out. The
    // API server keeps its connections open, so resumption would save little.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::DevCerts;

    #[test]
    fn accepts_a_matching_pair() {
        let certs = DevCerts::generate("a", "b", 1).unwrap();
        let key = certified_key(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes()).unwrap();
        assert_eq!(key.cert.len(), 1);
    }

    #[test]
    fn refuses_a_key_from_another_pair() {
        let one = DevCerts::generate("a", "b", 1).unwrap();
        let other = DevCerts::generate("a", "b", 1).unwrap();
        let error = certified_key(one.cert_pem.as_bytes(), other.key_pem.as_bytes()).unwrap_err();
        assert!(matches!(error, TlsError::Mismatch), "{error}");
    }

    #[test]
    fn refuses_garbage_with_a_reason() {
        let certs = DevCerts::generate("a", "b", 1).unwrap();
        let key = certs.key_pem.as_bytes();
        assert!(matches!(certified_key(b"", key), Err(TlsError::NoCertificate)));
        assert!(matches!(certified_key(b"not a certificate", key), Err(TlsError::NoCertificate)));
        let cut = &certs.cert_pem.as_bytes()[..certs.cert_pem.len() / 2];
        assert!(matches!(certified_key(cut, key), Err(TlsError::CertificatePem(_))));
        let error = certified_key(certs.cert_pem.as_bytes(), b"garbage").unwrap_err();
        assert!(matches!(error, TlsError::KeyPem(_)), "{error}");
        let bogus = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let error = certified_key(bogus.as_bytes(), key).unwrap_err();
        assert!(matches!(error, TlsError::Certificate(_)), "{error}");
    }

    /// Unix seconds of a certificate valid for `days` from now, as rcgen wrote it.
    fn days_from_now(days: i64) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp() + days * 24 * 60 * 60
    }

    #[test]
    fn expiry_is_the_earliest_not_after_in_the_chain() {
        let short = DevCerts::generate("a", "b", 2).unwrap();
        let long = DevCerts::generate("a", "b", 30).unwrap();
        let key = certified_key(short.cert_pem.as_bytes(), short.key_pem.as_bytes()).unwrap();
        let leaf = expiry(&key.cert).unwrap();
        // rcgen writes whole seconds; a minute covers the time this test takes.
        assert!((leaf - days_from_now(2)).abs() < 60, "{leaf} vs {}", days_from_now(2));
        // Leaf first, then a CA valid for longer: the leaf decides.
        assert_eq!(pem_expiry(format!("{}{}", short.cert_pem, long.ca_pem).as_bytes()).unwrap(), leaf);
        // A later leaf followed by an earlier certificate: the earlier one decides.
        let bundle = format!("{}{}", long.cert_pem, short.cert_pem);
        assert_eq!(pem_expiry(bundle.as_bytes()).unwrap(), leaf);
    }

    #[test]
    fn expiry_of_garbage_is_an_error() {
        assert!(matches!(pem_expiry(b""), Err(TlsError::NoCertificate)));
        let bogus = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let error = pem_expiry(bogus.as_bytes()).unwrap_err();
        assert!(matches!(error, TlsError::Validity(_)), "{error}");
    }

    #[test]
    fn the_resolver_hands_out_the_latest_certificate() {
        let one = DevCerts::generate("a", "b", 1).unwrap();
        let two = DevCerts::generate("a", "b", 1).unwrap();
        let current =
            CurrentCert::new(certified_key(one.cert_pem.as_bytes(), one.key_pem.as_bytes()).unwrap());
        let first = current.get().cert[0].clone();
        current.replace(certified_key(two.cert_pem.as_bytes(), two.key_pem.as_bytes()).unwrap());
        assert_ne!(current.get().cert[0], first);
        assert!(server_config(Arc::new(current), None).is_ok());
    }
}
