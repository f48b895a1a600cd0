//! TLS with rustls: for listeners (`[tls]`: a certificate and key, read at
//! start and again on every reload) and for connections to backends
//! (`rediss://`, or `tls = true` on a memcached backend), which verify the
//! server against the Mozilla roots or a configured CA file.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// What a listener needs to accept TLS connections.
pub type Acceptor = tokio_rustls::TlsAcceptor;

/// Builds the acceptor for `[tls]` from PEM files.
pub fn acceptor(cert_file: &Path, key_file: &Path) -> Result<Acceptor, String> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "cert_file {}: no certificate in it",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("key_file {}: {e}", key_file.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("cert_file and key_file do not make a certificate: {e}"))?;
    Ok(Acceptor::from(Arc::new(config)))
}

/// How Keyway connects to a backend over TLS.
#[derive(Clone)]
pub struct Connector {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl Connector {
    /// Verifies servers against `ca_file` (PEM) when given, else the
    /// Mozilla roots; `server_name` is the name the certificate must carry.
    pub fn new(ca_file: Option<&Path>, server_name: &str) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(file) => {
                let certs = CertificateDer::pem_file_iter(file)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("tls_ca_file {}: {e}", file.display()))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!(
                        "tls_ca_file {}: no usable certificate",
                        file.display()
                    ));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|_| format!("{server_name:?} is not a host name or address for TLS"))?;
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    pub async fn connect(
        &self,
        stream: tokio::net::TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        self.connector
            .connect(self.server_name.clone(), stream)
            .await
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
