//! [`Book`]: the deterministic decider at the heart of the ledger.
//!
//! A book holds the state a decision needs (accounts with balances, holds, payouts, and what
//! is known of earlier entries) and turns a [`Command`] into a [`ChangeSet`] or a
//! [`Rejection`]. It does no IO, reads no clock and makes no ids: `now` and every id come in
//! with the command. The in-memory store keeps one whole book; the PostgreSQL store loads the
//! rows a batch touches (locked) into a book, decides the batch in order, and writes the
//! change sets back in one transaction.
//!
//! Each `decide_*` function checks in the order of precedence documented on [`Rejection`],
//! with early returns, then hands the legs to [`Book::settle`], which computes new balances in
//! 128-bit integers, enforces each account's floor and refuses anything that would overflow.

use std::collections::HashMap;

use crate::account::{Account, AccountKind, AccountStatus, Balance, Metadata, Overdraft};
use crate::command::{
    AdvancePayout, BalanceChange, CaptureHold, ChangeSet, Command, CreateHold, CreatePayout, Deposit, Event, EventKind,
    Exchange, Pricing, Reverse, Transfer,
};
use crate::entry::{EntryHeader, EntryKind, EntryLinks, FxApplied, JournalEntry, Posting};
use crate::ids::{AccountId, EntryId, HoldId, PayoutId, Timestamp, UserId};
use crate::money::{Currency, Micros};
use crate::rejection::Rejection;
use crate::state::{Hold, HoldStatus, Payout, PayoutDirection, PayoutStatus, StatusChange};

/// One signed movement on one account, before balances are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Leg {
    /// The account.
    pub account: AccountId,
    /// Its currency.
    pub currency: Currency,
    /// Signed amount: positive credits, negative debits.
    pub amount: Micros,
}

/// What a decision needs to know about a posted entry: enough to reverse it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryFacts {
    /// Its kind.
    pub kind: EntryKind,
    /// Its legs.
    pub legs: Vec<Leg>,
    /// The entry that reversed it, if one did.
    pub reversed_by: Option<EntryId>,
}

impl EntryFacts {
    /// The facts of an entry.
    pub fn of(entry: &JournalEntry) -> EntryFacts {
        let legs = entry
            .postings()
            .iter()
            .map(|p| Leg { account: p.account, currency: p.currency, amount: p.amount })
            .collect();
        EntryFacts { kind: entry.kind(), legs, reversed_by: None }
    }
}

/// The decider and the state it decides against. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Book {
    accounts: HashMap<AccountId, Account>,
    holds: HashMap<HoldId, Hold>,
    payouts: HashMap<PayoutId, Payout>,
    entries: HashMap<EntryId, EntryFacts>,
    references: HashMap<(UserId, String), PayoutId>,
}

/// An account's balances while a decision is being computed, in 128 bits so that no
/// intermediate sum can overflow before the final range check.
#[derive(Clone, Copy)]
struct Working {
    account: AccountId,
    before: Balance,
    posted: i128,
    pending: i128,
}

impl Book {
    /// An empty book.
    pub fn new() -> Book {
        Book::default()
    }

    /// Adds or replaces an account (opening one, or loading it from storage).
    pub fn put_account(&mut self, account: Account) {
        self.accounts.insert(account.id, account);
    }

    /// Adds or replaces a hold (loading it from storage).
    pub fn put_hold(&mut self, hold: Hold) {
        self.holds.insert(hold.id, hold);
    }

    /// Adds or replaces a payout (loading it from storage).
    pub fn put_payout(&mut self, payout: Payout) {
        if let Some(reference) = &payout.reference {
            self.references.insert((payout.owner, reference.clone()), payout.id);
        }
        self.payouts.insert(payout.id, payout);
    }

    /// Adds or replaces what is known of an entry (loading it from storage).
    pub fn put_entry(&mut self, id: EntryId, facts: EntryFacts) {
        self.entries.insert(id, facts);
    }

    /// Changes an account's status; `false` if there is no such account.
    pub fn set_account_status(&mut self, id: AccountId, status: AccountStatus) -> bool {
        match self.accounts.get_mut(&id) {
            Some(account) => {
                account.status = status;
                true
            }
            None => false,
        }
    }

    /// An account.
    pub fn account(&self, id: AccountId) -> Option<&Account> {
        self.accounts.get(&id)
    }

    /// A hold.
    pub fn hold(&self, id: HoldId) -> Option<&Hold> {
        self.holds.get(&id)
    }

