//! HTTPS: the TLS configuration (rustls with the ring provider) that offers
//! HTTP/2 and HTTP/1.1 by ALPN; `server.rs` serves the same router over it. rfc8216bis Appendix B.1
//! asks for HTTP/2 so that blocking playlist reloads and part requests share
//! one connection; browsers speak HTTP/2 only over TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// Why the certificate files cannot be used; the message names the file and
/// says it all (the reason is not repeated as an error source).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate file {path}: {reason}")]
    Certificate { path: PathBuf, reason: pem::Error },
    #[error("TLS key file {path}: {reason}")]
    Key { path: PathBuf, reason: pem::Error },
    #[error("TLS certificate {cert} with key {key}: {reason}")]
    Config {
        cert: PathBuf,
        key: PathBuf,
        reason: rustls::Error,
    },
}

/// Reads a PEM certificate chain (leaf first) and its PEM private key
/// (PKCS#8, PKCS#1 or SEC1) into a server configuration.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .and_then(|chain| {
            if chain.is_empty() {
                Err(pem::Error::NoItemsFound)
            } else {
                Ok(chain)
            }
        })
        .map_err(|reason| TlsError::Certificate {
            path: cert.to_owned(),
            reason,
        })?;
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|reason| TlsError::Key {
        path: key.to_owned(),
        reason,
    })?;
    let config_error = |reason| TlsError::Config {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .with_no_client_auth()
            // Also checks that the key belongs to the certificate.
            .with_single_cert(chain, private_key)
            .map_err(config_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_empty_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not PEM at all\n").unwrap();
        let err = server_config(&missing, &empty).unwrap_err().to_string();
        assert!(
            err.contains("certificate file") && err.contains("missing.pem"),
            "{err}"
        );
        let err = server_config(&empty, &empty).unwrap_err().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no items found"),
            "{err}"
        );
    }
}
