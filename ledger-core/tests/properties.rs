//! Property tests: random sequences of operations (deposits, transfers, FX, holds, payouts and
//! deposits with random outcomes, reversals, freezes, time passing), submitted in random
//! batches through the in-memory store, keep every invariant of product.md after each batch:
//!
//! - every entry balances per currency, and every currency sums to zero over all accounts;
//! - every stored balance equals the sum of its postings, running balances chain, and the
//!   pending figure equals the open holds;
//! - no account is below its floor (zero, or minus its overdraft limit);
//! - payout clearing holds exactly the funds of in-flight payouts;
//! - a batch whose commands were all rejected changed nothing;
//! - the point-in-time balance at any past batch equals the balance seen then.
//!
//! A failing case prints its seed and shrinks to a minimal sequence; proptest keeps failing seeds
//! in `proptest-regressions/` so they are replayed on every later run.

use std::sync::Arc;

use ledger_core::ports::Submission;
use ledger_core::recon::{Snapshot, reconcile};
use ledger_core::{
    AccountId, AccountKind, AccountStatus, AdvancePayout, Balance, CaptureHold, Command, CreateHold, CreatePayout,
    Currency, Deposit, EntryId, Exchange, FxRate, HoldId, IdGenerator, Ledger, LedgerStore, ManualClock, MemoryStore,
    Micros, NewAccount, Overdraft, PayoutDirection, PayoutId, PayoutStatus, Pricing, Reverse, SequentialIds, Timestamp,
    Transfer, UserId, Uuid,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Deposit { to: usize, cents: i64 },
    Transfer { from: usize, to: usize, same_currency: bool, cents: i64 },
    Exchange { from: usize, to: usize, cents: i64, rate: (i64, u32) },
    Hold { from: usize, to: usize, same_currency: bool, cents: i64, expires_in_secs: Option<u8> },
    Capture { hold: usize, cents: Option<i64> },
    Void { hold: usize },
    Expire { hold: usize },
    Payout { account: usize, cents: i64, inbound: bool },
    Advance { payout: usize, to: usize },
    Reverse { entry: usize },
    SetStatus { account: usize, status: u8 },
    Tick { secs: u8 },
}

/// Customer accounts: (currency, overdraft limit in whole units).
const CUSTOMERS: [(Currency, i64); 6] = [
    (Currency::USD, 0),
    (Currency::USD, 0),
    (Currency::USD, 25),
    (Currency::EUR, 0),
    (Currency::EUR, 0),
    (Currency::JPY, 0),
];

fn op() -> impl Strategy<Value = Op> {
    let account = 0..CUSTOMERS.len();
    let cents = prop_oneof![8 => 1i64..20_000, 1 => -2i64..=0, 1 => Just(i64::MAX / 200)];
    let pick = 0usize..64;
    prop_oneof![
        3 => (account.clone(), cents.clone()).prop_map(|(to, cents)| Op::Deposit { to, cents }),
        6 => (account.clone(), account.clone(), prop::bool::weighted(0.8), cents.clone())
            .prop_map(|(from, to, same_currency, cents)| Op::Transfer { from, to, same_currency, cents }),
        3 => (account.clone(), account.clone(), cents.clone(), (1i64..5_000_000, 0u32..=6))
            .prop_map(|(from, to, cents, rate)| Op::Exchange { from, to, cents, rate }),
        3 => (account.clone(), account.clone(), prop::bool::weighted(0.8), cents.clone(), proptest::option::of(0u8..30))
            .prop_map(|(from, to, same_currency, cents, expires_in_secs)| Op::Hold { from, to, same_currency, cents, expires_in_secs }),
        2 => (pick.clone(), proptest::option::of(-1i64..15_000)).prop_map(|(hold, cents)| Op::Capture { hold, cents }),
        1 => pick.clone().prop_map(|hold| Op::Void { hold }),
        1 => pick.clone().prop_map(|hold| Op::Expire { hold }),
        3 => (account.clone(), cents, any::<bool>()).prop_map(|(account, cents, inbound)| Op::Payout { account, cents, inbound }),
        5 => (pick.clone(), 0usize..PayoutStatus::ALL.len()).prop_map(|(payout, to)| Op::Advance { payout, to }),
        2 => pick.prop_map(|entry| Op::Reverse { entry }),
        1 => (account, prop_oneof![3 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)])
            .prop_map(|(account, status)| Op::SetStatus { account, status }),
        1 => (1u8..20).prop_map(|secs| Op::Tick { secs }),
    ]
}

