//! The probe's trust: the CA bundle (`[probe] ca_bundle`, RDS's `global-bundle.pem`) is the only set of
//! roots a server's certificate may chain to, and the certificate must name the RDS endpoint. Both
//! drivers get the same bundle: PostgreSQL a rustls `ClientConfig` built here, MySQL the PEM bytes
//! (mysql_async builds its own rustls configuration from them, without its built-in roots).

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

/// The CA bundle, read once at start-up.
#[derive(Clone)]
pub(super) struct Trust {
    /// rustls with the bundle as its only roots and the default (WebPKI) verifier, which checks the
    /// chain and that the certificate names the server name given at connection.
    pub client_config: Arc<rustls::ClientConfig>,
    /// The bundle as read (PEM), for mysql_async's `SslOpts::with_root_certs`.
    pub pem: Vec<u8>,
}

impl Trust {
    /// Reads `path` (PEM, one or more `CERTIFICATE` blocks). Errors name the path: the file cannot be
    /// read, holds no certificate, or holds one rustls cannot use as a root.
    pub fn load(path: &Path) -> Result<Trust, String> {
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| format!("{shown}: cannot read it: {e}"))?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{shown}: not a PEM certificate bundle: {e}"))?;
        if certificates.is_empty() {
            return Err(format!(
                "{shown}: holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks, such as RDS's global-bundle.pem)"
            ));
        }
        let mut roots = RootCertStore::empty();
        for (i, certificate) in certificates.into_iter().enumerate() {
            roots
                .add(certificate)
                .map_err(|e| format!("{shown}: certificate {} is not usable as a root: {e}", i + 1))?;
        }
        let client_config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS configuration: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(Trust {
            client_config: Arc::new(client_config),
            pem,
        })
    }
}

/// The rustls error somewhere in `error`'s chain (rustls errors reach the drivers wrapped in
/// `std::io::Error`, whose `source()` skips the wrapped error itself, hence the `get_ref`).
pub(super) fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
            && let Some(r) = rustls_error(inner)
        {
            return Some(r);
        }
        next = e.source();
    }
    None
}

/// Why a TLS handshake with `endpoint` failed, for a person: the certificate's problem in words.
pub(super) fn describe(endpoint: &str, error: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let why = match error {
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            format!("the server's certificate does not name {endpoint} ({error})")
        }
        // BadSignature: an issuer of the same name is in the bundle, but it did not sign this certificate.
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            format!("the server's certificate is not signed by a certificate authority of probe.ca_bundle ({error})")
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            format!("the server's certificate has expired ({error})")
        }
        other => other.to_string(),
    };
    format!("TLS with {endpoint} failed: {why}")
}
