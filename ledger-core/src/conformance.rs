//! The storage-port conformance suite: one set of checks that every implementation of the
//! storage ports must pass (the in-memory store here, the PostgreSQL store in
//! `ledger-store-pg`). Enabled by the `conformance` feature; adapters call [`run_all`] from
//! their tests with a factory that makes a fresh, empty store for each check.
//!
//! Checks panic (with `assert!`) on the first difference, naming the check.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::account::{AccountError, AccountKind, NewAccount};
use crate::command::{Command, Deposit, Transfer};
use crate::fx::{FxQuote, FxRate, PairRate};
use crate::ids::{AccountId, EntryId, Timestamp, UserId};
use crate::ledger::Ledger;
use crate::money::{Currency, Micros};
use crate::ports::{
    AccountFilter, Clock, Fingerprint, IdempotencyBegin, IdempotencyKey, IdempotencyWrite, ManualClock, PageRequest,
    PayoutFilter, SequentialIds, StoreError, StoredResponse, Submission, TimeRange,
};
use crate::ports::{Role, User};
use crate::rejection::Rejection;
use crate::state::{PayoutDirection, PayoutStatus};

pub use crate::ports::FullStore;

/// The instant every check starts at.
pub const START: Timestamp = Timestamp::from_unix_secs(1_800_000_000);

/// A ledger over `store`, with a manual clock at [`START`] and sequential ids offset by
/// `seed` (so checks that share a database never collide).
pub fn ledger<S: FullStore>(store: Arc<S>, seed: u64) -> (Ledger<S>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START));
    let ids = Arc::new(SequentialIds::starting_at(seed));
    (Ledger::new(store, clock.clone(), ids), clock)
}

/// A ledger with the USD house accounts and one customer owning two USD accounts.
async fn two_accounts<S: FullStore>(store: Arc<S>, seed: u64) -> (Ledger<S>, Arc<ManualClock>, AccountId, AccountId) {
    let (ledger, clock) = ledger(store, seed);
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    let owner: UserId = ledger.new_id();
    let a = ledger.open_customer_account(owner, Currency::USD).await.unwrap().id;
    let b = ledger.open_customer_account(owner, Currency::USD).await.unwrap().id;
    (ledger, clock, a, b)
}

fn usd(text: &str) -> Micros {
    Currency::USD.parse_amount(text).expect("valid amount")
}

/// Runs every check, each on a fresh store from `make`, printing one line per check.
pub async fn run_all<S, F, Fut>(mut make: F)
where
    S: FullStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    macro_rules! checks {
        ($($check:ident),* $(,)?) => {
            $(
                eprintln!("conformance: {}", stringify!($check));
                $check(make().await).await;
            )*
        };
    }
    checks!(
        accounts_open_and_page,
        batches_decide_in_order_and_reject_alone,
        statements_and_point_in_time_balances,
        holds_expire,
        payout_queue_claims_each_item_once,
        idempotency_records,
        fx_rates_and_quotes,
        payouts_filter_and_page,
        users_register_and_change_role,
        webhooks_fan_out_claim_and_finish,
    );
}

