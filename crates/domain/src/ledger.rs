//! The funding ledger's rules: which accounts money may move between, what a
//! transfer does to the two balances, when it is refused, and how the journal
//! is chained. Double entry in integer VND after TigerBeetle's model: every
//! account keeps debits and credits, each pending and posted; a two-phase
//! transfer is first pending (it reserves the amount), then posted or voided,
//! once. Money flows
//!
//! ```text
//! source ──plan──▶ plan ──allocate──▶ allocation ──disburse──▶ expenditure
//!    └───────────── mobilise ──────────▲   └─ re-allocate ─▶ allocation
//! ```
//!
//! and a reversal moves it back along the same edge. Plans and allocations
//! must not give more than they received: that is checked here, for every
//! leg, against what is posted and what is already reserved.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Amounts are integer đồng.
pub type Vnd = i64;

/// What an account stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccountKind {
    /// Where money comes from: a budget line or a contributor. Its balance
    /// goes negative by what it has provided.
    Source,
    /// A plan approved for a programme, Project, unit and year.
    Plan,
    /// Money given to a unit for a Project and year.
    Allocation,
    /// Money spent: on an activity, a model, support to households.
    Expenditure,
}

impl AccountKind {
    pub const ALL: [AccountKind; 4] = [
        AccountKind::Source,
        AccountKind::Plan,
        AccountKind::Allocation,
        AccountKind::Expenditure,
    ];

    pub fn code(self) -> &'static str {
        match self {
            AccountKind::Source => "source",
            AccountKind::Plan => "plan",
            AccountKind::Allocation => "allocation",
            AccountKind::Expenditure => "expenditure",
        }
    }

    pub fn from_code(code: &str) -> Option<AccountKind> {
        AccountKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Its name in the province's reports.
    pub fn label(self) -> &'static str {
        match self {
            AccountKind::Source => "Nguồn vốn",
            AccountKind::Plan => "Kế hoạch",
            AccountKind::Allocation => "Phân bổ",
            AccountKind::Expenditure => "Chi",
        }
    }

    /// Whether an account of this kind may give only what it received.
    pub fn guarded_by_default(self) -> bool {
        matches!(self, AccountKind::Plan | AccountKind::Allocation)
    }
}

/// Where the programme's money comes from (Decision 90/QĐ-TTg; policy credit
/// runs beside the programme).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FundingSource {
    CentralInvestment,
    CentralRecurrent,
    LocalBudget,
    SocialContribution,
    Enterprise,
    HouseholdContribution,
    PolicyCredit,
}

impl FundingSource {
    pub const ALL: [FundingSource; 7] = [
        FundingSource::CentralInvestment,
        FundingSource::CentralRecurrent,
        FundingSource::LocalBudget,
        FundingSource::SocialContribution,
        FundingSource::Enterprise,
        FundingSource::HouseholdContribution,
        FundingSource::PolicyCredit,
    ];

    pub fn code(self) -> &'static str {
        match self {
            FundingSource::CentralInvestment => "central_investment",
            FundingSource::CentralRecurrent => "central_recurrent",
            FundingSource::LocalBudget => "local_budget",
            FundingSource::SocialContribution => "social_contribution",
            FundingSource::Enterprise => "enterprise",
            FundingSource::HouseholdContribution => "household_contribution",
            FundingSource::PolicyCredit => "policy_credit",
        }
    }

    pub fn from_code(code: &str) -> Option<FundingSource> {
        FundingSource::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Its name in the province's reports.
    pub fn label(self) -> &'static str {
        match self {
            FundingSource::CentralInvestment => "Ngân sách trung ương (đầu tư)",
            FundingSource::CentralRecurrent => "Ngân sách trung ương (sự nghiệp)",
            FundingSource::LocalBudget => "Ngân sách địa phương",
            FundingSource::SocialContribution => "Huy động xã hội",
            FundingSource::Enterprise => "Doanh nghiệp",
            FundingSource::HouseholdContribution => "Người dân đóng góp",
            FundingSource::PolicyCredit => "Tín dụng chính sách",
        }
    }

    /// Central budget, investment or recurrent.
    pub fn is_central(self) -> bool {
        matches!(
            self,
            FundingSource::CentralInvestment | FundingSource::CentralRecurrent
        )
    }

    /// State budget (central or local): what the programme's plan is made of.
    pub fn is_state_budget(self) -> bool {
        self.is_central() || self == FundingSource::LocalBudget
    }

    /// Mobilised from outside the budget: society, enterprises, households.
    pub fn is_mobilised(self) -> bool {
        matches!(
            self,
            FundingSource::SocialContribution
                | FundingSource::Enterprise
                | FundingSource::HouseholdContribution
        )
    }
}

