//! Scenario tests for the decider: one `check` helper, many small cases. Every rejection, in
//! its order of precedence, and every state-machine transition, legal and illegal.

use ledger_core::{
    AccountId, AccountKind, AccountStatus, AdvancePayout, Book, CaptureHold, ChangeSet, Command, CreateHold,
    CreatePayout, Currency, Deposit, EntryId, EntryKind, Exchange, FxQuote, FxRate, HoldId, HoldStatus, Micros,
    NewAccount, Overdraft, PayoutDirection, PayoutId, PayoutStatus, Pricing, QuoteId, Rejection, Reverse, Timestamp,
    Transfer, UserId, Uuid,
};

const NOW: Timestamp = Timestamp::from_unix_secs(1_800_000_000);
const ALICE: UserId = UserId(Uuid::from_u128(0xA11CE));
const BOB: UserId = UserId(Uuid::from_u128(0xB0B));

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// The accounts every scenario starts with.
mod acct {
    use super::*;
    pub(super) const ALICE_USD: AccountId = AccountId(Uuid::from_u128(1));
    pub(super) const BOB_USD: AccountId = AccountId(Uuid::from_u128(2));
    pub(super) const BOB_EUR: AccountId = AccountId(Uuid::from_u128(3));
    pub(super) const FROZEN_USD: AccountId = AccountId(Uuid::from_u128(4));
    pub(super) const CLOSED_USD: AccountId = AccountId(Uuid::from_u128(5));
    pub(super) const OVERDRAFT_USD: AccountId = AccountId(Uuid::from_u128(6));
    pub(super) const SETTLEMENT_USD: AccountId = AccountId(Uuid::from_u128(10));
    pub(super) const SETTLEMENT_EUR: AccountId = AccountId(Uuid::from_u128(11));
    pub(super) const LIQUIDITY_USD: AccountId = AccountId(Uuid::from_u128(12));
    pub(super) const LIQUIDITY_EUR: AccountId = AccountId(Uuid::from_u128(13));
    pub(super) const CLEARING_USD: AccountId = AccountId(Uuid::from_u128(14));
    pub(super) const MISSING: AccountId = AccountId(Uuid::from_u128(99));
}
use acct::*;

fn usd(text: &str) -> Micros {
    Currency::USD.parse_amount(text).expect("valid amount")
}

/// Alice has 100.00 USD, Bob 10.00 USD, the overdraft account 0.00 with a 50.00 limit.
fn book() -> Book {
    let mut book = Book::new();
    let mut open = |account: NewAccount| book.put_account(account.open(NOW).expect("valid account"));
    open(NewAccount::customer(ALICE_USD, ALICE, Currency::USD));
    open(NewAccount::customer(BOB_USD, BOB, Currency::USD));
    open(NewAccount::customer(BOB_EUR, BOB, Currency::EUR));
    open(NewAccount::customer(FROZEN_USD, BOB, Currency::USD));
    open(NewAccount::customer(CLOSED_USD, BOB, Currency::USD));
    open(NewAccount {
        overdraft: Overdraft::Limit(usd("50")),
        ..NewAccount::customer(OVERDRAFT_USD, BOB, Currency::USD)
    });
    open(NewAccount::system(SETTLEMENT_USD, AccountKind::Settlement, Currency::USD));
    open(NewAccount::system(SETTLEMENT_EUR, AccountKind::Settlement, Currency::EUR));
    open(NewAccount::system(LIQUIDITY_USD, AccountKind::Liquidity, Currency::USD));
    open(NewAccount::system(LIQUIDITY_EUR, AccountKind::Liquidity, Currency::EUR));
    open(NewAccount::system(CLEARING_USD, AccountKind::PayoutClearing, Currency::USD));
    for (n, (to, amount)) in [(ALICE_USD, "100"), (BOB_USD, "10"), (FROZEN_USD, "10")].into_iter().enumerate() {
        let deposit = Deposit {
            entry_id: EntryId(id(1000 + n as u128)),
            to,
            settlement: SETTLEMENT_USD,
            amount: usd(amount),
            description: None,
        };
        book.execute(&Command::Deposit(deposit), NOW).expect("funding deposit");
    }
    book.set_account_status(FROZEN_USD, AccountStatus::Frozen);
    book.set_account_status(CLOSED_USD, AccountStatus::Closed);
    book
}