/// Opening accounts, refusing duplicates, listing them in id order page by page.
pub async fn accounts_open_and_page<S: FullStore>(store: Arc<S>) {
    let (ledger, _) = ledger(store.clone(), 1_000);
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    ledger.open_system_accounts(Currency::USD).await.expect("opening system accounts again is a no-op");
    let duplicate = NewAccount::system(ledger.new_id(), AccountKind::Settlement, Currency::USD);
    assert!(matches!(
        store.open_account(duplicate, START).await,
        Err(StoreError::Account(AccountError::DuplicateSystemAccount { .. }))
    ));
    let (alice, bob): (UserId, UserId) = (ledger.new_id(), ledger.new_id());
    let mut alices = Vec::new();
    for _ in 0..5 {
        alices.push(ledger.open_customer_account(alice, Currency::USD).await.unwrap().id);
    }
    let bobs = ledger.open_customer_account(bob, Currency::EUR).await.unwrap();
    let again = NewAccount::customer(bobs.id, bob, Currency::EUR);
    assert!(matches!(store.open_account(again, START).await, Err(StoreError::Account(AccountError::Duplicate(_)))));
    assert_eq!(store.account(bobs.id).await.unwrap(), Some(bobs.clone()));
    assert_eq!(store.account(AccountId(uuid::Uuid::from_u128(7))).await.unwrap(), None);

    let filter = AccountFilter { owner: Some(alice) };
    let mut seen = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let got = store.accounts(&filter, &page).await.unwrap();
        assert!(got.items.len() <= 2);
        seen.extend(got.items.iter().map(|a| a.id));
        match got.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => break,
        }
    }
    alices.sort();
    assert_eq!(seen, alices, "pages walk the owner's accounts in id order, each once");
    let all = store.accounts(&AccountFilter::default(), &PageRequest::first(100)).await.unwrap();
    assert_eq!(all.items.len(), 4 + 5 + 1);
    assert_eq!(all.next_cursor, None);
    let bad = PageRequest { limit: 2, cursor: Some("not a cursor".into()) };
    assert!(matches!(store.accounts(&filter, &bad).await, Err(StoreError::BadCursor)));
}

/// A batch is decided in order; a rejected command changes nothing and does not stop the
/// others.
pub async fn batches_decide_in_order_and_reject_alone<S: FullStore>(store: Arc<S>) {
    let (ledger, _, a, b) = two_accounts(store.clone(), 2_000).await;
    let settlement = ledger.system_account(AccountKind::Settlement, Currency::USD).await.unwrap();
    let transfer = |entry: EntryId, amount| {
        Command::Transfer(Transfer {
            entry_id: entry,
            from: a,
            to: b,
            amount,
            description: None,
            metadata: Default::default(),
        })
    };
    let (e1, e2, e3, e4): (EntryId, EntryId, EntryId, EntryId) =
        (ledger.new_id(), ledger.new_id(), ledger.new_id(), ledger.new_id());
    let batch = vec![
        Submission::from(Command::Deposit(Deposit {
            entry_id: e1,
            to: a,
            settlement,
            amount: usd("100"),
            description: None,
        })),
        Submission::from(transfer(e2, usd("60"))),
        Submission::from(transfer(e3, usd("60"))),
        Submission::from(transfer(e4, usd("40"))),
    ];
    let outcomes = store.execute(&batch, START).await.unwrap();
    assert!(outcomes[0].is_ok() && outcomes[1].is_ok() && outcomes[3].is_ok(), "{outcomes:?}");
    assert_eq!(outcomes[2], Err(Rejection::InsufficientFunds(a)));
    assert_eq!(ledger.balance(a).await.unwrap().posted, Micros::ZERO);
    assert_eq!(ledger.balance(b).await.unwrap().posted, usd("100"));
    let entry = store.entry(e2).await.unwrap().expect("stored");
    assert_eq!(Some(&entry), outcomes[1].as_ref().unwrap().entry.as_ref());
    assert_eq!(store.entry(e3).await.unwrap(), None, "a rejected command leaves no entry");
}

