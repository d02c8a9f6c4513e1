//! The report pages with a certificate: served over HTTPS only, and every
//! answer marked as not to be sniffed, framed or cached.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use sustain_platform::config::Config;
use sustain_platform::tls::{TlsConfig, dev_certs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` over `stream`, HTTP/1.1; the head and body as text.
async fn get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    path: &str,
) -> (String, String) {
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("send");
    let mut answer = vec![];
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_served_over_https_with_guarding_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    dev_certs(dir.path(), "gateway", &[]).expect("certificate");
    let mut config = Config::defaults(0);
    config.shutdown_grace_secs = 0;
    config.tls = TlsConfig {
        cert: Some(dir.path().join("gateway.pem")),
        key: Some(dir.path().join("gateway.key")),
        ca: Some(dir.path().join("ca.pem")),
    };
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = http.local_addr().expect("addr");
    let secrets = sustain_testkit::secrets();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        sustain_gateway::run(&config, &secrets, grpc, http, async {
            let _ = stopped.await;
        })
        .await
    });

    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls_pki_types::CertificateDer::pem_file_iter(dir.path().join("ca.pem")).expect("ca")
    {
        roots.add(cert.expect("pem")).expect("root");
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let connect = || async {
        for _ in 0..200 {
            if let Ok(tcp) = tokio::net::TcpStream::connect(addr).await {
                return tcp;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the gateway does not listen");
    };
    let tls = connector
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").expect("name"),
            connect().await,
        )
        .await
        .expect("handshake with the gateway's certificate");
    let (head, body) = get(tls, "/api/v1/dashboard?unit_code=20").await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(body.contains("Unauthenticated"), "{body}");
    for expected in [
        "x-content-type-options: nosniff",
        "cache-control: no-store",
        "content-security-policy: default-src 'none'",
        "referrer-policy: no-referrer",
    ] {
        assert!(head.contains(expected), "{expected} missing:\n{head}");
    }
    // Plain text gets no answer from the HTTPS port.
    let (head, _) = get(connect().await, "/reports").await;
    assert!(!head.starts_with("http/1.1"), "plain text answered: {head}");

    let _ = stop.send(());
    serving.await.expect("joined").expect("served");
}