/// Runs `command` on `book`; checks the outcome (`Ok` holds each changed account's posted
/// balance after), and that a rejection changed nothing.
fn check(book: &mut Book, command: Command, expected: Result<&[(AccountId, &str)], Rejection>) -> Option<ChangeSet> {
    let before = balances(book);
    let outcome = book.execute(&command, NOW);
    match (outcome, expected) {
        (Ok(changes), Ok(posted)) => {
            for (account, amount) in posted {
                let expected = Micros::parse_decimal(amount, 6).unwrap();
                assert_eq!(book.account(*account).unwrap().balance.posted, expected, "posted of {account:?}");
            }
            Some(changes)
        }
        (Err(rejection), Err(expected)) => {
            assert_eq!(rejection, expected);
            assert_eq!(balances(book), before, "a rejection changed balances");
            None
        }
        (outcome, expected) => panic!("{command:?}\n got {outcome:?}\n expected {expected:?}"),
    }
}

fn balances(book: &Book) -> Vec<(AccountId, ledger_core::Balance)> {
    let mut all: Vec<_> = book.accounts().map(|a| (a.id, a.balance)).collect();
    all.sort_by_key(|(id, _)| *id);
    all
}

fn transfer(from: AccountId, to: AccountId, amount: &str) -> Command {
    Command::Transfer(Transfer {
        entry_id: EntryId(id(500)),
        from,
        to,
        amount: Micros::parse_decimal(amount, 6).unwrap(),
        description: None,
        metadata: Default::default(),
    })
}

#[test]
fn transfers_move_money_and_are_rejected_in_order_of_precedence() {
    let mut b = book();
    check(&mut b, transfer(ALICE_USD, BOB_USD, "40"), Ok(&[(ALICE_USD, "60"), (BOB_USD, "50")]));
    let mut b = book();
    // A bad amount comes first, even on a missing account.
    check(&mut b, transfer(MISSING, BOB_USD, "0"), Err(Rejection::AmountNotPositive));
    check(&mut b, transfer(MISSING, BOB_USD, "-1"), Err(Rejection::AmountNotPositive));
    check(&mut b, transfer(MISSING, BOB_USD, "1"), Err(Rejection::AccountNotFound(MISSING)));
    check(&mut b, transfer(ALICE_USD, MISSING, "1"), Err(Rejection::AccountNotFound(MISSING)));
    check(&mut b, transfer(ALICE_USD, ALICE_USD, "1"), Err(Rejection::SameAccount));
    check(
        &mut b,
        transfer(ALICE_USD, BOB_EUR, "1"),
        Err(Rejection::CurrencyMismatch { account: BOB_EUR, expected: Currency::USD, found: Currency::EUR }),
    );
    check(
        &mut b,
        transfer(ALICE_USD, SETTLEMENT_USD, "1"),
        Err(Rejection::WrongAccountKind {
            account: SETTLEMENT_USD,
            expected: AccountKind::Customer,
            found: AccountKind::Settlement,
        }),
    );
    check(
        &mut b,
        transfer(FROZEN_USD, BOB_USD, "1"),
        Err(Rejection::AccountNotActive { account: FROZEN_USD, status: AccountStatus::Frozen }),
    );
    check(
        &mut b,
        transfer(ALICE_USD, CLOSED_USD, "1"),
        Err(Rejection::AccountNotActive { account: CLOSED_USD, status: AccountStatus::Closed }),
    );
    check(&mut b, transfer(ALICE_USD, BOB_USD, "100.000001"), Err(Rejection::InsufficientFunds(ALICE_USD)));
    // Exactly everything is fine; sub-cent amounts are fine inside the ledger.
    check(&mut b, transfer(ALICE_USD, BOB_USD, "0.000001"), Ok(&[(BOB_USD, "10.000001")]));
}