/// Statements come newest first with running balances and counterparties, page by page and
/// within a time range; balances can be read as of any past instant.
pub async fn statements_and_point_in_time_balances<S: FullStore>(store: Arc<S>) {
    let (ledger, clock, a, b) = two_accounts(store.clone(), 3_000).await;
    let mut instants = Vec::new();
    ledger.deposit(a, usd("50"), None).await.unwrap();
    instants.push((clock.now(), usd("50")));
    for amount in ["10", "5", "1"] {
        clock.advance(Duration::from_secs(60));
        ledger.transfer(a, b, usd(amount)).await.unwrap();
        instants.push((clock.now(), ledger.balance(a).await.unwrap().posted));
    }
    let hold_at = clock.now().saturating_add(Duration::from_secs(30));
    clock.set(hold_at);
    ledger.hold(a, b, usd("4"), None).await.unwrap();

    let mut lines = Vec::new();
    let mut page = PageRequest::first(3);
    loop {
        let got = store.statement(a, TimeRange::default(), &page).await.unwrap();
        lines.extend(got.items);
        match got.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => break,
        }
    }
    let amounts: Vec<_> = lines.iter().map(|l| (l.amount, l.balance_after)).collect();
    assert_eq!(
        amounts,
        [(usd("-1"), usd("34")), (usd("-5"), usd("35")), (usd("-10"), usd("40")), (usd("50"), usd("50"))],
        "newest first, with the running balance after each posting"
    );
    assert_eq!(lines[0].counterparty, Some(b));
    let window = TimeRange { from: Some(instants[1].0), to: Some(instants[3].0) };
    let windowed = store.statement(a, window, &PageRequest::first(10)).await.unwrap();
    assert_eq!(windowed.items.iter().map(|l| l.amount).collect::<Vec<_>>(), [usd("-5"), usd("-10")]);

    for (at, posted) in &instants {
        let then = store.balance_at(a, *at).await.unwrap().expect("account exists");
        assert_eq!((then.posted, then.pending), (*posted, Micros::ZERO), "balance at {at:?}");
    }
    let before_anything = store.balance_at(a, START.saturating_sub(Duration::from_secs(1))).await.unwrap().unwrap();
    assert_eq!(before_anything.posted, Micros::ZERO);
    let with_hold = store.balance_at(a, hold_at).await.unwrap().unwrap();
    assert_eq!((with_hold.posted, with_hold.pending), (usd("34"), usd("4")));
    assert_eq!(store.balance_at(AccountId(uuid::Uuid::from_u128(9)), hold_at).await.unwrap(), None);
}

/// Holds past their expiry are listed for the sweep, and expire.
pub async fn holds_expire<S: FullStore>(store: Arc<S>) {
    let (ledger, clock, a, b) = two_accounts(store.clone(), 4_000).await;
    ledger.deposit(a, usd("10"), None).await.unwrap();
    let expires_at = START.saturating_add(Duration::from_secs(60));
    let hold = ledger.hold(a, b, usd("3"), Some(expires_at)).await.unwrap().hold.unwrap();
    ledger.hold(a, b, usd("1"), None).await.unwrap();
    assert_eq!(store.expired_holds(clock.now(), 10).await.unwrap(), []);
    clock.set(expires_at);
    assert_eq!(store.expired_holds(clock.now(), 10).await.unwrap(), [hold.id]);
    ledger.submit(Command::ExpireHold(hold.id)).await.unwrap();
    assert_eq!(store.expired_holds(clock.now(), 10).await.unwrap(), []);
    let balance = ledger.balance(a).await.unwrap();
    assert_eq!((balance.posted, balance.pending), (usd("10"), usd("1")));
    assert_eq!(store.hold(hold.id).await.unwrap().map(|h| h.status), Some(crate::state::HoldStatus::Expired));
}

