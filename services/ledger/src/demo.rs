//! The money side of the Lạng Sơn demo, written through the running ledger's
//! own API: the 2021–2025 plan of 1,149,180 million VND (844,520 million
//! central, the rest local) split over Projects 1–7 and years, allocated to
//! the province's eleven districts and disbursed, and 2,822,650 million VND
//! of social contributions mobilised beside the plan (domain brief §1: "more
//! than 844 billion", "more than 2,822 billion"; the demo picks exact
//! figures above them). Account request ids and transfer ids derive from the
//! seed, so running it twice writes nothing new. It ends by comparing the
//! province's funding summary with the report and verifying the chain.

use anyhow::{Context, ensure};
use sha2::{Digest, Sha256};
use sustain_platform::auth::BearerToken;
use sustain_proto::ledger::v1 as pb;
use sustain_proto::ledger::v1::account_service_client::AccountServiceClient;
use sustain_proto::ledger::v1::chain_service_client::ChainServiceClient;
use sustain_proto::ledger::v1::funding_service_client::FundingServiceClient;
use sustain_proto::ledger::v1::transfer_service_client::TransferServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use sustain_domain::lang_son;

pub const DEFAULT_SEED: u64 = 2021;
const PROVINCE: &str = lang_son::PROVINCE;
const MILLION: i64 = 1_000_000;

/// The report's figures, in million VND.
pub const PLAN_MILLION: i64 = lang_son::PLAN_MILLION;
pub const CENTRAL_MILLION: i64 = lang_son::CENTRAL_MILLION;
pub const MOBILISED_MILLION: i64 = lang_son::MOBILISED_MILLION;
/// Of the central budget, investment (the rest recurrent).
const CENTRAL_INVESTMENT_MILLION: i64 = 506_712;

/// Lạng Sơn's districts before the 2025 reform.
pub const DISTRICTS: [&str; 11] = [
    "178", "180", "181", "182", "183", "184", "185", "186", "187", "188", "189",
];
const YEARS: [i32; 5] = [2021, 2022, 2023, 2024, 2025];
/// Shares of the plan by year (2021 was the programme's late start).
const YEAR_WEIGHTS: [i64; 5] = [6, 22, 24, 24, 24];
/// Shares by Project 1–7: infrastructure first, then production and housing.
const PROJECT_WEIGHTS: [i64; 7] = [46, 8, 13, 9, 10, 5, 9];
/// Shares by district, roughly by their poor households.
const DISTRICT_WEIGHTS: [i64; 11] = [3, 12, 14, 9, 8, 9, 10, 8, 8, 12, 7];

/// Splits `total` by `weights`, the last share taking the remainder: the
/// parts always add up to the total exactly.
pub fn split(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i64 = weights.iter().sum();
    let mut parts: Vec<i64> = weights
        .iter()
        .map(|w| (i128::from(total) * i128::from(*w) / i128::from(sum.max(1))) as i64)
        .collect();
    let given: i64 = parts.iter().sum();
    if let Some(last) = parts.last_mut() {
        *last += total - given;
    }
    parts
}

type Authed = InterceptedService<Channel, BearerToken>;

/// The ledger's clients, authenticated with a finance token.
#[derive(Clone)]
pub struct Clients {
    accounts: AccountServiceClient<Authed>,
    transfers: TransferServiceClient<Authed>,
    chain: ChainServiceClient<Authed>,
    funding: FundingServiceClient<Authed>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ledger clients")
    }
}

impl Clients {
    pub fn new(ledger: Channel, token: &str) -> anyhow::Result<Clients> {
        let bearer = BearerToken::new(token)?;
        let authed = InterceptedService::new(ledger, bearer);
        Ok(Clients {
            accounts: AccountServiceClient::new(authed.clone()),
            transfers: TransferServiceClient::new(authed.clone()),
            chain: ChainServiceClient::new(authed.clone()),
            funding: FundingServiceClient::new(authed),
        })
    }
}