#[test]
fn overdraft_allows_going_below_zero_up_to_the_limit() {
    let mut b = book();
    check(&mut b, transfer(OVERDRAFT_USD, BOB_USD, "50"), Ok(&[(OVERDRAFT_USD, "-50")]));
    check(&mut b, transfer(OVERDRAFT_USD, BOB_USD, "0.01"), Err(Rejection::OverdraftExceeded(OVERDRAFT_USD)));
    // Money can always come in, even below the floor.
    check(&mut b, transfer(BOB_USD, OVERDRAFT_USD, "1"), Ok(&[(OVERDRAFT_USD, "-49")]));
}

#[test]
fn overflowing_balances_are_rejected_not_wrapped() {
    let mut b = book();
    let huge = Micros::new(i64::MAX - 1_000);
    let deposit = Deposit {
        entry_id: EntryId(id(501)),
        to: ALICE_USD,
        settlement: SETTLEMENT_USD,
        amount: huge,
        description: None,
    };
    // i64::MAX - 1000 is not whole cents; round it down.
    let amount = huge.floor_to_minor_units(Currency::USD);
    let deposit = Command::Deposit(Deposit { amount, ..deposit });
    check(&mut b, deposit, Err(Rejection::Overflow));
}

fn exchange(amount: &str, pricing: Pricing) -> Command {
    Command::Exchange(Exchange {
        entry_id: EntryId(id(600)),
        from: BOB_USD,
        to: BOB_EUR,
        amount: usd(amount),
        pricing,
        from_liquidity: LIQUIDITY_USD,
        to_liquidity: LIQUIDITY_EUR,
        description: None,
    })
}

fn quote(amount: &str, rate: &str, expires_at: Timestamp) -> FxQuote {
    let rate = FxRate::parse(rate).unwrap();
    FxQuote {
        id: QuoteId(id(700)),
        owner: BOB,
        from: Currency::USD,
        to: Currency::EUR,
        rate,
        from_amount: usd(amount),
        to_amount: rate.convert(usd(amount), Currency::EUR).unwrap(),
        expires_at,
    }
}

#[test]
fn exchange_posts_four_legs_through_liquidity() {
    let mut b = book();
    let rate = Pricing::Rate(FxRate::parse("0.9").unwrap());
    let changes = check(&mut b, exchange("10", rate), Ok(&[(BOB_USD, "0"), (LIQUIDITY_USD, "10")])).unwrap();
    let entry = changes.entry.unwrap();
    assert_eq!(entry.kind(), EntryKind::Exchange);
    let legs: Vec<_> = entry.postings().iter().map(|p| (p.account, p.amount)).collect();
    let eur = |s| Currency::EUR.parse_amount(s).unwrap();
    assert_eq!(
        legs,
        [(BOB_USD, usd("-10")), (LIQUIDITY_USD, usd("10")), (LIQUIDITY_EUR, eur("-9")), (BOB_EUR, eur("9"))]
    );
    assert_eq!(entry.header().links.fx.unwrap().to_amount, eur("9"));
}