/// Claims lease items to one claimer at a time; an item whose lease ran out is claimed again;
/// finished payouts leave the queue.
pub async fn payout_queue_claims_each_item_once<S: FullStore>(store: Arc<S>) {
    let (ledger, clock) = ledger(store.clone(), 5_000);
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    let owner: UserId = ledger.new_id();
    let a = ledger.open_customer_account(owner, Currency::USD).await.unwrap().id;
    ledger.deposit(a, usd("100"), None).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let changes = ledger.request_bank_transfer(PayoutDirection::Outbound, a, usd("1"), None, None).await.unwrap();
        ids.push(changes.payout.unwrap().id);
    }
    let lease = Duration::from_secs(30);
    let first = store.claim(clock.now(), lease, 3).await.unwrap();
    let second = store.claim(clock.now(), lease, 3).await.unwrap();
    assert_eq!((first.len(), second.len()), (3, 2));
    assert!(store.claim(clock.now(), lease, 3).await.unwrap().is_empty(), "everything is leased");
    let mut claimed: Vec<_> = first.iter().chain(&second).map(|c| c.payout.id).collect();
    claimed.sort();
    ids.sort();
    assert_eq!(claimed, ids, "each item claimed exactly once");
    assert!(first.iter().all(|c| c.attempt == 1 && c.locked_until == START.saturating_add(lease)));

    // Finish one, put one back for later, let the others' leases run out.
    let done = first[0].payout.id;
    ledger.advance_payout(done, PayoutStatus::Processing, None).await.unwrap();
    ledger.advance_payout(done, PayoutStatus::Completed, None).await.unwrap();
    let later = first[1].payout.id;
    store.retry_at(later, START.saturating_add(Duration::from_secs(300))).await.unwrap();
    clock.advance(lease);
    let retaken = store.claim(clock.now(), Duration::from_secs(1_000), 10).await.unwrap();
    assert_eq!(retaken.len(), 3, "expired leases are taken again; the finished and the deferred are not");
    assert!(retaken.iter().all(|c| c.attempt == 2 && c.payout.id != done && c.payout.id != later));
    clock.set(START.saturating_add(Duration::from_secs(300)));
    let deferred = store.claim(clock.now(), lease, 10).await.unwrap();
    assert_eq!(deferred.iter().map(|c| c.payout.id).collect::<Vec<_>>(), [later]);

    // Bank calls are recorded per payout, oldest first.
    assert_eq!(store.attempts(later).await.unwrap(), []);
    let attempt = |n: u32, outcome: &str| crate::ports::Attempt {
        attempt: n,
        started_at: START,
        finished_at: START.saturating_add(Duration::from_millis(250)),
        outcome: outcome.to_owned(),
        error: (outcome != "succeeded").then(|| "the provider is unavailable".to_owned()),
        reference: (outcome == "succeeded").then(|| "bank-ref-1".to_owned()),
    };
    store.record_attempt(later, attempt(1, "unavailable")).await.unwrap();
    store.record_attempt(later, attempt(2, "succeeded")).await.unwrap();
    assert_eq!(store.attempts(later).await.unwrap(), [attempt(1, "unavailable"), attempt(2, "succeeded")]);
}

fn fingerprint(byte: u8) -> Fingerprint {
    Fingerprint([byte; 32])
}

