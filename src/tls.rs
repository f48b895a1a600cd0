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

/// Builds the acceptor for `[tls]` from PEM files; with `client_ca_file`,
/// clients must present a certificate one of its CAs issued.
pub fn acceptor(
    cert_file: &Path,
    key_file: &Path,
    client_ca_file: Option<&Path>,
) -> Result<Acceptor, String> {
    let (certs, key) = read_pair(cert_file, key_file, "cert_file", "key_file")?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca_file {
        None => builder.with_no_client_auth(),
        Some(file) => {
            let roots = read_roots(file, "client_ca_file")?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.into(),
                provider(),
            )
            .build()
            .map_err(|e| format!("client_ca_file {}: {e}", file.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
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
    /// `client`: a certificate chain and key (PEM) to present to servers
    /// that ask for one.
    pub fn new(
        ca_file: Option<&Path>,
        server_name: &str,
        client: Option<(&Path, &Path)>,
    ) -> Result<Self, String> {
        let roots = match ca_file {
            Some(file) => read_roots(file, "tls_ca_file")?,
            None => {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                roots
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match client {
            None => config.with_no_client_auth(),
            Some((cert_file, key_file)) => {
                let (certs, key) = read_pair(cert_file, key_file, "tls_cert_file", "tls_key_file")?;
                let mut config = config.with_client_auth_cert(certs, key).map_err(|e| {
                    format!("tls_cert_file and tls_key_file do not make a certificate: {e}")
                })?;
                // A memcached -Z that verifies clients sets no OpenSSL
                // session id context, so it answers a resumed session
                // with an internal_error alert: every connection after
                // the first would fail. Full handshakes, as pymemcache's.
                config.resumption = rustls::client::Resumption::disabled();
                config
            }
        };
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

/// A certificate chain and its private key from PEM files; errors name
/// the field (`cert_field`, `key_field`) and the file.
fn read_pair(
    cert_file: &Path,
    key_file: &Path,
    cert_field: &str,
    key_field: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{cert_field} {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{cert_field} {}: no certificate in it",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("{key_field} {}: {e}", key_file.display()))?;
    Ok((certs, key))
}

/// The CA certificates of a PEM file, as trust anchors.
fn read_roots(file: &Path, field: &str) -> Result<rustls::RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{field} {}: {e}", file.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{field} {}: no usable certificate", file.display()));
    }
    Ok(roots)
}

/// The subject common name of the certificate a client presented, if it
/// presented one (the handshake already verified it against
/// `client_ca_file`).
pub fn client_common_name<IO>(stream: &tokio_rustls::server::TlsStream<IO>) -> Option<String> {
    let der = stream.get_ref().1.peer_certificates()?.first()?;
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = certificate
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(name)
}