    /// A payout.
    pub fn payout(&self, id: PayoutId) -> Option<&Payout> {
        self.payouts.get(&id)
    }

    /// What is known of an entry.
    pub fn entry(&self, id: EntryId) -> Option<&EntryFacts> {
        self.entries.get(&id)
    }

    /// Every account, in no particular order.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    /// Every hold, in no particular order.
    pub fn holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.values()
    }

    /// Every payout, in no particular order.
    pub fn payouts(&self) -> impl Iterator<Item = &Payout> {
        self.payouts.values()
    }

    /// Decides and, when accepted, applies: the usual way to run one command.
    pub fn execute(&mut self, command: &Command, now: Timestamp) -> Result<ChangeSet, Rejection> {
        let changes = self.decide(command, now)?;
        self.apply(&changes);
        Ok(changes)
    }

    /// Decides a command against the current state without changing anything.
    pub fn decide(&self, command: &Command, now: Timestamp) -> Result<ChangeSet, Rejection> {
        match command {
            Command::Transfer(c) => self.decide_transfer(c, now),
            Command::Exchange(c) => self.decide_exchange(c, now),
            Command::Deposit(c) => self.decide_deposit(c, now),
            Command::CreateHold(c) => self.decide_create_hold(c, now),
            Command::CaptureHold(c) => self.decide_capture(c, now),
            Command::VoidHold(id) => self.decide_release(*id, HoldStatus::Voided, now),
            Command::ExpireHold(id) => self.decide_release(*id, HoldStatus::Expired, now),
            Command::CreatePayout(c) => self.decide_create_payout(c, now),
            Command::AdvancePayout(c) => self.decide_advance_payout(c, now),
            Command::Reverse(c) => self.decide_reverse(c, now),
        }
    }

    /// Applies a change set this book decided. Storage adapters persist the same change set.
    pub fn apply(&mut self, changes: &ChangeSet) {
        for change in &changes.balances {
            let account = self.accounts.get_mut(&change.account).expect("change sets only touch known accounts");
            debug_assert_eq!(account.balance, change.before, "change set applied out of order");
            account.balance = change.after;
        }
        if let Some(hold) = &changes.hold {
            self.holds.insert(hold.id, hold.clone());
        }
        if let Some(payout) = &changes.payout {
            self.put_payout(payout.clone());
        }
        if let Some(entry) = &changes.entry {
            self.entries.insert(entry.id(), EntryFacts::of(entry));
            if let Some(target) = entry.header().links.reverses
                && let Some(facts) = self.entries.get_mut(&target)
            {
                facts.reversed_by = Some(entry.id());
            }
        }
    }

    fn decide_transfer(&self, c: &Transfer, now: Timestamp) -> Result<ChangeSet, Rejection> {
        positive(c.amount)?;
        let (from, to) = self.customer_pair(c.from, c.to)?;
        let legs = [debit(from, c.amount), credit(to, c.amount)];
        let header = header(c.entry_id, EntryKind::Transfer, now, c.description.clone(), c.metadata.clone());
        let mut changes = self.post(header, &legs, &[])?;
        changes.events.push(event(EventKind::TransferCreated, &changes, now));
        Ok(changes)
    }

    fn decide_exchange(&self, c: &Exchange, now: Timestamp) -> Result<ChangeSet, Rejection> {
        positive(c.amount)?;
        let from = self.find_account(c.from)?;
        let to = self.find_account(c.to)?;
        let from_liquidity = self.find_account(c.from_liquidity)?;
        let to_liquidity = self.find_account(c.to_liquidity)?;
        if from.id == to.id {
            return Err(Rejection::SameAccount);
        }
        if from.currency == to.currency {
            return Err(Rejection::SameCurrency(from.currency));
        }
        currency(from_liquidity, from.currency)?;
        currency(to_liquidity, to.currency)?;
        kind(from, AccountKind::Customer)?;
        kind(to, AccountKind::Customer)?;
        kind(from_liquidity, AccountKind::Liquidity)?;
        kind(to_liquidity, AccountKind::Liquidity)?;
        active(from)?;
        active(to)?;
        let (rate, quote) = match c.pricing {
            Pricing::Rate(rate) => (rate, None),
            Pricing::Quote(quote) => {
                if now >= quote.expires_at {
                    return Err(Rejection::QuoteExpired);
                }
                let matches = quote.from == from.currency
                    && quote.to == to.currency
                    && quote.from_amount == c.amount
                    && from.owner == Some(quote.owner);
                if !matches {
                    return Err(Rejection::QuoteMismatch);
                }
                (quote.rate, Some(quote))
            }
        };
        let to_amount = rate.convert(c.amount, to.currency).map_err(|_| Rejection::Overflow)?;
        if quote.is_some_and(|q| q.to_amount != to_amount) {
            return Err(Rejection::QuoteMismatch);
        }
        if to_amount == Micros::ZERO {
            return Err(Rejection::ExchangeTooSmall);
        }
        let legs = [
            debit(from, c.amount),
            credit(from_liquidity, c.amount),
            debit(to_liquidity, to_amount),
            credit(to, to_amount),
        ];
        let mut header = header(c.entry_id, EntryKind::Exchange, now, c.description.clone(), Metadata::new());
        header.links.fx = Some(FxApplied { rate, from_amount: c.amount, to_amount, quote: quote.map(|q| q.id) });
        let mut changes = self.post(header, &legs, &[])?;
        changes.events.push(event(EventKind::ExchangeCreated, &changes, now));
        Ok(changes)
    }

    fn decide_deposit(&self, c: &Deposit, now: Timestamp) -> Result<ChangeSet, Rejection> {
        positive(c.amount)?;
        let to = self.find_account(c.to)?;
        let settlement = self.find_account(c.settlement)?;
        currency(settlement, to.currency)?;
        whole_minor_units(c.amount, to.currency)?;
        kind(to, AccountKind::Customer)?;
        kind(settlement, AccountKind::Settlement)?;
        active(to)?;
        let legs = [debit(settlement, c.amount), credit(to, c.amount)];
        let header = header(c.entry_id, EntryKind::Deposit, now, c.description.clone(), Metadata::new());
        let mut changes = self.post(header, &legs, &[])?;
        changes.events.push(event(EventKind::DepositCredited, &changes, now));
        Ok(changes)
    }

    fn decide_create_hold(&self, c: &CreateHold, now: Timestamp) -> Result<ChangeSet, Rejection> {
        positive(c.amount)?;
        let (from, to) = self.customer_pair(c.from, c.to)?;
        let balances = self.settle(&[], &[(from.id, c.amount)])?.1;
        let hold = Hold {
            id: c.hold_id,
            from: from.id,
            to: to.id,
            currency: from.currency,
            amount: c.amount,
            captured: None,
            status: HoldStatus::Pending,
            expires_at: c.expires_at,
            created_at: now,
            resolved_at: None,
            entry: None,
        };
        let mut changes = ChangeSet { balances, hold: Some(hold), ..ChangeSet::empty() };
        changes.events.push(event(EventKind::HoldCreated, &changes, now));
        Ok(changes)
    }

    fn decide_capture(&self, c: &CaptureHold, now: Timestamp) -> Result<ChangeSet, Rejection> {
        if let Some(amount) = c.amount {
            positive(amount)?;
        }
        let hold = self.find_hold(c.hold_id)?;
        let from = self.find_account(hold.from)?;
        let to = self.find_account(hold.to)?;
        pending_hold_may_become(hold, HoldStatus::Posted)?;
        if hold.is_expired_at(now) {
            return Err(Rejection::HoldExpired(hold.id));
        }
        let captured = c.amount.unwrap_or(hold.amount);
        if captured > hold.amount {
            return Err(Rejection::CaptureExceedsHold);
        }
        let legs = [debit(from, captured), credit(to, captured)];
        let release = release_of(hold)?;
        let mut header = header(c.entry_id, EntryKind::HoldCapture, now, None, Metadata::new());
        header.links.hold = Some(hold.id);
        let mut changes = self.post(header, &legs, &[release])?;
        let resolved = Hold {
            status: HoldStatus::Posted,
            captured: Some(captured),
            resolved_at: Some(now),
            entry: Some(c.entry_id),
            ..hold.clone()
        };
        changes.hold = Some(resolved);
        changes.events.push(event(EventKind::HoldResolved, &changes, now));
        Ok(changes)
    }

    /// Voids (owner) or expires (sweep) a pending hold: its funds become available again.
    fn decide_release(&self, id: HoldId, to: HoldStatus, now: Timestamp) -> Result<ChangeSet, Rejection> {
        let hold = self.find_hold(id)?;
        self.find_account(hold.from)?;
        pending_hold_may_become(hold, to)?;
        if to == HoldStatus::Expired && !hold.is_expired_at(now) {
            return Err(Rejection::HoldNotExpired(id));
        }
        let balances = self.settle(&[], &[release_of(hold)?])?.1;
        let resolved = Hold { status: to, resolved_at: Some(now), ..hold.clone() };
        let mut changes = ChangeSet { balances, hold: Some(resolved), ..ChangeSet::empty() };
        changes.events.push(event(EventKind::HoldResolved, &changes, now));
        Ok(changes)
    }

    fn decide_create_payout(&self, c: &CreatePayout, now: Timestamp) -> Result<ChangeSet, Rejection> {
        positive(c.amount)?;
        let account = self.find_account(c.account)?;
        let settlement = self.find_account(c.settlement)?;
        let clearing = self.find_account(c.clearing)?;
        for party in [account, settlement, clearing] {
            currency(party, c.currency)?;
        }
        whole_minor_units(c.amount, c.currency)?;
        kind(account, AccountKind::Customer)?;
        kind(settlement, AccountKind::Settlement)?;
        kind(clearing, AccountKind::PayoutClearing)?;
        let owner = account.owner.expect("customer accounts have owners by construction");
        if let Some(reference) = &c.reference
            && self.references.contains_key(&(owner, reference.clone()))
        {
            return Err(Rejection::DuplicateReference(reference.clone()));
        }
        active(account)?;
        let mut changes = match c.direction {
            PayoutDirection::Outbound => {
                let legs = [debit(account, c.amount), credit(clearing, c.amount)];
                let mut header = header(c.entry_id, EntryKind::PayoutHold, now, c.reference.clone(), Metadata::new());
                header.links.payout = Some(c.payout_id);
                self.post(header, &legs, &[])?
            }
            PayoutDirection::Inbound => ChangeSet::empty(),
        };
        let payout = Payout {
            id: c.payout_id,
            owner,
            direction: c.direction,
            account: account.id,
            clearing: (c.direction == PayoutDirection::Outbound).then_some(clearing.id),
            settlement: settlement.id,
            amount: c.amount,
            currency: c.currency,
            bank_account: c.bank_account.clone(),
            reference: c.reference.clone(),
            status: PayoutStatus::Pending,
            history: vec![StatusChange {
                from: None,
                to: PayoutStatus::Pending,
                at: now,
                note: None,
                entry: changes.entry.as_ref().map(JournalEntry::id),
            }],
            created_at: now,
            updated_at: now,
        };
        changes.payout = Some(payout);
        changes.events.push(event(EventKind::PayoutStatusChanged, &changes, now));
        Ok(changes)
    }

    fn decide_advance_payout(&self, c: &AdvancePayout, now: Timestamp) -> Result<ChangeSet, Rejection> {
        let payout = self.find_payout(c.payout_id)?;
        if !payout.status.can_become(c.to) {
            return Err(Rejection::IllegalPayoutTransition { from: payout.status, to: c.to });
        }
        let account = self.find_account(payout.account)?;
        let settlement = self.find_account(payout.settlement)?;
        let clearing = payout.clearing.map(|id| self.find_account(id)).transpose()?;
        let amount = payout.amount;
        let movement = match (payout.direction, c.to, clearing) {
            (PayoutDirection::Outbound, PayoutStatus::Completed, Some(clearing)) => {
                Some((EntryKind::PayoutSettle, [debit(clearing, amount), credit(settlement, amount)]))
            }
            (PayoutDirection::Outbound, PayoutStatus::Failed | PayoutStatus::Cancelled, Some(clearing)) => {
                Some((EntryKind::PayoutRelease, [debit(clearing, amount), credit(account, amount)]))
            }
            (PayoutDirection::Outbound, PayoutStatus::Reversed, _) => {
                Some((EntryKind::PayoutReturn, [debit(settlement, amount), credit(account, amount)]))
            }
            (PayoutDirection::Inbound, PayoutStatus::Completed, _) => {
                Some((EntryKind::Deposit, [debit(settlement, amount), credit(account, amount)]))
            }
            (PayoutDirection::Inbound, PayoutStatus::Reversed, _) => {
                Some((EntryKind::DepositReturn, [debit(account, amount), credit(settlement, amount)]))
            }
            _ => None,
        };
        let mut changes = match movement {
            Some((kind, legs)) => {
                let mut header = header(c.entry_id, kind, now, c.note.clone(), Metadata::new());
                header.links.payout = Some(payout.id);
                self.post(header, &legs, &[])?
            }
            None => ChangeSet::empty(),
        };
        let mut advanced = payout.clone();
        advanced.status = c.to;
        advanced.updated_at = now;
        advanced.history.push(StatusChange {
            from: Some(payout.status),
            to: c.to,
            at: now,
            note: c.note.clone(),
            entry: changes.entry.as_ref().map(JournalEntry::id),
        });
        changes.payout = Some(advanced);
        changes.events.push(event(EventKind::PayoutStatusChanged, &changes, now));
        if payout.direction == PayoutDirection::Inbound && c.to == PayoutStatus::Completed {
            changes.events.push(event(EventKind::DepositCredited, &changes, now));
        }
        Ok(changes)
    }

    fn decide_reverse(&self, c: &Reverse, now: Timestamp) -> Result<ChangeSet, Rejection> {
        let target = self.entries.get(&c.target).ok_or(Rejection::EntryNotFound(c.target))?;
        for leg in &target.legs {
            self.find_account(leg.account)?;
        }
        if !target.kind.is_reversible() {
            return Err(Rejection::NotReversible(c.target));
        }
        if let Some(by) = target.reversed_by {
            return Err(Rejection::AlreadyReversed { entry: c.target, by });
        }
        let legs = target
            .legs
            .iter()
            .map(|leg| Ok(Leg { amount: leg.amount.checked_neg().ok_or(Rejection::Overflow)?, ..*leg }))
            .collect::<Result<Vec<_>, Rejection>>()?;
        let mut header = header(c.entry_id, EntryKind::Reversal, now, Some(c.reason.clone()), Metadata::new());
        header.links.reverses = Some(c.target);
        let mut changes = self.post(header, &legs, &[])?;
        changes.events.push(event(EventKind::TransactionReversed, &changes, now));
        Ok(changes)
    }

    /// Settles legs into a balanced entry plus balance changes.
    fn post(&self, header: EntryHeader, legs: &[Leg], pending: &[(AccountId, Micros)]) -> Result<ChangeSet, Rejection> {
        let (postings, balances) = self.settle(legs, pending)?;
        let entry = JournalEntry::new(header, postings).expect("recipes produce balanced entries");
        Ok(ChangeSet { entry: Some(entry), balances, ..ChangeSet::empty() })
    }

    /// Computes the postings (with running balances) and new balances that `legs` and the
    /// `pending` deltas produce; refuses when an account whose available balance drops would
    /// fall below its floor, or when any figure leaves the `i64` range.
    fn settle(
        &self,
        legs: &[Leg],
        pending: &[(AccountId, Micros)],
    ) -> Result<(Vec<Posting>, Vec<BalanceChange>), Rejection> {
        let mut working: Vec<Working> = Vec::new();
        let mut running = Vec::with_capacity(legs.len());
        for leg in legs {
            let i = self.working_slot(&mut working, leg.account);
            working[i].posted += i128::from(leg.amount.get());
            running.push(working[i].posted);
        }
        for (account, delta) in pending {
            let i = self.working_slot(&mut working, *account);
            working[i].pending += i128::from(delta.get());
        }
        for w in &working {
            let account = &self.accounts[&w.account];
            let before = i128::from(w.before.posted.get()) - i128::from(w.before.pending.get());
            let after = w.posted - w.pending;
            if after < before && !floor_allows(account.overdraft, after) {
                return Err(match account.overdraft {
                    Overdraft::Limit(limit) if limit.is_positive() => Rejection::OverdraftExceeded(account.id),
                    _ => Rejection::InsufficientFunds(account.id),
                });
            }
        }
        let postings = legs
            .iter()
            .zip(running)
            .map(|(leg, after)| {
                let balance_after = to_micros(after)?;
                Ok(Posting { account: leg.account, currency: leg.currency, amount: leg.amount, balance_after })
            })
            .collect::<Result<Vec<_>, Rejection>>()?;
        let balances = working
            .iter()
            .map(|w| {
                to_micros(w.posted - w.pending)?;
                let after = Balance { posted: to_micros(w.posted)?, pending: to_micros(w.pending)? };
                Ok(BalanceChange { account: w.account, before: w.before, after })
            })
            .collect::<Result<Vec<_>, Rejection>>()?;
        Ok((postings, balances))
    }

    /// The index of `id` in `working`, adding it with its current balances when new.
    fn working_slot(&self, working: &mut Vec<Working>, id: AccountId) -> usize {
        if let Some(i) = working.iter().position(|w| w.account == id) {
            return i;
        }
        let before = self.accounts[&id].balance;
        working.push(Working {
            account: id,
            before,
            posted: i128::from(before.posted.get()),
            pending: i128::from(before.pending.get()),
        });
        working.len() - 1
    }

    /// The two active customer accounts of one currency that a transfer or hold moves money
    /// between, checked in the order of precedence.
    fn customer_pair(&self, from: AccountId, to: AccountId) -> Result<(&Account, &Account), Rejection> {
        let from = self.find_account(from)?;
        let to = self.find_account(to)?;
        if from.id == to.id {
            return Err(Rejection::SameAccount);
        }
        currency(to, from.currency)?;
        kind(from, AccountKind::Customer)?;
        kind(to, AccountKind::Customer)?;
        active(from)?;
        active(to)?;
        Ok((from, to))
    }

    fn find_account(&self, id: AccountId) -> Result<&Account, Rejection> {
        self.accounts.get(&id).ok_or(Rejection::AccountNotFound(id))
    }

    fn find_hold(&self, id: HoldId) -> Result<&Hold, Rejection> {
        self.holds.get(&id).ok_or(Rejection::HoldNotFound(id))
    }

    fn find_payout(&self, id: PayoutId) -> Result<&Payout, Rejection> {
        self.payouts.get(&id).ok_or(Rejection::PayoutNotFound(id))
    }
}