/// Begin, replay, mismatch, in-flight, lease takeover, expiry, abandon, and per-user scope.
pub async fn idempotency_records<S: FullStore>(store: Arc<S>) {
    let (ledger, clock) = ledger(store.clone(), 6_000);
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    let (alice, bob): (UserId, UserId) = (ledger.new_id(), ledger.new_id());
    let a = ledger.open_customer_account(alice, Currency::USD).await.unwrap().id;
    let settlement = ledger.system_account(AccountKind::Settlement, Currency::USD).await.unwrap();
    let key = IdempotencyKey::parse("order-1").unwrap();
    let lease = Duration::from_secs(60);
    let begin = |scope, fp, now| {
        let store = store.clone();
        let key = key.clone();
        async move { store.begin(scope, &key, fp, now, lease).await.unwrap() }
    };
    assert_eq!(begin(alice, fingerprint(1), START).await, IdempotencyBegin::Started);
    assert_eq!(begin(alice, fingerprint(1), START).await, IdempotencyBegin::InFlight);
    assert_eq!(begin(alice, fingerprint(2), START).await, IdempotencyBegin::Mismatch);
    assert_eq!(begin(bob, fingerprint(2), START).await, IdempotencyBegin::Started, "keys are scoped per user");

    let deposit = Deposit { entry_id: ledger.new_id(), to: a, settlement, amount: usd("5"), description: None };
    let write = IdempotencyWrite {
        scope: alice,
        key: key.clone(),
        fingerprint: fingerprint(1),
        expires_at: START.saturating_add(Duration::from_secs(3600)),
        render: Arc::new(|outcome| StoredResponse {
            status: if outcome.is_ok() { 201 } else { 422 },
            body: b"first".to_vec(),
        }),
    };
    let outcomes = store
        .execute(&[Submission { command: Command::Deposit(deposit), idempotency: Some(write) }], START)
        .await
        .unwrap();
    assert!(outcomes[0].is_ok());
    let replay = IdempotencyBegin::Replay(StoredResponse { status: 201, body: b"first".to_vec() });
    assert_eq!(begin(alice, fingerprint(1), START).await, replay);
    assert_eq!(begin(alice, fingerprint(3), START).await, IdempotencyBegin::Mismatch);
    clock.set(START.saturating_add(Duration::from_secs(3600)));
    assert_eq!(
        begin(alice, fingerprint(3), clock.now()).await,
        IdempotencyBegin::Started,
        "expired records are forgotten"
    );

    // A holder that died: its lease runs out and the key can be started again.
    let other = IdempotencyKey::parse("order-2").unwrap();
    assert_eq!(store.begin(alice, &other, fingerprint(1), START, lease).await.unwrap(), IdempotencyBegin::Started);
    let after_lease = START.saturating_add(lease);
    assert_eq!(
        store.begin(alice, &other, fingerprint(1), after_lease, lease).await.unwrap(),
        IdempotencyBegin::Started
    );
    store.abandon(alice, &other).await.unwrap();
    assert_eq!(
        store.begin(alice, &other, fingerprint(9), after_lease, lease).await.unwrap(),
        IdempotencyBegin::Started
    );
    let response = StoredResponse { status: 200, body: b"{}".to_vec() };
    store.complete(alice, &other, response.clone(), START.saturating_add(Duration::from_secs(7200))).await.unwrap();
    assert_eq!(
        store.begin(alice, &other, fingerprint(9), after_lease, lease).await.unwrap(),
        IdempotencyBegin::Replay(response)
    );
}

/// Rates set directly are read back, the reverse pair is served as the inverse, and quotes are
/// kept.
pub async fn fx_rates_and_quotes<S: FullStore>(store: Arc<S>) {
    let (ledger, _) = ledger(store.clone(), 7_000);
    let rate = PairRate::new(Currency::USD, Currency::EUR, FxRate::parse("0.8").unwrap(), 25, START).unwrap();
    store.set_rate(rate).await.unwrap();
    assert_eq!(store.rate(Currency::USD, Currency::EUR).await.unwrap(), Some(rate));
    let inverse = store.rate(Currency::EUR, Currency::USD).await.unwrap().expect("inverse");
    assert_eq!(inverse.mid, FxRate::parse("1.25").unwrap());
    assert_eq!(store.rate(Currency::USD, Currency::JPY).await.unwrap(), None);
    let newer = PairRate { mid: FxRate::parse("0.81").unwrap(), ..rate };
    store.set_rate(newer).await.unwrap();
    assert_eq!(store.rates().await.unwrap(), [newer]);
    let owner: UserId = ledger.new_id();
    let quote = FxQuote::new(ledger.new_id(), owner, &newer, usd("10"), START, Duration::from_secs(30)).unwrap();
    store.save_quote(quote).await.unwrap();
    assert_eq!(store.quote(quote.id).await.unwrap(), Some(quote));
}

