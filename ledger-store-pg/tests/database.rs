//! The database defends the invariants by itself: append-only tables, balanced entries at
//! commit, the overdraft floor, and the uniqueness rules, even against plain SQL.

use std::sync::Arc;

use ledger_core::{AccountId, Currency, Ledger, ManualClock, Micros, SequentialIds, Timestamp, UserId};
use ledger_store_pg::PgStore;
use ledger_store_pg::testing::{TestDatabase, fresh_database};

struct World {
    database: TestDatabase,
    ledger: Ledger<PgStore>,
    alice: AccountId,
    bob: AccountId,
}

fn usd(text: &str) -> Micros {
    Currency::USD.parse_amount(text).unwrap()
}

/// Alice has 100.00 USD and has sent 40.00 of it to Bob.
async fn world() -> World {
    let database = fresh_database().await.expect("a test database");
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_800_000_000)));
    let ledger = Ledger::new(Arc::new(database.store()), clock, Arc::new(SequentialIds::default()));
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    let owner: UserId = ledger.new_id();
    let alice = ledger.open_customer_account(owner, Currency::USD).await.unwrap().id;
    let bob = ledger.open_customer_account(owner, Currency::USD).await.unwrap().id;
    ledger.deposit(alice, usd("100"), None).await.unwrap();
    ledger.transfer(alice, bob, usd("40")).await.unwrap();
    World { database, ledger, alice, bob }
}

/// Runs a statement that must fail, and returns the database's SQLSTATE and message.
async fn refused(database: &TestDatabase, statement: &'static str) -> (String, String) {
    let error = sqlx::query(statement).execute(&database.pool).await.expect_err(statement);
    let db = error.as_database_error().expect("a database error");
    (db.code().unwrap_or_default().into_owned(), db.message().to_owned())
}

#[tokio::test]
async fn postings_entries_and_the_audit_log_are_append_only() {
    let w = world().await;
    for statement in [
        "UPDATE postings SET amount_micros = amount_micros + 1",
        "DELETE FROM postings",
        "TRUNCATE postings",
        "UPDATE journal_entries SET description = 'edited'",
        "DELETE FROM journal_entries",
        "TRUNCATE journal_entries CASCADE",
        "UPDATE audit_log SET action = 'edited'",
        "DELETE FROM audit_log",
    ] {
        let (code, message) = refused(&w.database, statement).await;
        assert_eq!(code, "42501", "{statement}: {message}");
        assert!(message.contains("append-only"), "{statement}: {message}");
    }
    // Nothing changed: the books still balance.
    assert!(ledger_core::recon::reconcile(&w.ledger.store().snapshot().await.unwrap()).is_empty());
    w.database.drop_database().await;
}

#[tokio::test]
async fn an_unbalanced_entry_cannot_be_written() {
    let w = world().await;
    let mut tx = w.database.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO journal_entries (id, kind, created_at) VALUES ('00000000-0000-0000-0000-0000000000ee', 'transfer', now())",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let error = sqlx::query(
        "INSERT INTO postings (entry_id, position, account_id, currency, amount_micros, balance_after_micros, created_at) \
         VALUES ('00000000-0000-0000-0000-0000000000ee', 0, $1, 'USD', 5, 5, now())",
    )
    .bind(w.bob.0)
    .execute(&mut *tx)
    .await
    .expect_err("an entry must balance within the statement that writes its postings");
    let db = error.as_database_error().unwrap();
    assert_eq!(db.code().as_deref(), Some("23514"));
    assert!(db.message().contains("does not balance"), "{}", db.message());
    drop(tx);
    w.database.drop_database().await;
}

#[tokio::test]
async fn an_account_cannot_be_pushed_below_its_floor_by_sql() {
    let w = world().await;
    let error = sqlx::query("UPDATE accounts SET posted_micros = -1 WHERE id = $1")
        .bind(w.alice.0)
        .execute(&w.database.pool)
        .await
        .expect_err("below zero");
    assert_eq!(error.as_database_error().unwrap().constraint(), Some("accounts_within_overdraft"));
    let error = sqlx::query("UPDATE accounts SET pending_micros = posted_micros + 1 WHERE id = $1")
        .bind(w.alice.0)
        .execute(&w.database.pool)
        .await
        .expect_err("holds beyond the balance");
    assert_eq!(error.as_database_error().unwrap().constraint(), Some("accounts_within_overdraft"));
    w.database.drop_database().await;
}

#[tokio::test]
async fn uniqueness_rules_are_constraints() {
    let w = world().await;
    let (code, _) = refused(
        &w.database,
        "INSERT INTO accounts (id, kind, currency, status, created_at) \
         VALUES ('00000000-0000-0000-0000-00000000abcd', 'settlement', 'USD', 'active', now())",
    )
    .await;
    assert_eq!(code, "23505", "one settlement account per currency");
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, state, lease_until) \
         VALUES ('00000000-0000-0000-0000-000000000001', 'k', decode(repeat('00', 32), 'hex'), 'in_flight', now())",
    )
    .execute(&w.database.pool)
    .await
    .unwrap();
    let (code, _) = refused(
        &w.database,
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, state, lease_until) \
         VALUES ('00000000-0000-0000-0000-000000000001', 'k', decode(repeat('11', 32), 'hex'), 'in_flight', now())",
    )
    .await;
    assert_eq!(code, "23505", "one record per user and key");
    let entry: (uuid::Uuid,) =
        sqlx::query_as("SELECT id FROM journal_entries LIMIT 1").fetch_one(&w.database.pool).await.unwrap();
    sqlx::query("INSERT INTO inbound_webhook_events (event_id, entry_id, received_at) VALUES ('evt-1', $1, now())")
        .bind(entry.0)
        .execute(&w.database.pool)
        .await
        .unwrap();
    let error =
        sqlx::query("INSERT INTO inbound_webhook_events (event_id, entry_id, received_at) VALUES ('evt-1', $1, now())")
            .bind(entry.0)
            .execute(&w.database.pool)
            .await
            .expect_err("a webhook event is recorded once");
    assert_eq!(error.as_database_error().unwrap().code().as_deref(), Some("23505"));
    w.database.drop_database().await;
}