/// Where a transfer stands, as stored: a pending one has reserved its amount
/// on both accounts and is posted or voided later, each at most once; any
/// other is posted when made.
pub mod transfer_state {
    pub const PENDING: &str = "pending";
    pub const POSTED: &str = "posted";
    pub const VOIDED: &str = "voided";
}

/// Why a transfer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the amount must be positive")]
    NotPositive,
    #[error("debit and credit are the same account")]
    SameAccount,
    #[error("holds {credit} money and the debit account {debit}: money keeps its source")]
    Source { debit: String, credit: String },
    #[error(
        "money does not move from a {from} account to a {to} account{}",
        if *reversing { " (reversing)" } else { "" }
    )]
    Flow {
        from: &'static str,
        to: &'static str,
        reversing: bool,
    },
    #[error("the account has {available} VND left to give; {amount} VND asked")]
    Overspend { available: i128, amount: Vnd },
    #[error("the balance would overflow")]
    Overflow,
}

/// Whether money may move from an account of kind `from` to one of kind
/// `to`; a reversal moves it back along an allowed edge.
pub fn flow_allowed(from: AccountKind, to: AccountKind, reversal: bool) -> bool {
    use AccountKind::*;
    let forward = |a, b| {
        matches!(
            (a, b),
            (Source, Plan)
                | (Source, Allocation)
                | (Plan, Allocation)
                | (Allocation, Allocation)
                | (Allocation, Expenditure)
        )
    };
    if reversal {
        forward(to, from)
    } else {
        forward(from, to)
    }
}

/// An account as a transfer's route sees it: which one, its kind, whose
/// money it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    pub id: &'a str,
    pub kind: AccountKind,
    pub source: &'a str,
}

/// Refused when debit and credit are one account.
pub fn two_accounts(debit: &str, credit: &str) -> Result<(), Refusal> {
    if debit == credit {
        Err(Refusal::SameAccount)
    } else {
        Ok(())
    }
}

/// Proof that [`route`] allowed a transfer's edge; [`open`] takes it, so the
/// edge is checked once, before any balance is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    _checked: (),
}

/// Whether money may go from `debit` to `credit` at all, whatever the
/// balances: two accounts, the same source (money keeps its source), and an
/// allowed flow (a reversal runs an allowed flow backwards).
pub fn route(debit: &Route<'_>, credit: &Route<'_>, reversal: bool) -> Result<Routed, Refusal> {
    two_accounts(debit.id, credit.id)?;
    if debit.source != credit.source {
        return Err(Refusal::Source {
            debit: debit.source.to_owned(),
            credit: credit.source.to_owned(),
        });
    }
    if !flow_allowed(debit.kind, credit.kind, reversal) {
        return Err(Refusal::Flow {
            from: debit.kind.code(),
            to: credit.kind.code(),
            reversing: reversal,
        });
    }
    Ok(Routed { _checked: () })
}

/// An account's four running sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    pub debits_pending: Vnd,
    pub debits_posted: Vnd,
    pub credits_pending: Vnd,
    pub credits_posted: Vnd,
}

impl Balance {
    /// What a guarded account can still give: credits posted, less debits
    /// posted and reserved. Incoming pending credits do not count until posted.
    pub fn available(&self) -> i128 {
        i128::from(self.credits_posted)
            - i128::from(self.debits_posted)
            - i128::from(self.debits_pending)
    }

    /// Credits less debits, posted only.
    pub fn net_posted(&self) -> i128 {
        i128::from(self.credits_posted) - i128::from(self.debits_posted)
    }
}

/// An account as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub kind: AccountKind,
    /// Debits may never exceed credits (pending debits included).
    pub guarded: bool,
    pub balance: Balance,
}

fn add(a: Vnd, b: Vnd) -> Result<Vnd, Refusal> {
    a.checked_add(b).ok_or(Refusal::Overflow)
}