/// A transfer id fixed by the seed and a name.
fn fixed_id(seed: u64, name: &str) -> String {
    let digest = Sha256::digest(format!("sustain-demo-{seed}-{name}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// An account's name as the province writes it: "Phân bổ — Ngân sách trung
/// ương (đầu tư) — Huyện Bình Gia — Dự án 1 — 2023" (a source: its kind,
/// budget line and unit only).
fn account_name(
    kind: pb::AccountKind,
    source: pb::FundingSource,
    unit: &str,
    project: &str,
    year: i32,
) -> String {
    let kind = crate::convert::kind_from_proto(kind).map_or("Tài khoản", |k| k.label());
    let source = crate::convert::source_from_proto(source).map_or("Nguồn khác", |s| s.label());
    let versions = sustain_domain::admin::catalog().versions(unit);
    let unit = versions.last().map_or(unit, |u| u.name.as_str());
    let project = match project.strip_prefix("NTP-SPR") {
        Some("") => "Chương trình".to_owned(),
        Some(n) => format!("Dự án {}", n.trim_start_matches('.')),
        None => project.to_owned(),
    };
    [kind, source, unit, &project, &year.to_string()]
        .into_iter()
        .filter(|part| !part.is_empty() && *part != "0")
        .collect::<Vec<_>>()
        .join(" — ")
}

struct Writer<'a> {
    clients: &'a mut Clients,
    bar: &'a sustain_platform::progress::Progress,
    seed: u64,
    accounts: usize,
    transfers: usize,
    pending: Vec<pb::Transfer>,
}

impl Writer<'_> {
    async fn open(
        &mut self,
        kind: pb::AccountKind,
        source: pb::FundingSource,
        unit: &str,
        project: &str,
        year: i32,
    ) -> anyhow::Result<String> {
        // The retry key keeps the words of the first demos, so a demo run
        // again over their data still finds its accounts.
        let key = format!("{kind:?} {source:?} {unit} {project} {year}");
        let name = account_name(kind, source, unit, project, year);
        let account = pb::Account {
            kind: kind as i32,
            source: source as i32,
            name: name.clone(),
            project_code: project.into(),
            unit_code: unit.into(),
            year,
            ..Default::default()
        };
        let made = self
            .clients
            .accounts
            .create_account(pb::CreateAccountRequest {
                account: Some(account),
                request_id: format!("demo-{}-{key}", self.seed),
            })
            .await
            .with_context(|| format!("opening {name}"))?
            .into_inner()
            .account
            .context("no account returned")?;
        self.accounts += 1;
        self.bar.inc(1);
        Ok(made.id)
    }

    /// Queues a transfer; [`Writer::flush`] sends the queue as one batch.
    fn queue(
        &mut self,
        name: &str,
        debit: &str,
        credit: &str,
        amount: i64,
        date: &str,
        pending: bool,
    ) {
        if amount <= 0 {
            return;
        }
        self.pending.push(pb::Transfer {
            id: fixed_id(self.seed, name),
            debit_account_id: debit.into(),
            credit_account_id: credit.into(),
            amount_vnd: amount,
            pending,
            value_date: date.into(),
            memo: name.into(),
            ..Default::default()
        });
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        for chunk in std::mem::take(&mut self.pending).chunks(500) {
            self.clients
                .transfers
                .create_transfers(pb::CreateTransfersRequest {
                    transfers: chunk.to_vec(),
                })
                .await
                .context("making transfers")?;
            self.transfers += chunk.len();
        }
        Ok(())
    }
}

/// What the demo wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    pub accounts: usize,
    pub transfers: usize,
}

/// Writes the demo's money. Dates: plans on 15 January of their year,
/// allocations on 1 March, disbursements on 15 December (2025's still
/// pending in part: committed, not yet paid).
///
/// `scale` divides every amount, as the other demos divide their counts (1:
/// the province's own money); a scaled demo's transfers are its own, never
/// a retry of another scale's.
///
/// With `progress`, shows the accounts opened of those planned on standard
/// error (opening them is the slow part; transfers go in batches).
pub async fn load(
    clients: &mut Clients,
    seed: u64,
    scale: u32,
    progress: bool,
) -> anyhow::Result<Report> {
    let bar = sustain_platform::progress::Progress::new(
        "ledger accounts",
        planned_accounts() as u64,
        progress,
    );
    let written = write_all(clients, seed, scale, &bar).await;
    bar.finish();
    written
}