#[test]
fn exchange_rejections() {
    let mut b = book();
    let later = Timestamp::from_unix_secs(1_800_000_030);
    let rate = Pricing::Rate(FxRate::parse("0.9").unwrap());
    check(&mut b, exchange("0", rate), Err(Rejection::AmountNotPositive));
    check(&mut b, exchange("10", Pricing::Quote(quote("10", "0.9", NOW))), Err(Rejection::QuoteExpired));
    check(&mut b, exchange("10", Pricing::Quote(quote("9", "0.9", later))), Err(Rejection::QuoteMismatch));
    let someone_elses = FxQuote { owner: ALICE, ..quote("10", "0.9", later) };
    check(&mut b, exchange("10", Pricing::Quote(someone_elses)), Err(Rejection::QuoteMismatch));
    let tampered = FxQuote { to_amount: usd("20"), ..quote("10", "0.9", later) };
    check(&mut b, exchange("10", Pricing::Quote(tampered)), Err(Rejection::QuoteMismatch));
    check(&mut b, exchange("0.01", Pricing::Rate(FxRate::parse("0.5").unwrap())), Err(Rejection::ExchangeTooSmall));
    check(&mut b, exchange("10.01", rate), Err(Rejection::InsufficientFunds(BOB_USD)));
    check(&mut b, exchange("10", Pricing::Quote(quote("10", "0.9", later))), Ok(&[(BOB_USD, "0")]));

    let mut b = book();
    let same = Command::Exchange(Exchange {
        to: ALICE_USD,
        ..match exchange("1", rate) {
            Command::Exchange(e) => e,
            _ => unreachable!(),
        }
    });
    check(&mut b, same, Err(Rejection::SameCurrency(Currency::USD)));
    let wrong_liquidity = Command::Exchange(Exchange {
        to_liquidity: LIQUIDITY_USD,
        ..match exchange("1", rate) {
            Command::Exchange(e) => e,
            _ => unreachable!(),
        }
    });
    check(
        &mut b,
        wrong_liquidity,
        Err(Rejection::CurrencyMismatch { account: LIQUIDITY_USD, expected: Currency::EUR, found: Currency::USD }),
    );
}

#[test]
fn deposits_need_whole_minor_units_and_a_settlement_account() {
    let mut b = book();
    let deposit = |to, settlement, amount: &str| {
        Command::Deposit(Deposit {
            entry_id: EntryId(id(800)),
            to,
            settlement,
            amount: Micros::parse_decimal(amount, 6).unwrap(),
            description: None,
        })
    };
    check(
        &mut b,
        deposit(ALICE_USD, SETTLEMENT_USD, "1.001"),
        Err(Rejection::AmountNotWholeMinorUnits { currency: Currency::USD }),
    );
    check(
        &mut b,
        deposit(ALICE_USD, LIQUIDITY_USD, "1"),
        Err(Rejection::WrongAccountKind {
            account: LIQUIDITY_USD,
            expected: AccountKind::Settlement,
            found: AccountKind::Liquidity,
        }),
    );
    check(&mut b, deposit(ALICE_USD, SETTLEMENT_USD, "1"), Ok(&[(ALICE_USD, "101"), (SETTLEMENT_USD, "-121")]));
}

fn hold(n: u128, amount: &str, expires_at: Option<Timestamp>) -> Command {
    Command::CreateHold(CreateHold {
        hold_id: HoldId(id(n)),
        from: ALICE_USD,
        to: BOB_USD,
        amount: usd(amount),
        expires_at,
    })
}

fn capture(n: u128, amount: Option<&str>) -> Command {
    Command::CaptureHold(CaptureHold { hold_id: HoldId(id(n)), entry_id: EntryId(id(n + 1)), amount: amount.map(usd) })
}