/// How a transfer touches the balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Posted at once.
    Single,
    /// Reserved; posted or voided later.
    Pending,
}

/// Checks a new transfer of `amount` from `debit` to `credit`, along an edge
/// [`route`] allowed, against the balances, and applies it to both, or
/// changes neither.
pub fn open(
    debit: &mut Account,
    credit: &mut Account,
    amount: Vnd,
    phase: Phase,
    _routed: Routed,
) -> Result<(), Refusal> {
    if amount <= 0 {
        return Err(Refusal::NotPositive);
    }
    if debit.guarded && debit.balance.available() < i128::from(amount) {
        return Err(Refusal::Overspend {
            available: debit.balance.available().max(0),
            amount,
        });
    }
    let (mut d, mut c) = (debit.balance, credit.balance);
    match phase {
        Phase::Single => {
            d.debits_posted = add(d.debits_posted, amount)?;
            c.credits_posted = add(c.credits_posted, amount)?;
        }
        Phase::Pending => {
            d.debits_pending = add(d.debits_pending, amount)?;
            c.credits_pending = add(c.credits_pending, amount)?;
        }
    }
    debit.balance = d;
    credit.balance = c;
    Ok(())
}

/// Resolves a pending transfer of `amount`: posted moves it from pending to
/// posted on both sides; voided releases it. A reservation was checked when it
/// was made, so resolving cannot overspend.
pub fn resolve(debit: &mut Account, credit: &mut Account, amount: Vnd, post: bool) {
    debit.balance.debits_pending -= amount;
    credit.balance.credits_pending -= amount;
    if post {
        debit.balance.debits_posted += amount;
        credit.balance.credits_posted += amount;
    }
}

/// What a funding summary counts money as, by the edge it moved along. Each
/// is counted on the account it is about (the plan, the allocation), whose
/// unit, Project and year place it in the summary:
///
/// - planned: source → plan, less reversals;
/// - allocated: into an allocation of the unit from outside the unit's own
///   allocations (so re-allocating to a commune is not counted twice), less
///   reversals;
/// - committed: allocation → expenditure still pending;
/// - disbursed: allocation → expenditure posted, less reversals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    Planned,
    Allocated,
    Committed,
    Disbursed,
}

/// The side of a transfer a figure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Debit,
    Credit,
}

/// A transfer (or a group of alike ones) as a summary of one unit sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Movement<'a> {
    pub debit: AccountKind,
    pub credit: AccountKind,
    pub reversal: bool,
    /// As stored: see [`transfer_state`].
    pub state: &'a str,
    /// Whether each account lies within the unit summarised.
    pub debit_inside: bool,
    pub credit_inside: bool,
}

impl Movement<'_> {
    /// What the movement counts for in the unit's summary: the figure, +1
    /// or −1 (a reversal takes back), and the side it is about. `None`: it
    /// moves nothing the unit reports.
    pub fn counted(&self) -> Option<(Figure, i128, Side)> {
        use AccountKind::*;
        let posted = self.state == transfer_state::POSTED;
        let pending = self.state == transfer_state::PENDING;
        let (d_in, c_in) = (self.debit_inside, self.credit_inside);
        match (self.debit, self.credit, self.reversal) {
            (Source, Plan, false) if posted && c_in => Some((Figure::Planned, 1, Side::Credit)),
            (Plan, Source, true) if posted && d_in => Some((Figure::Planned, -1, Side::Debit)),
            (from, Allocation, false) if posted && c_in && !(from == Allocation && d_in) => {
                Some((Figure::Allocated, 1, Side::Credit))
            }
            (Allocation, back, true)
                if posted && d_in && back != Expenditure && !(back == Allocation && c_in) =>
            {
                Some((Figure::Allocated, -1, Side::Debit))
            }
            (Allocation, Expenditure, false) if d_in && pending => {
                Some((Figure::Committed, 1, Side::Debit))
            }
            (Allocation, Expenditure, false) if d_in && posted => {
                Some((Figure::Disbursed, 1, Side::Debit))
            }
            (Expenditure, Allocation, true) if c_in && posted => {
                Some((Figure::Disbursed, -1, Side::Credit))
            }
            _ => None,
        }
    }
}