/// The accounts the demo opens: a source per budget line, a plan per year
/// and Project, an allocation and an expenditure per district of each; the
/// social source and its district accounts per year.
pub fn planned_accounts() -> usize {
    let per_line = 1 + YEARS.len() * PROJECT_WEIGHTS.len() * (1 + DISTRICTS.len() * 2);
    3 * per_line + 1 + YEARS.len() * DISTRICTS.len() * 2
}

async fn write_all(
    clients: &mut Clients,
    seed: u64,
    scale: u32,
    bar: &sustain_platform::progress::Progress,
) -> anyhow::Result<Report> {
    use pb::AccountKind::{Allocation, Expenditure, Plan, Source};
    use pb::FundingSource::{CentralInvestment, CentralRecurrent, LocalBudget, SocialContribution};
    let scale = i64::from(scale.max(1));
    let mut w = Writer {
        clients,
        bar,
        seed: seed.wrapping_add(((scale - 1) as u64) << 32),
        accounts: 0,
        transfers: 0,
        pending: vec![],
    };
    let budgets = [
        (CentralInvestment, CENTRAL_INVESTMENT_MILLION),
        (
            CentralRecurrent,
            CENTRAL_MILLION - CENTRAL_INVESTMENT_MILLION,
        ),
        (LocalBudget, PLAN_MILLION - CENTRAL_MILLION),
    ];
    for (source, million) in budgets {
        let origin = w.open(Source, source, PROVINCE, "", 0).await?;
        for (y, by_year) in YEARS
            .iter()
            .zip(split(million * MILLION / scale, &YEAR_WEIGHTS))
        {
            for (p, by_project) in split(by_year, &PROJECT_WEIGHTS).into_iter().enumerate() {
                let project = format!("NTP-SPR.{}", p + 1);
                let plan = w.open(Plan, source, PROVINCE, &project, *y).await?;
                let tag = format!("{source:?}-{project}-{y}");
                w.queue(
                    &format!("plan {tag}"),
                    &origin,
                    &plan,
                    by_project,
                    &format!("{y}-01-15"),
                    false,
                );
                for (d, amount) in DISTRICTS.iter().zip(split(by_project, &DISTRICT_WEIGHTS)) {
                    let allocation = w.open(Allocation, source, d, &project, *y).await?;
                    let spent = w.open(Expenditure, source, d, &project, *y).await?;
                    let tag = format!("{tag}-{d}");
                    w.queue(
                        &format!("allocate {tag}"),
                        &plan,
                        &allocation,
                        amount,
                        &format!("{y}-03-01"),
                        false,
                    );
                    // Paid out in full but a sliver; 2025: four fifths paid, a tenth committed.
                    let (paid, committed) = if *y < 2025 {
                        (amount - amount / 50, 0)
                    } else {
                        (amount / 5 * 4, amount / 10)
                    };
                    let date = format!("{y}-12-15");
                    w.queue(
                        &format!("disburse {tag}"),
                        &allocation,
                        &spent,
                        paid,
                        &date,
                        false,
                    );
                    w.queue(
                        &format!("commit {tag}"),
                        &allocation,
                        &spent,
                        committed,
                        &date,
                        true,
                    );
                }
            }
            w.flush().await?;
        }
    }
    // Social contributions, mobilised straight to the districts.
    let social = w.open(Source, SocialContribution, PROVINCE, "", 0).await?;
    for (y, by_year) in YEARS
        .iter()
        .zip(split(MOBILISED_MILLION * MILLION / scale, &YEAR_WEIGHTS))
    {
        for (d, amount) in DISTRICTS.iter().zip(split(by_year, &DISTRICT_WEIGHTS)) {
            let allocation = w
                .open(Allocation, SocialContribution, d, "NTP-SPR", *y)
                .await?;
            let spent = w
                .open(Expenditure, SocialContribution, d, "NTP-SPR", *y)
                .await?;
            let tag = format!("social-{y}-{d}");
            w.queue(
                &format!("mobilise {tag}"),
                &social,
                &allocation,
                amount,
                &format!("{y}-06-01"),
                false,
            );
            w.queue(
                &format!("spend {tag}"),
                &allocation,
                &spent,
                amount - amount / 20,
                &format!("{y}-12-15"),
                false,
            );
        }
        w.flush().await?;
    }
    Ok(Report {
        accounts: w.accounts,
        transfers: w.transfers,
    })
}

