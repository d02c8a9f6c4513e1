//! Mutual TLS: a ledger with `[tls]` answers a client presenting a
//! certificate from its CA, and refuses one with no certificate, one from
//! another CA, and plain text; two ledgers over mTLS still sync (the province
//! pulls the district's chain with its own certificate).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use sustain_platform::Role;
use sustain_platform::config::{Config, PeerConfig};
use sustain_platform::tls::{Tls, TlsConfig, dev_certs, endpoint};
use sustain_proto::ledger::v1 as pb;
use sustain_proto::ledger::v1::chain_service_client::ChainServiceClient;
use sustain_testkit::server::Bearer;
use sustain_testkit::{TestDatabase, eventually, token};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, ClientTlsConfig};

fn tls_config(dir: &Path, name: &str) -> TlsConfig {
    TlsConfig {
        cert: Some(dir.join(format!("{name}.pem"))),
        key: Some(dir.join(format!("{name}.key"))),
        ca: Some(dir.join("ca.pem")),
    }
}

fn load(config: &TlsConfig) -> Tls {
    config.load().expect("read").expect("tls on")
}

/// A ledger serving mTLS on `listener` until the sender is dropped.
async fn serve(
    listener: tokio::net::TcpListener,
    mut config: Config,
    db: &TestDatabase,
) -> tokio::sync::oneshot::Sender<()> {
    config.database_url = db.url.clone();
    config.shutdown_grace_secs = 0;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let secrets = sustain_testkit::secrets();
        sustain_ledger::run(&config, &secrets, listener, async {
            let _ = stopped.await;
        })
        .await
        .expect("served");
    });
    stop
}

/// The chain head, asked over `tls` (or plain text with `None`).
async fn head(
    addr: std::net::SocketAddr,
    client: Option<ClientTlsConfig>,
) -> Result<pb::GetChainHeadResponse, String> {
    let url = format!("https://{addr}");
    let channel = match client {
        Some(c) => tonic::transport::Endpoint::from_shared(url)
            .map_err(|e| e.to_string())?
            .tls_config(c)
            .map_err(|e| e.to_string())?,
        None => tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?,
    }
    .connect_timeout(Duration::from_secs(2))
    .timeout(Duration::from_secs(2))
    .connect()
    .await
    .map_err(|e| format!("connect: {e:?}"))?;
    let mut chain = ChainServiceClient::new(InterceptedService::new(
        channel,
        Bearer(token(Role::Finance, &["20"])),
    ));
    chain
        .get_chain_head(pb::GetChainHeadRequest::default())
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| format!("call: {s:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_peer_with_a_certificate_from_the_ca_is_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = dir.path().join("ours");
    let theirs = dir.path().join("theirs");
    dev_certs(&ours, "ledger", &[]).expect("certificates");
    dev_certs(&ours, "client", &[]).expect("a client's");
    dev_certs(&theirs, "intruder", &[]).expect("another CA's");

    let db = TestDatabase::new().await.expect("database");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = Config::defaults(0);
    config.tls = tls_config(&ours, "ledger");
    let _stop = serve(listener, config, &db).await;

    let client = load(&tls_config(&ours, "client")).client();
    let start = Instant::now();
    let answered = loop {
        match head(addr, Some(client.clone())).await {
            Ok(h) => break h,
            Err(e) if start.elapsed() > Duration::from_secs(10) => panic!("never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(answered.sequence, 0);

    let ca = Certificate::from_pem(std::fs::read(ours.join("ca.pem")).expect("ca"));
    let anonymous = ClientTlsConfig::new().ca_certificate(ca);
    let refused = head(addr, Some(anonymous))
        .await
        .expect_err("no certificate");
    assert!(!refused.is_empty());
    let intruder = load(&TlsConfig {
        ca: Some(ours.join("ca.pem")),
        ..tls_config(&theirs, "intruder")
    })
    .client();
    head(addr, Some(intruder))
        .await
        .expect_err("a certificate from another CA");
    head(addr, None).await.expect_err("plain text");
    // The rightful client still gets in after the refusals.
    assert!(head(addr, Some(client)).await.is_ok());

    // The same configuration may not serve plain text beyond loopback.
    let mut open = Config::defaults(0);
    open.listen = "0.0.0.0:50053".parse().expect("addr");
    let args = sustain_platform::config::ServeArgs {
        listen: Some(open.listen),
        ..Default::default()
    };
    let err = Config::load("ledger", 50053, &args).expect_err("plain text on 0.0.0.0");
    assert!(err.to_string().contains("tls"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_province_pulls_its_district_over_mutual_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    dev_certs(dir.path(), "province", &[]).expect("province's");
    dev_certs(dir.path(), "district", &[]).expect("district's");
    let (d_db, p_db) = (
        TestDatabase::new().await.expect("database"),
        TestDatabase::new().await.expect("database"),
    );
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (d_listener, p_listener) = (bind().await.expect("bind"), bind().await.expect("bind"));
    let (d_addr, p_addr) = (
        d_listener.local_addr().expect("addr"),
        p_listener.local_addr().expect("addr"),
    );
    let mut district = Config::defaults(0);
    district.tls = tls_config(dir.path(), "district");
    district.sync.instance = "district-181".into();
    district.sync.scope = vec!["181".into()];
    district.sync.upstream = Some(PeerConfig {
        name: "province".into(),
        url: format!("http://{p_addr}"),
        scope: vec![],
    });
    let mut province = Config::defaults(0);
    province.tls = tls_config(dir.path(), "province");
    province.sync.instance = "province".into();
    province.sync.scope = vec!["20".into()];
    province.sync.poll_ms = 50;
    province.sync.retry_max_ms = 300;
    province.sync.downstream = vec![PeerConfig {
        name: "district-181".into(),
        // Plain http in the file: with [tls] on the call goes over https.
        url: format!("http://{d_addr}"),
        scope: vec!["181".into()],
    }];
    let _district = serve(d_listener, district, &d_db).await;
    let _province = serve(p_listener, province, &p_db).await;

    let tls = load(&tls_config(dir.path(), "district"));
    let channel = endpoint(&format!("http://{d_addr}"), Some(&tls))
        .expect("endpoint")
        .connect_lazy();
    let mut accounts = sustain_proto::ledger::v1::account_service_client::AccountServiceClient::new(
        InterceptedService::new(channel, Bearer(token(Role::Finance, &["181"]))),
    );
    let start = Instant::now();
    loop {
        let opened = accounts
            .create_account(pb::CreateAccountRequest {
                account: Some(common::account(
                    pb::AccountKind::Source,
                    pb::FundingSource::LocalBudget,
                    "181",
                    "",
                    0,
                )),
                request_id: "source-181".into(),
            })
            .await;
        match opened {
            Ok(_) => break,
            Err(e) if start.elapsed() > Duration::from_secs(10) => panic!("{e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let province_tls = load(&tls_config(dir.path(), "province"));
    eventually(
        "the district's chain reaches the province over mTLS",
        || {
            let province_tls = province_tls.clone();
            async move {
                let Ok(channel) = endpoint(&format!("http://{p_addr}"), Some(&province_tls)) else {
                    return false;
                };
                let mut chain = ChainServiceClient::new(InterceptedService::new(
                    channel.connect_lazy(),
                    Bearer(token(Role::Finance, &["20"])),
                ));
                chain
                    .get_chain_head(pb::GetChainHeadRequest {
                        at_sequence: 0,
                        instance: "district-181".into(),
                    })
                    .await
                    .is_ok_and(|h| h.get_ref().sequence == 1 && h.get_ref().alarm.is_empty())
            }
        },
    )
    .await;
}