/// The world a run acts on, and what it has made so far (for ops that refer back).
struct World {
    ledger: Ledger<MemoryStore>,
    clock: Arc<ManualClock>,
    ids: Arc<SequentialIds>,
    customers: Vec<AccountId>,
    holds: Vec<HoldId>,
    payouts: Vec<PayoutId>,
    entries: Vec<EntryId>,
}

/// The `to` account for a two-party op: mostly one of the same currency as `from` (other than
/// `from` itself when there is one), so that most such ops can succeed.
fn partner(from: usize, to: usize, same_currency: bool) -> usize {
    if !same_currency {
        return to;
    }
    let peers: Vec<usize> =
        (0..CUSTOMERS.len()).filter(|i| CUSTOMERS[*i].0 == CUSTOMERS[from].0 && *i != from).collect();
    if peers.is_empty() { to } else { peers[to % peers.len()] }
}

fn pick<T: Copy>(items: &[T], index: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[index % items.len()])
}

impl World {
    async fn new() -> World {
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_800_000_000)));
        let ids = Arc::new(SequentialIds::default());
        let ledger = Ledger::new(Arc::new(MemoryStore::new()), clock.clone(), ids.clone());
        for currency in [Currency::USD, Currency::EUR, Currency::JPY] {
            ledger.open_system_accounts(currency).await.unwrap();
        }
        let mut customers = Vec::new();
        for (i, (currency, limit)) in CUSTOMERS.iter().enumerate() {
            let owner = UserId(Uuid::from_u128(0xC0_0000 + i as u128));
            let account = NewAccount {
                overdraft: Overdraft::Limit(Micros::from_units(*limit).unwrap()),
                ..NewAccount::customer(ledger.new_id(), owner, *currency)
            };
            customers.push(ledger.store().open_account(account, clock.now_ts()).await.unwrap().id);
        }
        World { ledger, clock, ids, customers, holds: vec![], payouts: vec![], entries: vec![] }
    }

    fn id<T: From<Uuid>>(&self) -> T {
        T::from(self.ids.next_id())
    }

    async fn account(&self, index: usize) -> ledger_core::Account {
        self.ledger.store().account(self.customers[index]).await.unwrap().unwrap()
    }

    async fn system(&self, kind: AccountKind, currency: Currency) -> AccountId {
        self.ledger.system_account(kind, currency).await.unwrap()
    }

    /// Turns an op into a command, or `None` when it has nothing to act on (yet).
    async fn command(&mut self, op: &Op) -> Option<Command> {
        let micros = |cents: i64| Micros::new(cents.saturating_mul(10_000));
        Some(match *op {
            Op::Deposit { to, cents } => {
                let account = self.account(to).await;
                let settlement = self.system(AccountKind::Settlement, account.currency).await;
                let amount = micros(cents).floor_to_minor_units(account.currency);
                Command::Deposit(Deposit { entry_id: self.id(), to: account.id, settlement, amount, description: None })
            }
            Op::Transfer { from, to, same_currency, cents } => Command::Transfer(Transfer {
                entry_id: self.id(),
                from: self.customers[from],
                to: self.customers[partner(from, to, same_currency)],
                amount: micros(cents),
                description: None,
                metadata: Default::default(),
            }),
            Op::Exchange { from, to, cents, rate: (mantissa, scale) } => {
                let source = self.account(from).await;
                let target = self.account(to).await;
                let rate = FxRate::new(ledger_core::Decimal::new(mantissa, scale)).ok()?;
                Command::Exchange(Exchange {
                    entry_id: self.id(),
                    from: source.id,
                    to: target.id,
                    amount: micros(cents),
                    pricing: Pricing::Rate(rate),
                    from_liquidity: self.system(AccountKind::Liquidity, source.currency).await,
                    to_liquidity: self.system(AccountKind::Liquidity, target.currency).await,
                    description: None,
                })
            }
            Op::Hold { from, to, same_currency, cents, expires_in_secs } => {
                let hold_id = self.id();
                let expires_at = expires_in_secs.map(|s| self.clock.now_ts().saturating_add(secs(s)));
                let (from, to) = (self.customers[from], self.customers[partner(from, to, same_currency)]);
                Command::CreateHold(CreateHold { hold_id, from, to, amount: micros(cents), expires_at })
            }
            Op::Capture { hold, cents } => Command::CaptureHold(CaptureHold {
                hold_id: pick(&self.holds, hold)?,
                entry_id: self.id(),
                amount: cents.map(micros),
            }),
            Op::Void { hold } => Command::VoidHold(pick(&self.holds, hold)?),
            Op::Expire { hold } => Command::ExpireHold(pick(&self.holds, hold)?),
            Op::Payout { account, cents, inbound } => {
                let account = self.account(account).await;
                let payout_id = self.id();
                Command::CreatePayout(CreatePayout {
                    payout_id,
                    entry_id: self.id(),
                    direction: if inbound { PayoutDirection::Inbound } else { PayoutDirection::Outbound },
                    account: account.id,
                    clearing: self.system(AccountKind::PayoutClearing, account.currency).await,
                    settlement: self.system(AccountKind::Settlement, account.currency).await,
                    amount: micros(cents).floor_to_minor_units(account.currency),
                    currency: account.currency,
                    bank_account: None,
                    reference: None,
                })
            }
            Op::Advance { payout, to } => Command::AdvancePayout(AdvancePayout {
                payout_id: pick(&self.payouts, payout)?,
                to: PayoutStatus::ALL[to],
                entry_id: self.id(),
                note: None,
            }),
            Op::Reverse { entry } => Command::Reverse(Reverse {
                entry_id: self.id(),
                target: pick(&self.entries, entry)?,
                reason: "property test".into(),
            }),
            Op::SetStatus { .. } | Op::Tick { .. } => return None,
        })
    }

    /// Ops that are not ledger commands act on the world directly.
    async fn side_effect(&self, op: &Op) {
        match *op {
            Op::SetStatus { account, status } => {
                let status = [AccountStatus::Active, AccountStatus::Frozen, AccountStatus::Closed][usize::from(status)];
                self.ledger.store().set_account_status(self.customers[account], status).await.unwrap();
            }
            Op::Tick { secs: s } => self.clock.advance(secs(s)),
            _ => {}
        }
    }
}