/// The four figures of a summary line. Sums of `i64` amounts in `i128`
/// cannot overflow; [`Figures::clamped`] reports them as `i64`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub planned: i128,
    pub allocated: i128,
    pub committed: i128,
    pub disbursed: i128,
}

impl Figures {
    /// Adds `amount` (negative: taken back) to `figure`.
    pub fn add(&mut self, figure: Figure, amount: i128) {
        let sum = match figure {
            Figure::Planned => &mut self.planned,
            Figure::Allocated => &mut self.allocated,
            Figure::Committed => &mut self.committed,
            Figure::Disbursed => &mut self.disbursed,
        };
        *sum = sum.saturating_add(amount);
    }

    /// Planned, allocated, committed and disbursed, each at most `i64::MAX`.
    pub fn clamped(&self) -> [i64; 4] {
        [self.planned, self.allocated, self.committed, self.disbursed]
            .map(|v| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX }))
    }
}

/// A unit's funding over a period: the figures in all, by kind of source
/// (state budget, of it central, and mobilised), and broken down by source,
/// Project, year and next-level unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FundingSummary {
    pub total: Figures,
    pub state_budget: Figures,
    pub central: Figures,
    pub mobilised: Figures,
    pub by_source: BTreeMap<FundingSource, Figures>,
    pub by_project: BTreeMap<String, Figures>,
    pub by_year: BTreeMap<i32, Figures>,
    pub by_unit: BTreeMap<String, Figures>,
}

impl FundingSummary {
    /// Counts `amount` (negative: taken back) as `figure` of money from
    /// `source` (`None`: a source code not known here), about `project`,
    /// `year` and the next-level `unit`.
    pub fn count(
        &mut self,
        figure: Figure,
        amount: i128,
        source: Option<FundingSource>,
        project: String,
        year: i32,
        unit: String,
    ) {
        self.total.add(figure, amount);
        if let Some(src) = source {
            self.by_source.entry(src).or_default().add(figure, amount);
            if src.is_state_budget() {
                self.state_budget.add(figure, amount);
            }
            if src.is_central() {
                self.central.add(figure, amount);
            }
            if src.is_mobilised() {
                self.mobilised.add(figure, amount);
            }
        }
        self.by_project
            .entry(project)
            .or_default()
            .add(figure, amount);
        self.by_year.entry(year).or_default().add(figure, amount);
        self.by_unit.entry(unit).or_default().add(figure, amount);
    }
}

