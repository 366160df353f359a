//! Accounts and their balances: what an account is (kind, currency, owner, limits, status) and
//! the `posted` / `pending` / `available` figures the ledger keeps for it.

use std::collections::BTreeMap;

use crate::ids::{AccountId, Timestamp, UserId};
use crate::money::{Currency, Micros};

/// Free-form string key/value pairs a client attaches to an account or entry (like Stripe's
/// metadata). Kept as strings so the core stays free of any JSON dependency.
pub type Metadata = BTreeMap<String, String>;

/// What an account is for. Customer accounts belong to users; the others are the house's,
/// one per currency, created by configuration or migrations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccountKind {
    /// A user's wallet.
    Customer,
    /// The outside world (the bank): goes negative as money comes in, like Formance's `@world`.
    Settlement,
    /// The house's position in one currency; the middle legs of every FX exchange.
    Liquidity,
    /// Funds of payouts in flight: held here from creation until settled or released.
    PayoutClearing,
    /// Fee revenue.
    Fees,
}

impl AccountKind {
    /// Every kind, for iteration in tests and configuration.
    pub const ALL: [AccountKind; 5] = [
        AccountKind::Customer,
        AccountKind::Settlement,
        AccountKind::Liquidity,
        AccountKind::PayoutClearing,
        AccountKind::Fees,
    ];

    /// The stable lower-case name used in storage and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            AccountKind::Customer => "customer",
            AccountKind::Settlement => "settlement",
            AccountKind::Liquidity => "liquidity",
            AccountKind::PayoutClearing => "payout_clearing",
            AccountKind::Fees => "fees",
        }
    }

    /// The inverse of [`AccountKind::as_str`].
    pub fn parse(name: &str) -> Option<AccountKind> {
        AccountKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// Whether an account can take part in new money movements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccountStatus {
    /// Open for business.
    Active,
    /// Temporarily blocked (e.g. by compliance); can be reactivated.
    Frozen,
    /// Permanently closed.
    Closed,
}

impl AccountStatus {
    /// The stable lower-case name used in storage and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Frozen => "frozen",
            AccountStatus::Closed => "closed",
        }
    }

    /// The inverse of [`AccountStatus::as_str`].
    pub fn parse(name: &str) -> Option<AccountStatus> {
        [AccountStatus::Active, AccountStatus::Frozen, AccountStatus::Closed].into_iter().find(|s| s.as_str() == name)
    }
}

/// How far below zero an account's available balance may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Overdraft {
    /// Never below `-limit` (a customer without overdraft has a limit of zero).
    Limit(Micros),
    /// No floor at all: the settlement and liquidity accounts, which mirror the outside world.
    Unlimited,
}

impl Overdraft {
    /// No overdraft: available never drops below zero.
    pub const NONE: Overdraft = Overdraft::Limit(Micros::ZERO);

    /// True when `available` respects this floor.
    pub fn allows(self, available: Micros) -> bool {
        match self {
            // `limit` is validated non-negative when the account is made, so the negation
            // cannot overflow.
            Overdraft::Limit(limit) => available >= Micros::new(-limit.get()),
            Overdraft::Unlimited => true,
        }
    }

    /// The limit as an optional micros value (`None` for unlimited), as storage keeps it.
    pub fn limit_micros(self) -> Option<Micros> {
        match self {
            Overdraft::Limit(limit) => Some(limit),
            Overdraft::Unlimited => None,
        }
    }
}

/// The three balance figures of an account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Balance {
    /// The sum of the account's postings.
    pub posted: Micros,
    /// The sum of its open hold debits (two-phase holds not yet captured or released).
    pub pending: Micros,
}

impl Balance {
    /// `posted - pending`: what the owner can spend now. `None` only on overflow, which the
    /// engine refuses to create.
    pub fn available(&self) -> Option<Micros> {
        self.posted.checked_sub(self.pending)
    }
}

/// An account: who owns it, what it holds, and its balances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// The owning user; `None` for the house's system accounts.
    pub owner: Option<UserId>,
    /// What the account is for.
    pub kind: AccountKind,
    /// The one currency it holds.
    pub currency: Currency,
    /// A label chosen by the owner.
    pub name: Option<String>,
    /// Client key/value pairs.
    pub metadata: Metadata,
    /// How far below zero `available` may go.
    pub overdraft: Overdraft,
    /// Whether it may take part in new movements.
    pub status: AccountStatus,
    /// Posted and pending figures.
    pub balance: Balance,
    /// When it was opened.
    pub created_at: Timestamp,
}

/// Why a new account was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// Overdraft limits are amounts below zero expressed as a non-negative number.
    #[error("overdraft limit must not be negative")]
    NegativeOverdraft,
    /// Only customer accounts have owners; system accounts belong to the house.
    #[error("customer accounts need an owner and system accounts must not have one")]
    OwnerMismatch,
    /// An account with this id exists already.
    #[error("account {0} already exists")]
    Duplicate(AccountId),
    /// There is already a system account of this kind and currency.
    #[error("a {kind:?} account for {currency} exists already")]
    DuplicateSystemAccount {
        /// Its kind.
        kind: AccountKind,
        /// Its currency.
        currency: Currency,
    },
}

/// What is needed to open an account. Balances start at zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    /// The id to give it.
    pub id: AccountId,
    /// The owner (customer accounts) or `None` (system accounts).
    pub owner: Option<UserId>,
    /// What it is for.
    pub kind: AccountKind,
    /// Its currency.
    pub currency: Currency,
    /// A label.
    pub name: Option<String>,
    /// Client key/value pairs.
    pub metadata: Metadata,
    /// Its floor.
    pub overdraft: Overdraft,
}

impl NewAccount {
    /// A customer account with no overdraft.
    pub fn customer(id: AccountId, owner: UserId, currency: Currency) -> NewAccount {
        NewAccount {
            id,
            owner: Some(owner),
            kind: AccountKind::Customer,
            currency,
            name: None,
            metadata: Metadata::new(),
            overdraft: Overdraft::NONE,
        }
    }

    /// A house account. Settlement and liquidity accounts have no floor, because they mirror
    /// positions outside the ledger; clearing and fee accounts never go below zero.
    pub fn system(id: AccountId, kind: AccountKind, currency: Currency) -> NewAccount {
        let overdraft = match kind {
            AccountKind::Settlement | AccountKind::Liquidity => Overdraft::Unlimited,
            _ => Overdraft::NONE,
        };
        NewAccount {
            id,
            owner: None,
            kind,
            currency,
            name: Some(format!("{} {}", kind.as_str(), currency)),
            metadata: Metadata::new(),
            overdraft,
        }
    }

    /// Validates and opens the account with zero balances.
    pub fn open(self, now: Timestamp) -> Result<Account, AccountError> {
        if let Overdraft::Limit(limit) = self.overdraft
            && limit.is_negative()
        {
            return Err(AccountError::NegativeOverdraft);
        }
        if (self.kind == AccountKind::Customer) != self.owner.is_some() {
            return Err(AccountError::OwnerMismatch);
        }
        Ok(Account {
            id: self.id,
            owner: self.owner,
            kind: self.kind,
            currency: self.currency,
            name: self.name,
            metadata: self.metadata,
            overdraft: self.overdraft,
            status: AccountStatus::Active,
            balance: Balance::default(),
            created_at: now,
        })
    }
}
