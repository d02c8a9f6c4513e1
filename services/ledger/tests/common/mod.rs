//! The ledger on 127.0.0.1:0 over a fresh database, and clients for any role
//! and scope.
#![allow(dead_code, unreachable_pub)]

use sustain_platform::Role;
use sustain_platform::config::Config;
use sustain_proto::ledger::v1 as pb;
use sustain_proto::ledger::v1::account_service_client::AccountServiceClient;
use sustain_proto::ledger::v1::chain_service_client::ChainServiceClient;
use sustain_proto::ledger::v1::funding_service_client::FundingServiceClient;
use sustain_proto::ledger::v1::transfer_service_client::TransferServiceClient;
use sustain_testkit::server::{Bearer, Running};
use sustain_testkit::{TestDatabase, token};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Authed = InterceptedService<Channel, Bearer>;
pub type Accounts = AccountServiceClient<Authed>;
pub type Transfers = TransferServiceClient<Authed>;
pub type Chain = ChainServiceClient<Authed>;
pub type Funding = FundingServiceClient<Authed>;

pub const PROVINCE: &[&str] = &["20"];
pub const BINH_GIA: &[&str] = &["181"];
pub const TRANG_DINH: &[&str] = &["180"];

pub struct Ledger {
    pub server: Running,
    pub db: TestDatabase,
}

impl Ledger {
    pub async fn start() -> Ledger {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut config = Config::defaults(0);
        config.shutdown_grace_secs = 0;
        Ledger::start_on(listener, config).await
    }

    /// On a listener bound beforehand, with `config` over a fresh database.
    pub async fn start_on(listener: tokio::net::TcpListener, config: Config) -> Ledger {
        let db = TestDatabase::new().await.expect("database");
        let server = Ledger::serve(listener, config, &db.url).await;
        Ledger { server, db }
    }

    /// Starts again over the same database, on a new port.
    pub async fn restart(self, config: Config) -> Ledger {
        let Ledger { server, db } = self;
        server.stop().await.expect("stopped cleanly");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let server = Ledger::serve(listener, config, &db.url).await;
        Ledger { server, db }
    }

    pub async fn serve(
        listener: tokio::net::TcpListener,
        mut config: Config,
        url: &str,
    ) -> Running {
        config.database_url = url.to_owned();
        Running::start_on(
            listener,
            move |listener, stopped| async move {
                let secrets = sustain_testkit::secrets();
                sustain_ledger::run(&config, &secrets, listener, async {
                    let _ = stopped.await;
                })
                .await
            },
            "sustain.ledger.v1.TransferService",
        )
        .await
        .expect("ledger serving")
    }

    async fn authed(&self, role: Role, scope: &[&str]) -> Authed {
        InterceptedService::new(
            self.server.channel().await.expect("connect"),
            Bearer(token(role, scope)),
        )
    }

    pub async fn accounts(&self, role: Role, scope: &[&str]) -> Accounts {
        AccountServiceClient::new(self.authed(role, scope).await)
    }

    pub async fn transfers(&self, role: Role, scope: &[&str]) -> Transfers {
        TransferServiceClient::new(self.authed(role, scope).await)
    }

    pub async fn chain(&self, role: Role, scope: &[&str]) -> Chain {
        ChainServiceClient::new(self.authed(role, scope).await)
    }

    pub async fn funding(&self, role: Role, scope: &[&str]) -> Funding {
        FundingServiceClient::new(self.authed(role, scope).await)
    }
}

pub fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn account(
    kind: pb::AccountKind,
    source: pb::FundingSource,
    unit: &str,
    project: &str,
    year: i32,
) -> pb::Account {
    pb::Account {
        kind: kind as i32,
        source: source as i32,
        name: format!("{kind:?} {source:?} {unit} {project} {year}"),
        project_code: project.into(),
        unit_code: unit.into(),
        year,
        ..Default::default()
    }
}

pub async fn open(client: &mut Accounts, a: pb::Account) -> pb::Account {
    client
        .create_account(pb::CreateAccountRequest {
            account: Some(a),
            request_id: String::new(),
        })
        .await
        .expect("open account")
        .into_inner()
        .account
        .expect("account")
}

/// Opens an account of central investment money.
pub async fn central(
    client: &mut Accounts,
    kind: pb::AccountKind,
    unit: &str,
    project: &str,
    year: i32,
) -> pb::Account {
    open(
        client,
        account(
            kind,
            pb::FundingSource::CentralInvestment,
            unit,
            project,
            year,
        ),
    )
    .await
}

pub fn leg(debit: &pb::Account, credit: &pb::Account, amount: i64) -> pb::Transfer {
    pb::Transfer {
        id: id(),
        debit_account_id: debit.id.clone(),
        credit_account_id: credit.id.clone(),
        amount_vnd: amount,
        value_date: "2024-03-01".into(),
        ..Default::default()
    }
}

pub async fn send(
    client: &mut Transfers,
    legs: Vec<pb::Transfer>,
) -> Result<Vec<pb::Transfer>, tonic::Status> {
    client
        .create_transfers(pb::CreateTransfersRequest { transfers: legs })
        .await
        .map(|r| r.into_inner().transfers)
}

pub async fn balance(client: &mut Accounts, a: &pb::Account, as_of: &str) -> pb::Balance {
    client
        .get_balance(pb::GetBalanceRequest {
            account_id: a.id.clone(),
            as_of: as_of.into(),
        })
        .await
        .expect("balance")
        .into_inner()
        .balance
        .expect("balance")
}

pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
        .unwrap_or_default()
}

pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}