/// The hash before the first journal entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// A journal entry's hash: SHA-256 over the previous hash and the entry's
/// canonical bytes, so changing, removing or reordering any entry changes
/// every hash after it.
pub fn chain_hash(previous: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(previous);
    h.update((canonical.len() as u64).to_be_bytes());
    h.update(canonical);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The edge as checked: these tests are about the balances.
    const ROUTED: Routed = Routed { _checked: () };

    fn moved(debit: AccountKind, credit: AccountKind, reversal: bool, state: &str) -> Movement<'_> {
        Movement {
            debit,
            credit,
            reversal,
            state,
            debit_inside: true,
            credit_inside: true,
        }
    }

    #[test]
    fn each_figure_is_the_edge_money_moved_along() {
        use AccountKind::*;
        use transfer_state::{PENDING, POSTED};
        assert_eq!(
            moved(Source, Plan, false, POSTED).counted(),
            Some((Figure::Planned, 1, Side::Credit))
        );
        assert_eq!(
            moved(Plan, Source, true, POSTED).counted(),
            Some((Figure::Planned, -1, Side::Debit))
        );
        assert_eq!(moved(Source, Plan, false, PENDING).counted(), None);
        assert_eq!(
            moved(Allocation, Expenditure, false, PENDING).counted(),
            Some((Figure::Committed, 1, Side::Debit))
        );
        assert_eq!(
            moved(Allocation, Expenditure, false, POSTED).counted(),
            Some((Figure::Disbursed, 1, Side::Debit))
        );
        assert_eq!(
            moved(Expenditure, Allocation, true, POSTED).counted(),
            Some((Figure::Disbursed, -1, Side::Credit))
        );
        // Re-allocating inside the unit is not allocated twice; from outside it is.
        assert_eq!(moved(Allocation, Allocation, false, POSTED).counted(), None);
        let from_above = Movement {
            debit_inside: false,
            ..moved(Allocation, Allocation, false, POSTED)
        };
        assert_eq!(
            from_above.counted(),
            Some((Figure::Allocated, 1, Side::Credit))
        );
        let mut f = Figures::default();
        f.add(Figure::Allocated, i128::from(i64::MAX));
        f.add(Figure::Allocated, 1);
        f.add(Figure::Disbursed, -5);
        assert_eq!(f.clamped(), [0, i64::MAX, 0, -5]);
    }

    #[test]
    fn a_summary_counts_money_by_the_kind_of_source_it_came_from() {
        let mut s = FundingSummary::default();
        let mut add = |source, amount| {
            s.count(
                Figure::Allocated,
                amount,
                source,
                "NTP-SPR.1".into(),
                2024,
                "181".into(),
            )
        };
        add(Some(FundingSource::CentralInvestment), 100);
        add(Some(FundingSource::LocalBudget), 20);
        add(Some(FundingSource::Enterprise), 5);
        add(None, 1);
        assert_eq!(s.total.allocated, 126);
        assert_eq!(s.state_budget.allocated, 120);
        assert_eq!(s.central.allocated, 100);
        assert_eq!(s.mobilised.allocated, 5);
        assert_eq!(
            s.by_source.len(),
            3,
            "an unknown source counts in the total only"
        );
        assert_eq!(s.by_unit["181"].allocated, 126);
        assert_eq!(s.by_year[&2024].allocated, 126);
    }

    #[test]
    fn a_route_needs_two_accounts_one_source_and_an_allowed_flow() {
        let at = |id, kind, source| Route { id, kind, source };
        let plan = at("p", AccountKind::Plan, "central_investment");
        let alloc = at("a", AccountKind::Allocation, "central_investment");
        let local = at("l", AccountKind::Allocation, "local_budget");
        assert_eq!(route(&plan, &alloc, false), Ok(ROUTED));
        assert_eq!(route(&alloc, &alloc, false), Err(Refusal::SameAccount));
        assert_eq!(
            route(&plan, &local, false).map_err(|r| r.to_string()),
            Err("holds local_budget money and the debit account central_investment: money keeps its source".into())
        );
        assert_eq!(
            route(&alloc, &plan, true),
            Ok(ROUTED),
            "a reversal runs back"
        );
        assert_eq!(
            route(&alloc, &plan, false).map_err(|r| r.to_string()),
            Err("money does not move from a allocation account to a plan account".into())
        );
        assert!(route(&plan, &alloc, true).is_err_and(|r| r.to_string().ends_with("(reversing)")));
    }

    fn account(kind: AccountKind) -> Account {
        Account {
            kind,
            guarded: kind.guarded_by_default(),
            balance: Balance::default(),
        }
    }

    #[test]
    fn money_flows_down_the_programme_and_back_only_by_reversal() {
        use AccountKind::*;
        assert!(flow_allowed(Source, Plan, false));
        assert!(flow_allowed(Plan, Allocation, false));
        assert!(flow_allowed(Allocation, Expenditure, false));
        assert!(flow_allowed(Source, Allocation, false));
        assert!(!flow_allowed(Expenditure, Allocation, false));
        assert!(flow_allowed(Expenditure, Allocation, true));
        assert!(!flow_allowed(Allocation, Expenditure, true));
        assert!(!flow_allowed(Plan, Source, false));
        assert!(!flow_allowed(Source, Expenditure, false));
    }

    #[test]
    fn an_allocation_gives_exactly_what_it_received_and_no_more() {
        let mut source = account(AccountKind::Source);
        let mut alloc = account(AccountKind::Allocation);
        let mut spend = account(AccountKind::Expenditure);
        open(&mut source, &mut alloc, 100, Phase::Single, ROUTED).expect("allocate");
        open(&mut alloc, &mut spend, 60, Phase::Pending, ROUTED).expect("commit");
        // 40 left: the reservation counts.
        assert_eq!(
            open(&mut alloc, &mut spend, 41, Phase::Single, ROUTED),
            Err(Refusal::Overspend {
                available: 40,
                amount: 41
            })
        );
        open(&mut alloc, &mut spend, 40, Phase::Single, ROUTED).expect("exactly the rest");
        resolve(&mut alloc, &mut spend, 60, true);
        assert_eq!(alloc.balance.available(), 0);
        assert_eq!(alloc.balance.debits_posted, 100);
        assert_eq!(spend.balance.credits_posted, 100);
        // The unguarded source went negative by what it provided.
        assert_eq!(source.balance.net_posted(), -100);
    }

    #[test]
    fn a_refused_transfer_changes_neither_balance() {
        let mut alloc = account(AccountKind::Allocation);
        let mut spend = account(AccountKind::Expenditure);
        let before = (alloc, spend);
        assert!(open(&mut alloc, &mut spend, 1, Phase::Single, ROUTED).is_err());
        assert!(open(&mut alloc, &mut spend, 0, Phase::Single, ROUTED).is_err());
        assert_eq!((alloc, spend), before);
        let mut big = account(AccountKind::Source);
        big.balance.debits_posted = Vnd::MAX;
        let mut plan = account(AccountKind::Plan);
        assert_eq!(
            open(&mut big, &mut plan, 1, Phase::Single, ROUTED),
            Err(Refusal::Overflow)
        );
        assert_eq!(plan.balance, Balance::default());
    }

    #[test]
    fn the_chain_depends_on_every_byte_and_the_order() {
        let a = chain_hash(&GENESIS, b"entry one");
        let b = chain_hash(&a, b"entry two");
        assert_ne!(a, GENESIS);
        assert_ne!(chain_hash(&GENESIS, b"entry onE"), a);
        assert_ne!(
            chain_hash(&chain_hash(&GENESIS, b"entry two"), b"entry one"),
            b
        );
        // Lengths are hashed: moving a byte across the boundary shows.
        assert_ne!(chain_hash(&GENESIS, b"ab"), chain_hash(&GENESIS, b"a"));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Open {
            from: usize,
            to: usize,
            amount: Vnd,
            pending: bool,
        },
        Resolve {
            which: usize,
            post: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..6usize, 0..6usize, 1..1_000i64, any::<bool>()).prop_map(
                |(from, to, amount, pending)| Op::Open {
                    from,
                    to,
                    amount,
                    pending
                }
            ),
            (0..64usize, any::<bool>()).prop_map(|(which, post)| Op::Resolve { which, post }),
        ]
    }

    proptest! {
        /// Whatever is tried, the books balance and no guarded account gives
        /// more than it received.
        #[test]
        fn no_sequence_breaks_an_invariant(ops in prop::collection::vec(op(), 1..200)) {
            use AccountKind::*;
            let mut accounts: Vec<Account> = [Source, Source, Plan, Allocation, Allocation, Expenditure]
                .into_iter()
                .map(account)
                .collect();
            let mut pending: Vec<Option<(usize, usize, Vnd)>> = vec![];
            for op in ops {
                match op {
                    Op::Open { from, to, amount, pending: p } => {
                        if from == to {
                            continue;
                        }
                        let (mut d, mut c) = (accounts[from], accounts[to]);
                        let phase = if p { Phase::Pending } else { Phase::Single };
                        if open(&mut d, &mut c, amount, phase, ROUTED).is_ok() {
                            accounts[from] = d;
                            accounts[to] = c;
                            if p {
                                pending.push(Some((from, to, amount)));
                            }
                        } else {
                            prop_assert_eq!((d, c), (accounts[from], accounts[to]));
                        }
                    }
                    Op::Resolve { which, post } => {
                        if let Some(slot) = pending.get_mut(which)
                            && let Some((from, to, amount)) = slot.take()
                        {
                            let (mut d, mut c) = (accounts[from], accounts[to]);
                            resolve(&mut d, &mut c, amount, post);
                            accounts[from] = d;
                            accounts[to] = c;
                        }
                    }
                }
                let sum = |f: fn(&Balance) -> Vnd| accounts.iter().map(|a| i128::from(f(&a.balance))).sum::<i128>();
                prop_assert_eq!(sum(|b| b.debits_posted), sum(|b| b.credits_posted));
                prop_assert_eq!(sum(|b| b.debits_pending), sum(|b| b.credits_pending));
                for a in &accounts {
                    if a.guarded {
                        prop_assert!(a.balance.available() >= 0);
                        prop_assert!(a.balance.net_posted() >= 0);
                    }
                    prop_assert!(a.balance.debits_pending >= 0 && a.balance.credits_pending >= 0);
                }
            }
        }
    }
}