/// Payouts list by owner, status and account, in id order, page by page.
pub async fn payouts_filter_and_page<S: FullStore>(store: Arc<S>) {
    let (ledger, _) = ledger(store.clone(), 8_000);
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    let (alice, bob): (UserId, UserId) = (ledger.new_id(), ledger.new_id());
    let a = ledger.open_customer_account(alice, Currency::USD).await.unwrap().id;
    let b = ledger.open_customer_account(bob, Currency::USD).await.unwrap().id;
    ledger.deposit(a, usd("10"), None).await.unwrap();
    let mut alices = Vec::new();
    for i in 0..3 {
        let reference = Some(format!("ref-{i}"));
        let changes =
            ledger.request_bank_transfer(PayoutDirection::Outbound, a, usd("1"), None, reference).await.unwrap();
        alices.push(changes.payout.unwrap().id);
    }
    let duplicate =
        ledger.request_bank_transfer(PayoutDirection::Outbound, a, usd("1"), None, Some("ref-0".into())).await;
    assert!(matches!(duplicate, Err(crate::LedgerError::Rejected(Rejection::DuplicateReference(_)))), "{duplicate:?}");
    ledger.request_bank_transfer(PayoutDirection::Inbound, b, usd("1"), None, Some("ref-0".into())).await.unwrap();
    ledger.advance_payout(alices[0], PayoutStatus::Cancelled, None).await.unwrap();

    let mine = PayoutFilter { owner: Some(alice), ..PayoutFilter::default() };
    let first = store.payouts(&mine, &PageRequest::first(2)).await.unwrap();
    let rest = store.payouts(&mine, &PageRequest { limit: 2, cursor: first.next_cursor.clone() }).await.unwrap();
    let listed: Vec<_> = first.items.iter().chain(&rest.items).map(|p| p.id).collect();
    let cancelled_id = alices[0];
    alices.sort();
    assert_eq!(listed, alices);
    assert_eq!(rest.next_cursor, None);
    let cancelled = PayoutFilter { status: Some(PayoutStatus::Cancelled), ..PayoutFilter::default() };
    let got = store.payouts(&cancelled, &PageRequest::first(10)).await.unwrap();
    assert_eq!(got.items.iter().map(|p| p.id).collect::<Vec<_>>(), [cancelled_id]);
    assert_eq!(got.items[0].history.len(), 2);
    let on_b = PayoutFilter { account: Some(b), ..PayoutFilter::default() };
    let got = store.payouts(&on_b, &PageRequest::first(10)).await.unwrap();
    assert_eq!(got.items.len(), 1);
    assert_eq!(got.items[0].direction, PayoutDirection::Inbound);
}