fn secs(s: u8) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from(s))
}

trait NowTs {
    fn now_ts(&self) -> Timestamp;
}

impl NowTs for ManualClock {
    fn now_ts(&self) -> Timestamp {
        ledger_core::Clock::now(self)
    }
}

fn assert_invariants(snapshot: &Snapshot, accounts: &[ledger_core::Account]) -> Result<(), TestCaseError> {
    let discrepancies = reconcile(snapshot);
    prop_assert!(discrepancies.is_empty(), "recon found {:?}", discrepancies);
    for account in accounts {
        let available = account.balance.available().expect("available fits");
        prop_assert!(account.overdraft.allows(available), "{:?} below its floor: {:?}", account.id, account.balance);
        prop_assert!(!account.balance.pending.is_negative());
    }
    Ok(())
}

async fn all_accounts(world: &World) -> Vec<ledger_core::Account> {
    let page = ledger_core::ports::PageRequest::first(1_000);
    world.ledger.store().accounts(&Default::default(), &page).await.unwrap().items
}

/// How many commands of each kind were accepted, and how many payouts reached each status: a
/// generator that only produced rejections would make the properties above vacuous.
#[derive(Default, Debug)]
struct Coverage {
    accepted: std::collections::BTreeMap<&'static str, usize>,
    payout_statuses: std::collections::BTreeSet<&'static str>,
}