fn floor_allows(overdraft: Overdraft, available: i128) -> bool {
    match overdraft {
        Overdraft::Limit(limit) => available >= -i128::from(limit.get()),
        Overdraft::Unlimited => true,
    }
}

fn to_micros(value: i128) -> Result<Micros, Rejection> {
    i64::try_from(value).map(Micros::new).map_err(|_| Rejection::Overflow)
}

fn positive(amount: Micros) -> Result<(), Rejection> {
    if amount.is_positive() { Ok(()) } else { Err(Rejection::AmountNotPositive) }
}

fn whole_minor_units(amount: Micros, currency: Currency) -> Result<(), Rejection> {
    if amount.is_whole_minor_units(currency) { Ok(()) } else { Err(Rejection::AmountNotWholeMinorUnits { currency }) }
}

fn currency(account: &Account, expected: Currency) -> Result<(), Rejection> {
    if account.currency == expected {
        Ok(())
    } else {
        Err(Rejection::CurrencyMismatch { account: account.id, expected, found: account.currency })
    }
}

fn kind(account: &Account, expected: AccountKind) -> Result<(), Rejection> {
    if account.kind == expected {
        Ok(())
    } else {
        Err(Rejection::WrongAccountKind { account: account.id, expected, found: account.kind })
    }
}