#[test]
fn holds_reserve_funds_then_capture_partly_and_release_the_rest() {
    let mut b = book();
    check(&mut b, hold(900, "30", None), Ok(&[(ALICE_USD, "100")]));
    let alice = b.account(ALICE_USD).unwrap().balance;
    assert_eq!((alice.pending, alice.available()), (usd("30"), Some(usd("70"))));
    // The reserved funds cannot be spent twice.
    check(&mut b, transfer(ALICE_USD, BOB_USD, "70.01"), Err(Rejection::InsufficientFunds(ALICE_USD)));
    check(&mut b, capture(900, Some("30.01")), Err(Rejection::CaptureExceedsHold));
    check(&mut b, capture(900, Some("0")), Err(Rejection::AmountNotPositive));
    let changes = check(&mut b, capture(900, Some("20")), Ok(&[(ALICE_USD, "80"), (BOB_USD, "30")])).unwrap();
    assert_eq!(changes.hold.as_ref().map(|h| (h.status, h.captured)), Some((HoldStatus::Posted, Some(usd("20")))));
    assert_eq!(b.account(ALICE_USD).unwrap().balance.pending, Micros::ZERO);
    // A posted hold absorbs.
    let illegal = |to| Err(Rejection::IllegalHoldTransition { from: HoldStatus::Posted, to });
    check(&mut b, capture(900, None), illegal(HoldStatus::Posted));
    check(&mut b, Command::VoidHold(HoldId(id(900))), illegal(HoldStatus::Voided));
    check(&mut b, Command::ExpireHold(HoldId(id(900))), illegal(HoldStatus::Expired));
}

#[test]
fn holds_void_and_expire() {
    let mut b = book();
    let expiry = Timestamp::from_unix_secs(1_700_000_000); // already past at NOW
    check(&mut b, hold(910, "100.01", None), Err(Rejection::InsufficientFunds(ALICE_USD)));
    check(&mut b, hold(910, "10", None), Ok(&[]));
    check(&mut b, Command::ExpireHold(HoldId(id(910))), Err(Rejection::HoldNotExpired(HoldId(id(910)))));
    check(&mut b, Command::VoidHold(HoldId(id(910))), Ok(&[(ALICE_USD, "100")]));
    assert_eq!(b.hold(HoldId(id(910))).unwrap().status, HoldStatus::Voided);
    check(&mut b, hold(920, "10", Some(expiry)), Ok(&[]));
    check(&mut b, capture(920, None), Err(Rejection::HoldExpired(HoldId(id(920)))));
    check(&mut b, Command::ExpireHold(HoldId(id(920))), Ok(&[]));
    assert_eq!(b.hold(HoldId(id(920))).unwrap().status, HoldStatus::Expired);
    assert_eq!(b.account(ALICE_USD).unwrap().balance.pending, Micros::ZERO);
    check(&mut b, Command::VoidHold(HoldId(id(999))), Err(Rejection::HoldNotFound(HoldId(id(999)))));
}

fn create_payout(n: u128, direction: PayoutDirection, amount: &str, reference: Option<&str>) -> Command {
    Command::CreatePayout(CreatePayout {
        payout_id: PayoutId(id(n)),
        entry_id: EntryId(id(n + 1)),
        direction,
        account: ALICE_USD,
        clearing: CLEARING_USD,
        settlement: SETTLEMENT_USD,
        amount: Micros::parse_decimal(amount, 6).unwrap(),
        currency: Currency::USD,
        bank_account: None,
        reference: reference.map(str::to_owned),
    })
}

fn advance(n: u128, to: PayoutStatus, entry: u128) -> Command {
    Command::AdvancePayout(AdvancePayout { payout_id: PayoutId(id(n)), to, entry_id: EntryId(id(entry)), note: None })
}

#[test]
fn a_payout_holds_at_once_then_settles() {
    let mut b = book();
    check(
        &mut b,
        create_payout(1100, PayoutDirection::Outbound, "40", Some("inv-1")),
        Ok(&[(ALICE_USD, "60"), (CLEARING_USD, "40")]),
    );
    check(&mut b, advance(1100, PayoutStatus::Processing, 1102), Ok(&[(CLEARING_USD, "40")]));
    check(&mut b, advance(1100, PayoutStatus::Completed, 1103), Ok(&[(CLEARING_USD, "0"), (SETTLEMENT_USD, "-80")]));
    // Returned by the bank: the money comes back to the customer.
    check(&mut b, advance(1100, PayoutStatus::Reversed, 1104), Ok(&[(ALICE_USD, "100"), (SETTLEMENT_USD, "-120")]));
    let payout = b.payout(PayoutId(id(1100))).unwrap();
    let path: Vec<_> = payout.history.iter().map(|h| h.to).collect();
    use PayoutStatus::*;
    assert_eq!(path, [Pending, Processing, Completed, Reversed]);
}

