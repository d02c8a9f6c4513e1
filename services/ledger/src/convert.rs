//! Between the ledger's rows and its protobuf messages.

use sustain_domain::ledger::{
    Account, AccountKind, Balance, Figures, FundingSource, FundingSummary,
};
use sustain_domain::poverty::Rate;
use sustain_platform::api::timestamp;
use sustain_proto::ledger::v1 as pb;

use crate::model::{account, transfer};
use sustain_domain::ledger::transfer_state::{PENDING, POSTED, VOIDED};

pub fn kind_to_proto(kind: AccountKind) -> pb::AccountKind {
    match kind {
        AccountKind::Source => pb::AccountKind::Source,
        AccountKind::Plan => pb::AccountKind::Plan,
        AccountKind::Allocation => pb::AccountKind::Allocation,
        AccountKind::Expenditure => pb::AccountKind::Expenditure,
    }
}

pub fn kind_from_proto(kind: pb::AccountKind) -> Option<AccountKind> {
    match kind {
        pb::AccountKind::Source => Some(AccountKind::Source),
        pb::AccountKind::Plan => Some(AccountKind::Plan),
        pb::AccountKind::Allocation => Some(AccountKind::Allocation),
        pb::AccountKind::Expenditure => Some(AccountKind::Expenditure),
        pb::AccountKind::Unspecified => None,
    }
}

pub fn source_to_proto(source: FundingSource) -> pb::FundingSource {
    match source {
        FundingSource::CentralInvestment => pb::FundingSource::CentralInvestment,
        FundingSource::CentralRecurrent => pb::FundingSource::CentralRecurrent,
        FundingSource::LocalBudget => pb::FundingSource::LocalBudget,
        FundingSource::SocialContribution => pb::FundingSource::SocialContribution,
        FundingSource::Enterprise => pb::FundingSource::Enterprise,
        FundingSource::HouseholdContribution => pb::FundingSource::HouseholdContribution,
        FundingSource::PolicyCredit => pb::FundingSource::PolicyCredit,
    }
}

pub fn source_from_proto(source: pb::FundingSource) -> Option<FundingSource> {
    FundingSource::ALL
        .into_iter()
        .find(|s| source_to_proto(*s) == source)
}

pub fn balance_to_proto(b: &Balance) -> pb::Balance {
    let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
    pb::Balance {
        debits_pending: b.debits_pending,
        debits_posted: b.debits_posted,
        credits_pending: b.credits_pending,
        credits_posted: b.credits_posted,
        net_posted: clamp(b.net_posted()),
        available: clamp(b.available()),
    }
}

pub fn balance_of(a: &account::Model) -> Balance {
    Balance {
        debits_pending: a.debits_pending,
        debits_posted: a.debits_posted,
        credits_pending: a.credits_pending,
        credits_posted: a.credits_posted,
    }
}

/// The account as the domain rules see it; `None` for a kind no version of
/// this service wrote.
pub fn rules_of(a: &account::Model) -> Option<Account> {
    Some(Account {
        kind: AccountKind::from_code(&a.kind)?,
        guarded: a.guarded,
        balance: balance_of(a),
    })
}

pub fn account_to_proto(a: &account::Model) -> pb::Account {
    pb::Account {
        id: a.id.clone(),
        kind: AccountKind::from_code(&a.kind).map_or(pb::AccountKind::Unspecified, kind_to_proto)
            as i32,
        source: FundingSource::from_code(&a.source)
            .map_or(pb::FundingSource::Unspecified, source_to_proto) as i32,
        name: a.name.clone(),
        project_code: a.project_code.clone(),
        unit_code: a.unit_code.clone(),
        year: a.year,
        must_not_overspend: a.guarded,
        balance: Some(balance_to_proto(&balance_of(a))),
        create_time: Some(timestamp(a.created_at)),
        purpose: purpose_to_proto(&a.purpose) as i32,
        reference_id: a.reference_id.clone(),
    }
}

pub const PURPOSES: [(&str, pb::SpendingPurpose); 3] = [
    ("activity", pb::SpendingPurpose::Activity),
    ("model", pb::SpendingPurpose::Model),
    ("household_support", pb::SpendingPurpose::HouseholdSupport),
];

pub fn purpose_to_proto(code: &str) -> pb::SpendingPurpose {
    PURPOSES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(pb::SpendingPurpose::Unspecified, |(_, p)| *p)
}

pub fn purpose_code(p: pb::SpendingPurpose) -> &'static str {
    PURPOSES
        .iter()
        .find(|(_, q)| *q == p)
        .map_or("", |(c, _)| c)
}

pub fn state_to_proto(state: &str) -> pb::TransferState {
    match state {
        PENDING => pb::TransferState::Pending,
        POSTED => pb::TransferState::Posted,
        VOIDED => pb::TransferState::Voided,
        _ => pb::TransferState::Unspecified,
    }
}

pub fn transfer_to_proto(t: &transfer::Model) -> pb::Transfer {
    pb::Transfer {
        id: t.id.clone(),
        debit_account_id: t.debit_account_id.clone(),
        credit_account_id: t.credit_account_id.clone(),
        amount_vnd: t.amount,
        pending: t.pending,
        reverses_id: t.reverses_id.clone().unwrap_or_default(),
        value_date: t.value_date.to_string(),
        memo: t.memo.clone(),
        state: state_to_proto(&t.state) as i32,
        batch_id: t.batch_id.clone(),
        leg: t.leg,
        sequence: t.sequence,
        create_time: Some(timestamp(t.created_at)),
        resolved_on: t.resolved_on.map(|d| d.to_string()).unwrap_or_default(),
        resolve_sequence: t.resolve_sequence.unwrap_or_default(),
    }
}

/// The four figures as reported, with the share of the allocation disbursed.
fn figures_to_proto(f: &Figures) -> pb::FundingFigures {
    let [planned, allocated, committed, disbursed] = f.clamped();
    pb::FundingFigures {
        planned_vnd: planned,
        allocated_vnd: allocated,
        committed_vnd: committed,
        disbursed_vnd: disbursed,
        disbursement_percent: if allocated > 0 {
            Rate::new(disbursed, allocated).to_string()
        } else {
            String::new()
        },
    }
}

/// The summary of `unit` over `from..=to`.
pub fn summary_to_proto(unit: &str, from: i32, to: i32, s: FundingSummary) -> pb::FundingSummary {
    pb::FundingSummary {
        unit_code: unit.to_owned(),
        from_year: from,
        to_year: to,
        total: Some(figures_to_proto(&s.total)),
        state_budget: Some(figures_to_proto(&s.state_budget)),
        central_budget: Some(figures_to_proto(&s.central)),
        mobilised: Some(figures_to_proto(&s.mobilised)),
        by_source: s
            .by_source
            .into_iter()
            .map(|(src, f)| pb::SourceFigures {
                source: source_to_proto(src) as i32,
                figures: Some(figures_to_proto(&f)),
            })
            .collect(),
        by_project: s
            .by_project
            .into_iter()
            .map(|(project_code, f)| pb::ProjectFigures {
                project_code,
                figures: Some(figures_to_proto(&f)),
            })
            .collect(),
        by_year: s
            .by_year
            .into_iter()
            .map(|(year, f)| pb::YearFigures {
                year,
                figures: Some(figures_to_proto(&f)),
            })
            .collect(),
        by_unit: s
            .by_unit
            .into_iter()
            .map(|(unit_code, f)| pb::UnitFigures {
                unit_code,
                figures: Some(figures_to_proto(&f)),
            })
            .collect(),
    }
}