fn kind_of(command: &Command) -> &'static str {
    match command {
        Command::Transfer(_) => "transfer",
        Command::Exchange(_) => "exchange",
        Command::Deposit(_) => "deposit",
        Command::CreateHold(_) => "create_hold",
        Command::CaptureHold(_) => "capture_hold",
        Command::VoidHold(_) => "void_hold",
        Command::ExpireHold(_) => "expire_hold",
        Command::CreatePayout(_) => "create_payout",
        Command::AdvancePayout(_) => "advance_payout",
        Command::Reverse(_) => "reverse",
    }
}

async fn run(batches: Vec<Vec<Op>>) -> Result<(), TestCaseError> {
    run_counting(batches, &mut Coverage::default()).await
}

async fn run_counting(batches: Vec<Vec<Op>>, coverage: &mut Coverage) -> Result<(), TestCaseError> {
    let mut world = World::new().await;
    let mut history: Vec<(Timestamp, Vec<(AccountId, Balance)>)> = Vec::new();
    for batch in batches {
        let mut commands = Vec::new();
        for op in &batch {
            world.side_effect(op).await;
            if let Some(command) = world.command(op).await {
                commands.push(Submission::from(command));
            }
        }
        let before = world.ledger.store().snapshot();
        let now = world.clock.now_ts();
        let kinds: Vec<&str> = commands.iter().map(|s| kind_of(&s.command)).collect();
        let outcomes = world.ledger.store().execute(&commands, now).await.unwrap();
        for (kind, outcome) in kinds.into_iter().zip(&outcomes) {
            let Ok(changes) = outcome else { continue };
            *coverage.accepted.entry(kind).or_default() += 1;
            if let Some(entry) = &changes.entry {
                world.entries.push(entry.id());
            }
            if let Some(payout) = &changes.payout {
                coverage.payout_statuses.insert(payout.status.as_str());
                if !world.payouts.contains(&payout.id) {
                    world.payouts.push(payout.id);
                }
            }
            if let Some(hold) = &changes.hold
                && !world.holds.contains(&hold.id)
            {
                world.holds.push(hold.id);
            }
        }
        let after = world.ledger.store().snapshot();
        if outcomes.iter().all(Result::is_err) {
            prop_assert_eq!(&before, &after, "rejected commands changed the ledger");
        }
        let accounts = all_accounts(&world).await;
        assert_invariants(&after, &accounts)?;
        history.push((now, accounts.iter().map(|a| (a.id, a.balance)).collect()));
        // Each batch gets its own instant, so point-in-time balances can tell them apart.
        world.clock.advance(secs(1));
    }
    for (at, balances) in history {
        for (account, balance) in balances {
            let then = world.ledger.store().balance_at(account, at).await.unwrap();
            prop_assert_eq!(then, Some(balance), "balance of {:?} at {:?}", account, at);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_every_invariant(batches in prop::collection::vec(prop::collection::vec(op(), 1..5), 1..25)) {
        pollster::block_on(run(batches))?;
    }
}

/// A long fixed-seed-free run with many more operations than the shrinking cases, so that deep
/// states (many holds, payouts in every status, reversals of reversals' targets) are reached.
#[test]
fn a_long_random_run_keeps_every_invariant() {
    let config = ProptestConfig { cases: 8, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let strategy = prop::collection::vec(prop::collection::vec(op(), 1..8), 150..200);
    let coverage = std::sync::Mutex::new(Coverage::default());
    runner.run(&strategy, |batches| pollster::block_on(run_counting(batches, &mut coverage.lock().unwrap()))).unwrap();
    let coverage = coverage.into_inner().unwrap();
    eprintln!("accepted commands over the long runs: {coverage:?}");
    let kinds = [
        "transfer",
        "exchange",
        "deposit",
        "create_hold",
        "capture_hold",
        "void_hold",
        "expire_hold",
        "create_payout",
        "advance_payout",
        "reverse",
    ];
    for kind in kinds {
        assert!(coverage.accepted.get(kind).copied().unwrap_or(0) > 0, "no {kind} was ever accepted: {coverage:?}");
    }
    assert_eq!(coverage.payout_statuses.len(), PayoutStatus::ALL.len(), "statuses reached: {coverage:?}");
}