#[test]
fn a_payout_is_released_when_it_fails_or_is_cancelled() {
    let mut b = book();
    check(&mut b, create_payout(1200, PayoutDirection::Outbound, "40", None), Ok(&[(ALICE_USD, "60")]));
    check(&mut b, advance(1200, PayoutStatus::Cancelled, 1202), Ok(&[(ALICE_USD, "100"), (CLEARING_USD, "0")]));
    check(&mut b, create_payout(1300, PayoutDirection::Outbound, "40", None), Ok(&[(ALICE_USD, "60")]));
    check(&mut b, advance(1300, PayoutStatus::Processing, 1302), Ok(&[]));
    check(&mut b, advance(1300, PayoutStatus::ManualReview, 1303), Ok(&[(ALICE_USD, "60"), (CLEARING_USD, "40")]));
    check(&mut b, advance(1300, PayoutStatus::Failed, 1304), Ok(&[(ALICE_USD, "100"), (CLEARING_USD, "0")]));
}

#[test]
fn a_deposit_request_credits_only_when_completed() {
    let mut b = book();
    check(&mut b, create_payout(1400, PayoutDirection::Inbound, "25", None), Ok(&[(ALICE_USD, "100")]));
    check(&mut b, advance(1400, PayoutStatus::Processing, 1402), Ok(&[(ALICE_USD, "100")]));
    check(&mut b, advance(1400, PayoutStatus::Completed, 1403), Ok(&[(ALICE_USD, "125"), (SETTLEMENT_USD, "-145")]));
    check(&mut b, advance(1400, PayoutStatus::Reversed, 1404), Ok(&[(ALICE_USD, "100")]));
    // A charge-back that the customer has already spent is refused, not pushed below zero.
    check(&mut b, create_payout(1500, PayoutDirection::Inbound, "25", None), Ok(&[]));
    check(&mut b, advance(1500, PayoutStatus::Processing, 1502), Ok(&[]));
    check(&mut b, advance(1500, PayoutStatus::Completed, 1503), Ok(&[(ALICE_USD, "125")]));
    check(&mut b, transfer(ALICE_USD, BOB_USD, "125"), Ok(&[(ALICE_USD, "0")]));
    check(&mut b, advance(1500, PayoutStatus::Reversed, 1504), Err(Rejection::InsufficientFunds(ALICE_USD)));
}

#[test]
fn payout_rejections() {
    let mut b = book();
    check(&mut b, create_payout(1600, PayoutDirection::Outbound, "0", None), Err(Rejection::AmountNotPositive));
    check(
        &mut b,
        create_payout(1600, PayoutDirection::Outbound, "0.001", None),
        Err(Rejection::AmountNotWholeMinorUnits { currency: Currency::USD }),
    );
    check(
        &mut b,
        create_payout(1600, PayoutDirection::Outbound, "100.01", None),
        Err(Rejection::InsufficientFunds(ALICE_USD)),
    );
    check(&mut b, create_payout(1600, PayoutDirection::Outbound, "1", Some("ref")), Ok(&[(ALICE_USD, "99")]));
    check(
        &mut b,
        create_payout(1700, PayoutDirection::Outbound, "1", Some("ref")),
        Err(Rejection::DuplicateReference("ref".into())),
    );
    check(&mut b, advance(1799, PayoutStatus::Processing, 1), Err(Rejection::PayoutNotFound(PayoutId(id(1799)))));
}

