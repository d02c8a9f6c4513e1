//! Mutual TLS between services and for sync, on rustls. With `[tls]` set a
//! service serves only TLS and asks every client for a certificate signed by
//! the configured CA (a peer without one is refused in the handshake), and
//! every call it makes presents its own certificate and trusts only that CA.
//! Without it, it serves plain text, which [`crate::config::Config`] allows
//! only on loopback. `dev-certs` makes a development CA and certificates.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Where a service finds its certificate, its key and the CA it trusts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate this service presents, as server and as client.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// PEM certificate of the CA every peer's certificate must chain to.
    pub ca: Option<PathBuf>,
}

/// The files of a [`TlsConfig`], read.
#[derive(Debug, Clone)]
pub struct Tls {
    identity: Identity,
    ca: Certificate,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("tls.{what}: cannot read {}: {e}", path.display()))
}

impl TlsConfig {
    /// True when the three files are named.
    pub fn enabled(&self) -> bool {
        self.cert.is_some() || self.key.is_some() || self.ca.is_some()
    }

    /// A problem with the settings, naming the key.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let named = [self.cert.is_some(), self.key.is_some(), self.ca.is_some()];
        if named.iter().any(|n| *n) && !named.iter().all(|n| *n) {
            return Some((
                "tls",
                "cert, key and ca are set together or not at all".into(),
            ));
        }
        None
    }

    /// Reads the files; `None` when TLS is off.
    pub fn load(&self) -> anyhow::Result<Option<Tls>> {
        let (Some(cert), Some(key), Some(ca)) = (&self.cert, &self.key, &self.ca) else {
            return Ok(None);
        };
        Ok(Some(Tls {
            identity: Identity::from_pem(read(cert, "cert")?, read(key, "key")?),
            ca: Certificate::from_pem(read(ca, "ca")?),
        }))
    }
}

impl Tls {
    /// The server side: this certificate, and client certificates required.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
    }

    /// The client side: this certificate, and only the CA trusted.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .identity(self.identity.clone())
            .ca_certificate(self.ca.clone())
    }
}

impl TlsConfig {
    /// Serves HTTPS on `listener` with this certificate (a browser presents
    /// none, so none is asked for: the bearer token authenticates).
    pub fn https(&self, listener: tokio::net::TcpListener) -> anyhow::Result<HttpsListener> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            anyhow::bail!("tls: cert and key are needed to serve HTTPS");
        };
        let chain = CertificateDer::pem_slice_iter(&read(cert, "cert")?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("tls.cert: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(&read(key, "key")?)
            .map_err(|e| anyhow::anyhow!("tls.key: {e}"))?;
        let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let addr = listener.local_addr()?;
        let (tx, incoming) = tokio::sync::mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "https: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                // Each handshake on its own: a slow client holds up no one.
                tokio::spawn(async move {
                    let shake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(tcp),
                    );
                    match shake.await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "https: handshake failed"),
                        Err(_) => tracing::debug!(%peer, "https: handshake timed out"),
                    }
                });
            }
        });
        Ok(HttpsListener {
            incoming,
            addr,
            task,
        })
    }
}

/// Accepted HTTPS connections, handshake done; for `axum::serve`.
#[derive(Debug)]
pub struct HttpsListener {
    incoming: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(accepted) => accepted,
            // The accepting task is gone: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// An endpoint for `url`; with TLS on, `http://` becomes `https://` and the
/// call presents this service's certificate.
pub fn endpoint(url: &str, tls: Option<&Tls>) -> anyhow::Result<Endpoint> {
    match tls {
        None => Ok(Endpoint::from_shared(url.to_owned())?),
        Some(tls) => {
            let url = match url.strip_prefix("http://") {
                Some(rest) => format!("https://{rest}"),
                None => url.to_owned(),
            };
            Ok(Endpoint::from_shared(url)?.tls_config(tls.client())?)
        }
    }
}

/// The development CA's name; a CA made by [`dev_certs`] is found again by it.
const CA_NAME: &str = "Sustain development CA";

/// Writes a certificate and key for `name`, valid for `hosts` (plus
/// `localhost` and `127.0.0.1`, for probes), signed by the development CA in
/// `dir` (`ca.pem`, `ca.key`), which is made first when absent. Returns the
/// paths written. For development and tests; production certificates come
/// from the province's own CA.
pub fn dev_certs(dir: &Path, name: &str, hosts: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    dev_certificate(
        dir,
        name,
        hosts,
        &dir.join(format!("{name}.pem")),
        &dir.join(format!("{name}.key")),
    )
}

/// The same, with the CA in `ca_dir` and the certificate and key written to
/// `pem` and `key`.
pub fn dev_certificate(
    ca_dir: &Path,
    name: &str,
    hosts: &[String],
    pem: &Path,
    key: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let dir = ca_dir;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    std::fs::create_dir_all(dir)?;
    let ca_params = {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_NAME);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    let (ca_pem, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let mut written = vec![];
    let ca_key_pair = if ca_key.exists() && ca_pem.exists() {
        KeyPair::from_pem(&std::fs::read_to_string(&ca_key)?)?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params.self_signed(&key)?;
        crate::auth::keys::write_public(&ca_pem, &cert.pem())?;
        write_private(&ca_key, &key.serialize_pem())?;
        written.extend([ca_pem.clone(), ca_key.clone()]);
        key
    };
    let issuer = Issuer::new(ca_params, ca_key_pair);
    let mut sans: Vec<String> = hosts.to_vec();
    for always in ["localhost", "127.0.0.1"] {
        if !sans.iter().any(|h| h == always) {
            sans.push(always.to_owned());
        }
    }
    let mut params = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let pair = KeyPair::generate()?;
    let cert = params.signed_by(&pair, &issuer)?;
    crate::auth::keys::write_public(pem, &cert.pem())?;
    write_private(key, &pair.serialize_pem())?;
    written.extend([pem.to_path_buf(), key.to_path_buf()]);
    Ok(written)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    Ok(crate::auth::keys::write_private(path, text)?)
}