fn active(account: &Account) -> Result<(), Rejection> {
    match account.status {
        AccountStatus::Active => Ok(()),
        status => Err(Rejection::AccountNotActive { account: account.id, status }),
    }
}

fn pending_hold_may_become(hold: &Hold, to: HoldStatus) -> Result<(), Rejection> {
    if hold.status.can_become(to) { Ok(()) } else { Err(Rejection::IllegalHoldTransition { from: hold.status, to }) }
}

/// The pending delta that releases a whole hold.
fn release_of(hold: &Hold) -> Result<(AccountId, Micros), Rejection> {
    Ok((hold.from, hold.amount.checked_neg().ok_or(Rejection::Overflow)?))
}

fn debit(account: &Account, amount: Micros) -> Leg {
    // Amounts reaching a recipe are positive, so negating them cannot overflow.
    Leg { account: account.id, currency: account.currency, amount: Micros::new(-amount.get()) }
}

fn credit(account: &Account, amount: Micros) -> Leg {
    Leg { account: account.id, currency: account.currency, amount }
}

fn header(
    id: EntryId,
    kind: EntryKind,
    now: Timestamp,
    description: Option<String>,
    metadata: Metadata,
) -> EntryHeader {
    EntryHeader { id, kind, created_at: now, description, metadata, links: EntryLinks::default() }
}

fn event(kind: EventKind, changes: &ChangeSet, now: Timestamp) -> Event {
    let mut accounts: Vec<AccountId> = changes.balances.iter().map(|b| b.account).collect();
    if let Some(payout) = &changes.payout
        && !accounts.contains(&payout.account)
    {
        accounts.push(payout.account);
    }
    Event {
        kind,
        entry: changes.entry.as_ref().map(JournalEntry::id),
        hold: changes.hold.as_ref().map(|h| h.id),
        payout: changes.payout.as_ref().map(|p| p.id),
        payout_status: changes.payout.as_ref().map(|p| p.status),
        accounts,
        at: now,
    }
}
