//! Embedding `ledger-core`: a walk through every recipe on the in-memory store, printing what
//! happens. Run it with `cargo run -p ledger-core --example embed`.
//!
//! The ports are async but need no particular runtime; `pollster` drives them here.

use std::sync::Arc;
use std::time::Duration;

use ledger_core::ports::{PayoutProvider, ProviderRequest};
use ledger_core::recon::reconcile;
use ledger_core::{
    AccountId, Currency, FxRate, Ledger, LedgerError, LedgerStore, ManualClock, MemoryStore, PayoutDirection,
    PayoutStatus, ScriptedBank, SequentialIds, Timestamp, UserId,
};

fn main() {
    if let Err(error) = pollster::block_on(walkthrough()) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

async fn walkthrough() -> Result<(), LedgerError> {
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_767_225_600)));
    let ledger = Ledger::new(Arc::new(MemoryStore::new()), clock.clone(), Arc::new(SequentialIds::default()));
    for currency in [Currency::USD, Currency::EUR] {
        ledger.open_system_accounts(currency).await?;
    }
    let (alice, bob): (UserId, UserId) = (ledger.new_id(), ledger.new_id());
    let alice_usd = ledger.open_customer_account(alice, Currency::USD).await?.id;
    let bob_usd = ledger.open_customer_account(bob, Currency::USD).await?.id;
    let bob_eur = ledger.open_customer_account(bob, Currency::EUR).await?.id;
    let usd = |text| Currency::USD.parse_amount(text).expect("valid amount");

    ledger.deposit(alice_usd, usd("150.00"), Some("wire 42".into())).await?;
    println!("deposit   150.00 USD to alice");
    ledger.transfer(alice_usd, bob_usd, usd("40.25")).await?;
    println!("transfer   40.25 USD alice -> bob");

    ledger.set_rate(Currency::USD, Currency::EUR, FxRate::parse("0.92").expect("valid rate"), 25).await?;
    let quote = ledger.quote(bob, Currency::USD, Currency::EUR, usd("10.00"), Duration::from_secs(30)).await?;
    ledger.exchange(bob_usd, bob_eur, usd("10.00"), Some(quote.id)).await?;
    println!(
        "exchange   10.00 USD -> {} EUR at {} (0.92 less 25 bp, rounded toward the house)",
        Currency::EUR.format_amount(quote.to_amount),
        quote.rate
    );

    let hold = ledger.hold(alice_usd, bob_usd, usd("20.00"), None).await?.hold.expect("a hold");
    print_balance(&ledger, "alice after a 20.00 hold", alice_usd).await?;
    ledger.capture(hold.id, Some(usd("15.00"))).await?;
    println!("capture    15.00 of the 20.00 hold; 5.00 released");

    let payout = ledger
        .request_bank_transfer(PayoutDirection::Outbound, alice_usd, usd("50.00"), None, Some("rent".into()))
        .await?
        .payout
        .expect("a payout");
    print_balance(&ledger, "alice with a 50.00 payout in flight", alice_usd).await?;
    let bank = ScriptedBank::new();
    ledger.advance_payout(payout.id, PayoutStatus::Processing, None).await?;
    let request = ProviderRequest {
        payout: payout.id,
        direction: payout.direction,
        amount: payout.amount,
        currency: payout.currency,
        bank_account: None,
    };
    let outcome = bank.execute(&request).await;
    let status = if outcome.is_ok() { PayoutStatus::Completed } else { PayoutStatus::Failed };
    ledger.advance_payout(payout.id, status, None).await?;
    println!("payout     50.00 USD: {}", status.as_str());

    for (name, account) in [("alice USD", alice_usd), ("bob USD", bob_usd), ("bob EUR", bob_eur)] {
        print_balance(&ledger, name, account).await?;
    }
    let discrepancies = reconcile(&ledger.store().snapshot());
    println!(
        "reconciliation: {}",
        if discrepancies.is_empty() { "clean".to_owned() } else { format!("{discrepancies:?}") }
    );
    Ok(())
}

async fn print_balance(ledger: &Ledger<MemoryStore>, name: &str, account: AccountId) -> Result<(), LedgerError> {
    let currency = ledger.store().account(account).await?.expect("exists").currency;
    let balance = ledger.balance(account).await?;
    let available = balance.available().expect("in range");
    println!(
        "{name:<38} posted {:>8} pending {:>7} available {:>8} {currency}",
        currency.format_amount(balance.posted),
        currency.format_amount(balance.pending),
        currency.format_amount(available),
    );
    Ok(())
}
