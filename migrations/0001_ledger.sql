-- The ledger's schema: one for every binary (service, payout worker, recon).
--
-- Money columns are BIGINT micros (1 unit = 1,000,000 micros); FX rates are NUMERIC. Time is
-- TIMESTAMPTZ (microsecond resolution, the same as ledger-core's Timestamp). Ids are UUIDs made by
-- the application (v7, time-ordered), never by the database, because ledger-core takes ids as
-- parameters.
--
-- The database defends the accounting invariants as well as the code: entries, postings and the
-- audit log are append-only (triggers), every entry must balance per currency at commit (deferred
-- constraint trigger), every account stays within its overdraft limit (CHECK), and uniqueness
-- rules (idempotency key per user, payout reference per user, inbound webhook event id, one
-- reversal per entry, one system account per kind and currency) are constraints.

-- Users of the service. Accounts name their owner by id; the foreign key from accounts is left
-- out on purpose so that the ledger core can be used (and conformance-tested) without the user
-- management of the HTTP service.
CREATE TABLE users (
    id            UUID PRIMARY KEY,
    -- Login name: unique, so login can look it up.
    username      TEXT NOT NULL UNIQUE CHECK (length(username) BETWEEN 3 AND 64),
    -- Contact address: unique so one person cannot register twice under other names.
    email         TEXT NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
    -- argon2 PHC string; the password itself is never stored.
    password_hash TEXT NOT NULL,
    -- What the user may do: 'user' moves their own money, 'admin' operates the ledger.
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE accounts (
    id                     UUID PRIMARY KEY,
    -- The owning user for customer accounts; NULL for the house's system accounts.
    owner_id               UUID,
    -- What the account is for (see ledger-core's AccountKind).
    kind                   TEXT NOT NULL
        CHECK (kind IN ('customer', 'settlement', 'liquidity', 'payout_clearing', 'fees')),
    -- ISO 4217 code; an account holds exactly one currency.
    currency               CHAR(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- The owner's label and free-form key/value pairs.
    name                   TEXT,
    metadata               JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- How far below zero `available` may go; NULL means no floor (settlement, liquidity).
    overdraft_limit_micros BIGINT CHECK (overdraft_limit_micros >= 0),
    -- Whether the account can take part in new movements.
    status                 TEXT NOT NULL CHECK (status IN ('active', 'frozen', 'closed')),
    -- The sum of the account's postings (kept here so a balance read is one row).
    posted_micros          BIGINT NOT NULL DEFAULT 0,
    -- The sum of its open hold debits.
    pending_micros         BIGINT NOT NULL DEFAULT 0 CHECK (pending_micros >= 0),
    created_at             TIMESTAMPTZ NOT NULL,
    -- Customer accounts have owners; system accounts do not.
    CONSTRAINT accounts_owner_matches_kind CHECK ((kind = 'customer') = (owner_id IS NOT NULL)),
    -- The last line of defence for "never below the floor": available >= -limit.
    CONSTRAINT accounts_within_overdraft
        CHECK (overdraft_limit_micros IS NULL OR posted_micros - pending_micros >= -overdraft_limit_micros)
);
-- One house account per kind and currency, so recipes can find "the" settlement account.
CREATE UNIQUE INDEX accounts_one_system_account ON accounts (kind, currency) WHERE kind <> 'customer';
-- "My accounts" lists.
CREATE INDEX accounts_by_owner ON accounts (owner_id, id) WHERE owner_id IS NOT NULL;

-- Two-phase holds: funds reserved on one account for another until captured, voided or expired.
CREATE TABLE holds (
    id              UUID PRIMARY KEY,
    -- The account whose funds are reserved, and the one that receives them on capture.
    from_account_id UUID NOT NULL REFERENCES accounts (id),
    to_account_id   UUID NOT NULL REFERENCES accounts (id),
    currency        CHAR(3) NOT NULL,
    -- The reserved amount, and what was captured of it once posted.
    amount_micros   BIGINT NOT NULL CHECK (amount_micros > 0),
    captured_micros BIGINT CHECK (captured_micros > 0 AND captured_micros <= amount_micros),
    status          TEXT NOT NULL CHECK (status IN ('PENDING', 'POSTED', 'VOIDED', 'EXPIRED')),
    -- When the expiry sweep may release it; NULL holds until captured or voided.
    expires_at      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    -- When it stopped reserving funds: point-in-time pending balances need it.
    resolved_at     TIMESTAMPTZ,
    -- The capture entry (no foreign key: the entry references the hold, which is written first).
    entry_id        UUID,
    CONSTRAINT holds_resolved_iff_final CHECK ((status = 'PENDING') = (resolved_at IS NULL)),
    CONSTRAINT holds_captured_iff_posted CHECK ((status = 'POSTED') = (captured_micros IS NOT NULL))
);
-- The expiry sweep's work list.
CREATE INDEX holds_pending_expiry ON holds (expires_at) WHERE status = 'PENDING' AND expires_at IS NOT NULL;
-- Point-in-time pending balances.
CREATE INDEX holds_by_account ON holds (from_account_id, created_at);

-- Payouts and API-initiated deposits: money crossing the bank boundary, asynchronously.
CREATE TABLE payouts (
    id                    UUID PRIMARY KEY,
    -- The customer who asked; references are unique per owner.
    owner_id              UUID NOT NULL,
    -- 'payout' (money out) or 'deposit' (pulled in from the customer's bank).
    direction             TEXT NOT NULL CHECK (direction IN ('payout', 'deposit')),
    account_id            UUID NOT NULL REFERENCES accounts (id),
    -- Where outbound funds wait while in flight (NULL for deposits).
    clearing_account_id   UUID REFERENCES accounts (id),
    settlement_account_id UUID NOT NULL REFERENCES accounts (id),
    amount_micros         BIGINT NOT NULL CHECK (amount_micros > 0),
    currency              CHAR(3) NOT NULL,
    -- The customer's bank account.
    bank_iban             TEXT,
    bank_name             TEXT,
    -- The customer's own reference.
    reference             TEXT,
    status                TEXT NOT NULL CHECK (status IN
        ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'MANUAL_REVIEW', 'CANCELLED', 'REVERSED')),
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    -- The work queue, kept on the row: when the item is next due (NULL once no worker has anything
    -- left to do), until when a worker's lease on it lasts, and how often it was claimed.
    next_attempt_at       TIMESTAMPTZ,
    locked_until          TIMESTAMPTZ,
    attempts              INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    CONSTRAINT payouts_reference_unique_per_owner UNIQUE (owner_id, reference),
    CONSTRAINT payouts_clearing_iff_outbound CHECK ((direction = 'payout') = (clearing_account_id IS NOT NULL)),
    CONSTRAINT payouts_queued_iff_live
        CHECK ((status IN ('PENDING', 'PROCESSING')) = (next_attempt_at IS NOT NULL))
);
-- The claim query: due items in due order.
CREATE INDEX payouts_due ON payouts (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX payouts_by_owner ON payouts (owner_id, id);
CREATE INDEX payouts_by_account ON payouts (account_id, id);
CREATE INDEX payouts_by_status ON payouts (status, id);

-- Every status a payout went through, oldest first.
CREATE TABLE payout_status_history (
    payout_id   UUID NOT NULL REFERENCES payouts (id),
    -- Position in the payout's history (0 = creation).
    seq         INTEGER NOT NULL CHECK (seq >= 0),
    from_status TEXT,
    to_status   TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    -- Why, when someone said (admin resolution notes, provider errors).
    note        TEXT,
    -- The entry the transition posted, if it moved money.
    entry_id    UUID,
    PRIMARY KEY (payout_id, seq)
);

-- Each call to the bank for a payout, for operators and for "paid at most once" audits.
CREATE TABLE payout_attempts (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payout_id          UUID NOT NULL REFERENCES payouts (id),
    attempt            INTEGER NOT NULL CHECK (attempt > 0),
    started_at         TIMESTAMPTZ NOT NULL,
    finished_at        TIMESTAMPTZ,
    -- 'succeeded', 'timeout', 'unavailable', 'insufficient_funds', 'rejected'.
    outcome            TEXT,
    error              TEXT,
    provider_reference TEXT
);
CREATE INDEX payout_attempts_by_payout ON payout_attempts (payout_id, attempt);

-- Journal entries: one balanced transaction each. Append-only.
CREATE TABLE journal_entries (
    id                     UUID PRIMARY KEY,
    -- Commit-independent write order, for recon's incremental checkpoints.
    seq                    BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind                   TEXT NOT NULL CHECK (kind IN ('transfer', 'exchange', 'deposit', 'hold_capture',
        'payout_hold', 'payout_settle', 'payout_release', 'payout_return', 'deposit_return', 'reversal')),
    description            TEXT,
    metadata               JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- The entry this one reverses; UNIQUE, so an entry can be reversed only once.
    reverses_entry_id      UUID UNIQUE REFERENCES journal_entries (id),
    -- The hold this entry captures, and the payout it belongs to.
    hold_id                UUID REFERENCES holds (id),
    payout_id              UUID REFERENCES payouts (id),
    -- FX details of an exchange: the effective rate and both amounts.
    fx_rate                NUMERIC,
    fx_from_amount_micros  BIGINT,
    fx_to_amount_micros    BIGINT,
    fx_quote_id            UUID,
    created_at             TIMESTAMPTZ NOT NULL,
    CONSTRAINT journal_entries_reversal_links CHECK ((kind = 'reversal') = (reverses_entry_id IS NOT NULL)),
    CONSTRAINT journal_entries_fx_iff_exchange CHECK ((kind = 'exchange') = (fx_rate IS NOT NULL))
);

-- Postings: the legs of entries. Append-only.
CREATE TABLE postings (
    -- Global write order: statements page on (account_id, seq), the running balance follows it.
    seq                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id             UUID NOT NULL REFERENCES journal_entries (id),
    -- The leg's place within its entry.
    position             SMALLINT NOT NULL CHECK (position >= 0),
    account_id           UUID NOT NULL REFERENCES accounts (id),
    currency             CHAR(3) NOT NULL,
    -- Signed: positive credits the account, negative debits it; never zero.
    amount_micros        BIGINT NOT NULL CHECK (amount_micros <> 0),
    -- The account's posted balance right after this posting, so statements and point-in-time
    -- balances never sum history.
    balance_after_micros BIGINT NOT NULL,
    -- The entry's time, copied so point-in-time balance reads need no join.
    created_at           TIMESTAMPTZ NOT NULL,
    UNIQUE (entry_id, position)
);
CREATE INDEX postings_by_account ON postings (account_id, seq);
CREATE INDEX postings_by_account_time ON postings (account_id, created_at, seq);

-- FX rates set by admins, one per ordered pair.
CREATE TABLE fx_rates (
    base_currency  CHAR(3) NOT NULL,
    quote_currency CHAR(3) NOT NULL,
    -- Mid-market rate: units of quote per unit of base.
    mid_rate       NUMERIC NOT NULL CHECK (mid_rate > 0),
    -- What the house keeps, in basis points.
    spread_bps     INTEGER NOT NULL CHECK (spread_bps >= 0 AND spread_bps < 10000),
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (base_currency, quote_currency),
    CHECK (base_currency <> quote_currency)
);

-- Quotes: a rate locked for one customer and amount until it expires.
CREATE TABLE fx_quotes (
    id                 UUID PRIMARY KEY,
    owner_id           UUID NOT NULL,
    from_currency      CHAR(3) NOT NULL,
    to_currency        CHAR(3) NOT NULL,
    -- The effective rate, spread included.
    rate               NUMERIC NOT NULL CHECK (rate > 0),
    from_amount_micros BIGINT NOT NULL CHECK (from_amount_micros > 0),
    to_amount_micros   BIGINT NOT NULL CHECK (to_amount_micros >= 0),
    expires_at         TIMESTAMPTZ NOT NULL
);

-- Idempotency records, scoped per user: the first response to a keyed request, replayed on retry.
CREATE TABLE idempotency_keys (
    user_id         UUID NOT NULL,
    key             TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- Digest of the request, to tell a retry from a different request under the same key.
    fingerprint     BYTEA NOT NULL CHECK (length(fingerprint) = 32),
    -- 'in_flight' while the first request runs (leased until lease_until), then 'done'.
    state           TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),
    lease_until     TIMESTAMPTZ,
    response_status INTEGER,
    response_body   BYTEA,
    -- When a done record is forgotten.
    expires_at      TIMESTAMPTZ,
    PRIMARY KEY (user_id, key),
    CONSTRAINT idempotency_state_fields CHECK (
        (state = 'in_flight' AND lease_until IS NOT NULL)
        OR (state = 'done' AND response_status IS NOT NULL AND response_body IS NOT NULL AND expires_at IS NOT NULL))
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at) WHERE state = 'done';

-- Inbound deposit webhooks already credited: a repeated event id credits once.
CREATE TABLE inbound_webhook_events (
    event_id    TEXT PRIMARY KEY,
    entry_id    UUID NOT NULL REFERENCES journal_entries (id),
    received_at TIMESTAMPTZ NOT NULL
);

-- The audit log: who did what to which entity. Append-only.
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    -- The acting user, when there is one (NULL for workers and the system).
    actor_id    UUID,
    action      TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id   UUID NOT NULL,
    details     JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_by_entity ON audit_log (entity_type, entity_id, id);

-- The outbox: domain events written in the same transaction as the change they describe, relayed
-- to webhooks afterwards (at least once).
CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type   TEXT NOT NULL,
    entry_id     UUID,
    hold_id      UUID,
    payout_id    UUID,
    -- Every account touched; their owners are the audience.
    account_ids  UUID[] NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    -- Set by the relay once delivered to every subscriber (or dead-lettered).
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Reconciliation runs and their reports.
CREATE TABLE recon_runs (
    id          UUID PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    status      TEXT NOT NULL CHECK (status IN ('running', 'clean', 'discrepancies', 'failed')),
    report      JSONB NOT NULL DEFAULT '{}'::jsonb
);

-- Append-only tables: an UPDATE, DELETE or TRUNCATE is refused outright. Corrections are new rows
-- (a reversal entry), never edits.
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER journal_entries_no_truncate BEFORE TRUNCATE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Every entry balances per currency, checked at commit (deferred), when all its postings are in.
CREATE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced RECORD;
BEGIN
    SELECT currency, sum(amount_micros) AS total INTO unbalanced
    FROM postings WHERE entry_id = NEW.entry_id
    GROUP BY currency HAVING sum(amount_micros) <> 0
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'entry % does not balance in %: sum %', NEW.entry_id, unbalanced.currency, unbalanced.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER postings_entry_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();