/// Every (from, to) pair of the payout table, driven through the decider: the legal ones
/// succeed, the illegal ones are typed errors that change nothing.
#[test]
fn every_payout_transition_is_checked() {
    use PayoutStatus::*;
    // How to reach each status from a fresh payout.
    let paths: [(PayoutStatus, &[PayoutStatus]); 7] = [
        (Pending, &[]),
        (Processing, &[Processing]),
        (Completed, &[Processing, Completed]),
        (Failed, &[Processing, Failed]),
        (ManualReview, &[Processing, ManualReview]),
        (Cancelled, &[Cancelled]),
        (Reversed, &[Processing, Completed, Reversed]),
    ];
    for (from, path) in paths {
        for to in PayoutStatus::ALL {
            for direction in [PayoutDirection::Outbound, PayoutDirection::Inbound] {
                let mut b = book();
                b.execute(&create_payout(2000, direction, "5", None), NOW).unwrap();
                for (i, step) in path.iter().enumerate() {
                    b.execute(&advance(2000, *step, 2100 + i as u128), NOW).unwrap();
                }
                let expected = if from.can_become(to) {
                    let outcome = b.execute(&advance(2000, to, 2200), NOW);
                    assert!(outcome.is_ok(), "{direction:?} {from:?} -> {to:?}: {outcome:?}");
                    continue;
                } else {
                    Rejection::IllegalPayoutTransition { from, to }
                };
                check(&mut b, advance(2000, to, 2200), Err(expected));
            }
        }
    }
}

#[test]
fn reversals_mirror_the_entry_once() {
    let mut b = book();
    check(&mut b, transfer(ALICE_USD, BOB_USD, "40"), Ok(&[(ALICE_USD, "60")]));
    let reverse = |target: u128, n: u128| {
        Command::Reverse(Reverse { entry_id: EntryId(id(n)), target: EntryId(id(target)), reason: "mistake".into() })
    };
    let changes = check(&mut b, reverse(500, 3000), Ok(&[(ALICE_USD, "100"), (BOB_USD, "10")])).unwrap();
    assert_eq!(changes.entry.as_ref().unwrap().header().links.reverses, Some(EntryId(id(500))));
    check(
        &mut b,
        reverse(500, 3001),
        Err(Rejection::AlreadyReversed { entry: EntryId(id(500)), by: EntryId(id(3000)) }),
    );
    check(&mut b, reverse(3000, 3002), Err(Rejection::NotReversible(EntryId(id(3000)))));
    check(&mut b, reverse(4242, 3003), Err(Rejection::EntryNotFound(EntryId(id(4242)))));
    // A payout's entries are corrected through the payout, never reversed by hand.
    check(&mut b, create_payout(3100, PayoutDirection::Outbound, "1", None), Ok(&[]));
    check(&mut b, reverse(3101, 3004), Err(Rejection::NotReversible(EntryId(id(3101)))));
    // Reversing a transfer whose money was spent is refused, never pushed below zero.
    check(&mut b, transfer(ALICE_USD, BOB_USD, "10"), Ok(&[(BOB_USD, "20")]));
    let spend = Command::Transfer(Transfer {
        entry_id: EntryId(id(3200)),
        from: BOB_USD,
        to: ALICE_USD,
        amount: usd("20"),
        description: None,
        metadata: Default::default(),
    });
    check(&mut b, spend, Ok(&[(BOB_USD, "0")]));
    check(&mut b, reverse(500, 3005), Err(Rejection::InsufficientFunds(BOB_USD)));
}

