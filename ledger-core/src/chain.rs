//! Tamper evidence: one hash chain per account.
//!
//! Every posting carries `hash = SHA-256(previous hash of its account || the posting || its
//! entry's header)`, and the account keeps the head of its chain. The store computes the link
//! while it already holds the account's row lock (to update the balance), so the chain adds no
//! lock and no serialisation point beyond the ones the ledger already has: two transfers on
//! different accounts never wait on each other for it.
//!
//! Recon recomputes every account's chain from [`GENESIS`] (or from a verified checkpoint) and
//! names the first posting whose stored hash differs. An edit to a posting's amount, account,
//! currency, running balance or time, or to its entry's kind, description or time, changes
//! that link and every later one; a deleted posting breaks the next link (or, for the last one,
//! the account's head). The hash is not keyed: someone able to rewrite a whole chain and its
//! head consistently is caught only against a head recorded outside the database (recon
//! reports carry them). See docs/ARCHITECTURE.md.

use sha2::{Digest, Sha256};

use crate::ids::{AccountId, EntryId};
use crate::money::Micros;

/// The "previous hash" of an account's first posting.
pub const GENESIS: [u8; 32] = [0; 32];

/// Domain separation, and the version of the link layout below.
const DOMAIN: &[u8] = b"ledger-chain-v1";

/// What one link of an account's chain covers: the posting and its entry's header.
#[derive(Clone, Copy, Debug)]
pub struct Link<'a> {
    /// The posting's entry.
    pub entry: EntryId,
    /// The entry's kind, as stored (`transfer`, `payout_settle`, ...).
    pub entry_kind: &'a str,
    /// The entry's description.
    pub description: Option<&'a str>,
    /// The entry's time, in Unix microseconds.
    pub entry_at_micros: i64,
    /// The posting's place within its entry.
    pub position: i16,
    /// The account posted to.
    pub account: AccountId,
    /// The posting's currency code, as stored.
    pub currency: &'a str,
    /// The signed amount.
    pub amount: Micros,
    /// The account's balance right after it.
    pub balance_after: Micros,
    /// The posting's time, in Unix microseconds.
    pub posted_at_micros: i64,
}

impl Link<'_> {
    /// The link's hash, given the hash before it in the account's chain.
    pub fn hash(&self, previous: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update(previous);
        h.update(self.entry.0.as_bytes());
        // Variable-length fields are length-prefixed so that no two layouts collide.
        h.update((self.entry_kind.len() as u64).to_be_bytes());
        h.update(self.entry_kind.as_bytes());
        match self.description {
            Some(text) => {
                h.update([1]);
                h.update((text.len() as u64).to_be_bytes());
                h.update(text.as_bytes());
            }
            None => h.update([0]),
        }
        h.update(self.entry_at_micros.to_be_bytes());
        h.update(self.position.to_be_bytes());
        h.update(self.account.0.as_bytes());
        h.update(self.currency.as_bytes());
        h.update(self.amount.get().to_be_bytes());
        h.update(self.balance_after.get().to_be_bytes());
        h.update(self.posted_at_micros.to_be_bytes());
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn link(amount: i64, description: Option<&str>) -> Link<'_> {
        Link {
            entry: EntryId(Uuid::from_u128(7)),
            entry_kind: "transfer",
            description,
            entry_at_micros: 1_767_225_600_000_000,
            position: 0,
            account: AccountId(Uuid::from_u128(9)),
            currency: "USD",
            amount: Micros::new(amount),
            balance_after: Micros::new(amount),
            posted_at_micros: 1_767_225_600_000_000,
        }
    }

    #[test]
    fn every_field_and_the_previous_hash_change_the_link() {
        let base = link(100, Some("rent")).hash(&GENESIS);
        assert_eq!(base, link(100, Some("rent")).hash(&GENESIS), "deterministic");
        assert_ne!(base, link(101, Some("rent")).hash(&GENESIS));
        assert_ne!(base, link(100, Some("rent!")).hash(&GENESIS));
        assert_ne!(base, link(100, None).hash(&GENESIS));
        assert_ne!(base, link(100, Some("rent")).hash(&[1; 32]));
        let mut other = link(100, Some("rent"));
        other.entry_kind = "deposit";
        assert_ne!(base, other.hash(&GENESIS));
        other = link(100, Some("rent"));
        other.position = 1;
        assert_ne!(base, other.hash(&GENESIS));
        other = link(100, Some("rent"));
        other.currency = "EUR";
        assert_ne!(base, other.hash(&GENESIS));
        other = link(100, Some("rent"));
        other.posted_at_micros += 1;
        assert_ne!(base, other.hash(&GENESIS));
    }

    #[test]
    fn an_empty_description_is_not_a_missing_one() {
        assert_ne!(link(1, Some("")).hash(&GENESIS), link(1, None).hash(&GENESIS));
    }
}