/// The province's funding summary for 2021–2025 beside the report divided
/// by `scale`: (label, reported, found) in million VND, and whether the
/// chain verified.
pub async fn compare(
    clients: &mut Clients,
    scale: u32,
) -> anyhow::Result<(Vec<(&'static str, i64, i64)>, bool)> {
    let scale = i64::from(scale.max(1));
    let summary = clients
        .funding
        .get_funding_summary(pb::GetFundingSummaryRequest {
            unit_code: PROVINCE.into(),
            from_year: 2021,
            to_year: 2025,
        })
        .await?
        .into_inner()
        .summary
        .context("no summary")?;
    let m = |f: Option<pb::FundingFigures>, pick: fn(&pb::FundingFigures) -> i64| {
        f.as_ref().map_or(0, pick) / MILLION
    };
    let rows = vec![
        (
            "planned, million VND",
            PLAN_MILLION / scale,
            m(summary.total.clone(), |f| f.planned_vnd),
        ),
        (
            "of which central budget",
            CENTRAL_MILLION / scale,
            m(summary.central_budget.clone(), |f| f.planned_vnd),
        ),
        (
            "of which local budget",
            (PLAN_MILLION - CENTRAL_MILLION) / scale,
            {
                let state = m(summary.state_budget.clone(), |f| f.planned_vnd);
                state - m(summary.central_budget.clone(), |f| f.planned_vnd)
            },
        ),
        (
            "mobilised beside the plan",
            MOBILISED_MILLION / scale,
            m(summary.mobilised.clone(), |f| f.allocated_vnd),
        ),
    ];
    let verified = clients
        .chain
        .verify_chain(pb::VerifyChainRequest::default())
        .await?
        .into_inner();
    ensure!(summary.total.is_some(), "the summary has no totals");
    Ok((rows, verified.valid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_add_up_exactly() {
        for total in [0, 1, 7, 1_149_180 * MILLION, 2_822_650 * MILLION + 3] {
            for weights in [&YEAR_WEIGHTS[..], &PROJECT_WEIGHTS, &DISTRICT_WEIGHTS] {
                let parts = split(total, weights);
                assert_eq!(parts.len(), weights.len());
                assert_eq!(parts.iter().sum::<i64>(), total);
                assert!(parts.iter().all(|p| *p >= 0));
            }
        }
        assert_eq!(split(100, &[1, 1, 2]), [25, 25, 50]);
    }

    #[test]
    fn ids_are_fixed_by_seed_and_name() {
        assert_eq!(fixed_id(1, "a"), fixed_id(1, "a"));
        assert_ne!(fixed_id(1, "a"), fixed_id(2, "a"));
        assert!(uuid::Uuid::parse_str(&fixed_id(1, "a")).is_ok());
    }
}

#[cfg(test)]
mod names {
    use super::*;

    #[test]
    fn accounts_are_named_in_the_provinces_words() {
        assert_eq!(
            account_name(
                pb::AccountKind::Allocation,
                pb::FundingSource::CentralInvestment,
                "181",
                "NTP-SPR.1",
                2023
            ),
            "Phân bổ — Ngân sách trung ương (đầu tư) — Huyện Bình Gia — Dự án 1 — 2023"
        );
        assert_eq!(
            account_name(
                pb::AccountKind::Source,
                pb::FundingSource::SocialContribution,
                "20",
                "",
                0
            ),
            "Nguồn vốn — Huy động xã hội — Tỉnh Lạng Sơn"
        );
    }
}