#[test]
fn every_rejection_has_a_distinct_code() {
    use std::collections::HashSet;
    let a = AccountId(id(1));
    let samples = [
        Rejection::AmountNotPositive,
        Rejection::AmountNotWholeMinorUnits { currency: Currency::USD },
        Rejection::AccountNotFound(a),
        Rejection::HoldNotFound(HoldId(id(1))),
        Rejection::PayoutNotFound(PayoutId(id(1))),
        Rejection::EntryNotFound(EntryId(id(1))),
        Rejection::SameAccount,
        Rejection::SameCurrency(Currency::USD),
        Rejection::CurrencyMismatch { account: a, expected: Currency::USD, found: Currency::EUR },
        Rejection::WrongAccountKind { account: a, expected: AccountKind::Customer, found: AccountKind::Fees },
        Rejection::DuplicateReference("r".into()),
        Rejection::AccountNotActive { account: a, status: AccountStatus::Frozen },
        Rejection::IllegalHoldTransition { from: HoldStatus::Posted, to: HoldStatus::Voided },
        Rejection::IllegalPayoutTransition { from: PayoutStatus::Failed, to: PayoutStatus::Completed },
        Rejection::HoldExpired(HoldId(id(1))),
        Rejection::HoldNotExpired(HoldId(id(1))),
        Rejection::CaptureExceedsHold,
        Rejection::NotReversible(EntryId(id(1))),
        Rejection::AlreadyReversed { entry: EntryId(id(1)), by: EntryId(id(2)) },
        Rejection::QuoteExpired,
        Rejection::QuoteMismatch,
        Rejection::ExchangeTooSmall,
        Rejection::InsufficientFunds(a),
        Rejection::OverdraftExceeded(a),
        Rejection::Overflow,
    ];
    let codes: HashSet<_> = samples.iter().map(Rejection::code).collect();
    assert_eq!(codes.len(), samples.len());
}

#[test]
fn accounts_validate_owner_and_overdraft() {
    use ledger_core::AccountError;
    let customer = NewAccount::customer(ALICE_USD, ALICE, Currency::USD);
    let negative = NewAccount { overdraft: Overdraft::Limit(usd("-1")), ..customer.clone() };
    assert_eq!(negative.open(NOW), Err(AccountError::NegativeOverdraft));
    let ownerless = NewAccount { owner: None, ..customer };
    assert_eq!(ownerless.open(NOW), Err(AccountError::OwnerMismatch));
    let owned_system =
        NewAccount { owner: Some(ALICE), ..NewAccount::system(SETTLEMENT_USD, AccountKind::Settlement, Currency::USD) };
    assert_eq!(owned_system.open(NOW), Err(AccountError::OwnerMismatch));
}

#[test]
fn each_accepted_command_emits_its_events() {
    use ledger_core::EventKind::*;
    let mut b = book();
    let kinds = |changes: Option<ChangeSet>| -> Vec<ledger_core::EventKind> {
        changes.expect("accepted").events.iter().map(|e| e.kind).collect()
    };
    let changes = check(&mut b, transfer(ALICE_USD, BOB_USD, "1"), Ok(&[]));
    let event = &changes.as_ref().unwrap().events[0];
    assert_eq!(
        (event.kind, event.entry, event.accounts.clone()),
        (TransferCreated, Some(EntryId(id(500))), vec![ALICE_USD, BOB_USD])
    );
    assert_eq!(
        kinds(check(&mut b, exchange("1", Pricing::Rate(FxRate::parse("0.9").unwrap())), Ok(&[]))),
        [ExchangeCreated]
    );
    assert_eq!(kinds(check(&mut b, hold(4000, "1", None), Ok(&[]))), [HoldCreated]);
    assert_eq!(kinds(check(&mut b, capture(4000, None), Ok(&[]))), [HoldResolved]);
    assert_eq!(
        kinds(check(&mut b, create_payout(4100, PayoutDirection::Inbound, "1", None), Ok(&[]))),
        [PayoutStatusChanged]
    );
    assert_eq!(kinds(check(&mut b, advance(4100, PayoutStatus::Processing, 4102), Ok(&[]))), [PayoutStatusChanged]);
    let completed = check(&mut b, advance(4100, PayoutStatus::Completed, 4103), Ok(&[]));
    assert_eq!(completed.as_ref().unwrap().events[0].payout, Some(PayoutId(id(4100))));
    assert_eq!(kinds(completed), [PayoutStatusChanged, DepositCredited]);
    let reverse =
        Command::Reverse(Reverse { entry_id: EntryId(id(4200)), target: EntryId(id(500)), reason: "r".into() });
    assert_eq!(kinds(check(&mut b, reverse, Ok(&[]))), [TransactionReversed]);
}