/// Users are unique by username and by email; roles change.
pub async fn users_register_and_change_role<S: FullStore>(store: Arc<S>) {
    let (ledger, _) = ledger(store.clone(), 9_000);
    let user = |username: &str, email: &str| User {
        id: ledger.new_id(),
        username: username.to_owned(),
        email: email.to_owned(),
        password_hash: "$argon2id$v=19$not-a-real-hash".to_owned(),
        role: Role::User,
        created_at: START,
    };
    let alice = store.create_user(user("alice", "alice@example.com")).await.unwrap();
    assert!(matches!(
        store.create_user(user("alice", "other@example.com")).await,
        Err(StoreError::Duplicate("username"))
    ));
    assert!(matches!(
        store.create_user(user("alicia", "alice@example.com")).await,
        Err(StoreError::Duplicate("email"))
    ));
    assert_eq!(store.user(alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(store.user_by_username("alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(store.user_by_username("nobody").await.unwrap(), None);
    let admin = store.set_role(alice.id, Role::Admin).await.unwrap().expect("exists");
    assert_eq!(admin.role, Role::Admin);
    assert_eq!(store.user(alice.id).await.unwrap().map(|u| u.role), Some(Role::Admin));
    assert_eq!(store.set_role(ledger.new_id(), Role::Admin).await.unwrap(), None);
}

/// Outbox events fan out to the subscribed endpoints of the accounts' owners (only events after
/// an endpoint's creation, only the owner's accounts in the body); claims respect the per-endpoint
/// cap and leases; finishing records attempts; deleted endpoints get nothing more.
pub async fn webhooks_fan_out_claim_and_finish<S: FullStore>(store: Arc<S>) {
    use crate::command::EventKind;
    use crate::ids::EndpointId;
    use crate::webhook::{DeliveryAttempt, DeliveryNext, DeliveryState, WebhookEndpoint};

    let (ledger, clock) = ledger(store.clone(), 10_000);
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    let user = |name: &str| User {
        id: ledger.new_id(),
        username: name.to_owned(),
        email: format!("{name}@example.com"),
        password_hash: "$argon2id$v=19$not-a-real-hash".to_owned(),
        role: Role::User,
        created_at: START,
    };
    let alice = store.create_user(user("alice")).await.unwrap().id;
    let bob = store.create_user(user("bob")).await.unwrap().id;
    let a1 = ledger.open_customer_account(alice, Currency::USD).await.unwrap().id;
    let b1 = ledger.open_customer_account(bob, Currency::USD).await.unwrap().id;
    let endpoint = |owner, events: &[EventKind], created_at| WebhookEndpoint {
        id: ledger.new_id(),
        owner,
        url: "https://receiver.example/hook".to_owned(),
        events: events.to_vec(),
        secret: "whsec_test".to_owned(),
        created_at,
    };
    let both = [EventKind::TransferCreated, EventKind::DepositCredited];
    let e1 = store.create_endpoint(endpoint(alice, &both, START)).await.unwrap();
    let e2 = store.create_endpoint(endpoint(bob, &[EventKind::TransferCreated], START)).await.unwrap();
    let e3 = store.create_endpoint(endpoint(alice, &[EventKind::PayoutStatusChanged], START)).await.unwrap();
    let later = START.saturating_add(Duration::from_secs(3_600));
    let e4 = store.create_endpoint(endpoint(alice, &both, later)).await.unwrap();
    assert!(matches!(store.create_endpoint(e1.clone()).await, Err(StoreError::Duplicate(_))));
    assert_eq!(store.endpoint(e1.id).await.unwrap(), Some(e1.clone()));

    ledger.deposit(a1, usd("100"), None).await.unwrap();
    ledger.transfer(a1, b1, usd("30")).await.unwrap();
    let ids = SequentialIds::starting_at(10_500);
    assert_eq!(store.fan_out(START, 500, &ids).await.unwrap(), 2, "two events fanned out");
    assert_eq!(store.fan_out(START, 500, &ids).await.unwrap(), 0, "each event fans out once");
    let first = PageRequest::first(10);
    let d1 = store.deliveries(e1.id, &first).await.unwrap().items;
    let d2 = store.deliveries(e2.id, &first).await.unwrap().items;
    assert_eq!(d1.len(), 2, "{d1:?}");
    assert_eq!(d2.len(), 1, "{d2:?}");
    assert!(store.deliveries(e3.id, &first).await.unwrap().items.is_empty(), "not subscribed");
    assert!(store.deliveries(e4.id, &first).await.unwrap().items.is_empty(), "registered after the events");
    let transfer_for_alice = d1.iter().find(|d| d.event_type == EventKind::TransferCreated).expect("transfer");
    assert!(transfer_for_alice.body.contains(&a1.to_string()) && !transfer_for_alice.body.contains(&b1.to_string()));
    assert!(d2[0].body.contains(&b1.to_string()) && !d2[0].body.contains(&a1.to_string()), "only bob's account");
    assert_eq!(d2[0].event_id, transfer_for_alice.event_id, "one event id for every subscriber");
    assert!(d1.iter().all(|d| d.state == DeliveryState::Pending && d.attempts.is_empty()));

    let lease = Duration::from_secs(60);
    let jobs = store.claim_deliveries(START, lease, 10, 1).await.unwrap();
    assert_eq!(jobs.len(), 2, "one per endpoint under a cap of one: {jobs:?}");
    assert!(store.claim_deliveries(START, lease, 10, 1).await.unwrap().is_empty(), "leased or capped");
    let job1 = jobs.iter().find(|j| j.endpoint == e1.id).expect("e1's job");
    assert_eq!((job1.attempt, job1.secret.as_str(), job1.url.as_str()), (1, "whsec_test", e1.url.as_str()));
    let failed = |attempt, at| DeliveryAttempt { attempt, at, status_code: Some(500), error: None };
    let retry_at = START.saturating_add(Duration::from_secs(10));
    store.finish_delivery(job1.delivery, failed(1, START), DeliveryNext::RetryAt(retry_at)).await.unwrap();
    let next = store.claim_deliveries(START, lease, 10, 1).await.unwrap();
    assert_eq!(next.len(), 1, "the cap freed, e1's other delivery goes");
    assert_ne!(next[0].delivery, job1.delivery);
    let ok = DeliveryAttempt { attempt: 1, at: START, status_code: Some(204), error: None };
    store.finish_delivery(next[0].delivery, ok, DeliveryNext::Delivered).await.unwrap();
    clock.set(retry_at);
    let again = store.claim_deliveries(retry_at, lease, 10, 1).await.unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!((again[0].delivery, again[0].attempt), (job1.delivery, 2));
    let refused = DeliveryAttempt { attempt: 2, at: retry_at, status_code: None, error: Some("refused".into()) };
    store.finish_delivery(job1.delivery, refused.clone(), DeliveryNext::DeadLettered).await.unwrap();
    let d1 = store.deliveries(e1.id, &first).await.unwrap().items;
    let dead = d1.iter().find(|d| d.id == job1.delivery).expect("listed");
    assert_eq!(dead.state, DeliveryState::DeadLettered);
    assert_eq!(dead.attempts, vec![failed(1, START), refused]);
    assert_eq!(dead.next_attempt_at, None);
    assert!(d1.iter().any(|d| d.state == DeliveryState::Delivered && d.attempts.len() == 1));

    let expired = START.saturating_add(lease).saturating_add(Duration::from_secs(1));
    let retaken = store.claim_deliveries(expired, lease, 10, 1).await.unwrap();
    assert_eq!(retaken.len(), 1, "e2's lease ran out: {retaken:?}");
    assert_eq!((retaken[0].endpoint, retaken[0].attempt), (e2.id, 2));
    let backlog = store.webhook_backlog().await.unwrap();
    assert_eq!((backlog.unpublished_events, backlog.pending_deliveries), (0, 1));

    assert_eq!(store.endpoints(alice, &PageRequest::first(10)).await.unwrap().items.len(), 3);
    let page = store.endpoints(alice, &PageRequest::first(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let rest = PageRequest { cursor: page.next_cursor, limit: 2 };
    assert_eq!(store.endpoints(alice, &rest).await.unwrap().items.len(), 1);
    assert!(store.delete_endpoint(e2.id, expired).await.unwrap());
    assert!(!store.delete_endpoint(e2.id, expired).await.unwrap(), "already deleted");
    let never: EndpointId = ledger.new_id();
    assert!(!store.delete_endpoint(never, expired).await.unwrap());
    assert_eq!(store.endpoint(e2.id).await.unwrap(), None);
    assert!(store.endpoints(bob, &first).await.unwrap().items.is_empty());
    let far = expired.saturating_add(Duration::from_secs(3_600));
    assert!(store.claim_deliveries(far, lease, 10, 1).await.unwrap().is_empty(), "nothing goes to a deleted endpoint");
    clock.set(far);
    ledger.transfer(a1, b1, usd("1")).await.unwrap();
    assert_eq!(store.fan_out(far, 500, &ids).await.unwrap(), 1);
    assert!(store.deliveries(e2.id, &first).await.unwrap().items.len() == 1, "no new delivery for e2");
    assert_eq!(store.webhook_backlog().await.unwrap().pending_deliveries, 2, "e1 and e4 each get the new transfer");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    #[test]
    fn the_memory_store_conforms() {
        pollster::block_on(run_all(|| async { Arc::new(MemoryStore::new()) }));
    }
}
