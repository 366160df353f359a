-- Reconciliation: the per-account hash chain, chunked and resumable recon runs, and checkpoints
-- for incremental runs. See ledger-core's `chain` module and the ledger-recon crate.

-- Tamper evidence: each posting's link in its account's hash chain (SHA-256 over the previous
-- link, the posting and its entry's header), and the account's latest link. Written by the
-- ledger while it holds the account's row lock, so the chain adds no lock of its own. NULL on
-- an account means "no postings yet"; NULL on a posting only for rows written before 0004
-- (recon reports those as broken links).
ALTER TABLE postings ADD COLUMN chain_hash BYTEA CHECK (length(chain_hash) = 32);
ALTER TABLE accounts ADD COLUMN chain_hash BYTEA CHECK (length(chain_hash) = 32);

-- What a run was: a check of the ledger itself, or a match against a bank statement; over
-- everything, or from the last checkpoints on.
ALTER TABLE recon_runs
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'ledger' CHECK (kind IN ('ledger', 'statement')),
    ADD COLUMN mode TEXT NOT NULL DEFAULT 'full' CHECK (mode IN ('full', 'incremental')),
    -- How many discrepancies the report holds (0 for a clean run).
    ADD COLUMN discrepancies INTEGER NOT NULL DEFAULT 0 CHECK (discrepancies >= 0);
CREATE INDEX recon_runs_by_start ON recon_runs (started_at DESC, id DESC);
-- Joiners look for the run in progress.
CREATE INDEX recon_runs_running ON recon_runs (started_at) WHERE status = 'running';

-- A run's work, in account ranges, claimed by recon processes (FOR UPDATE SKIP LOCKED) under a
-- lease; a chunk whose process died is claimed again once its lease has passed.
CREATE TABLE recon_chunks (
    run_id        UUID NOT NULL REFERENCES recon_runs (id),
    chunk         INTEGER NOT NULL CHECK (chunk >= 0),
    -- Accounts with first_account <= id < end_account (no upper bound when NULL).
    first_account UUID NOT NULL,
    end_account   UUID,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'done')),
    -- The process holding it, and until when.
    owner         TEXT,
    locked_until  TIMESTAMPTZ,
    attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- What the chunk found and read, once done.
    findings      JSONB NOT NULL DEFAULT '[]'::jsonb,
    stats         JSONB NOT NULL DEFAULT '{}'::jsonb,
    finished_at   TIMESTAMPTZ,
    PRIMARY KEY (run_id, chunk)
);

-- Per account, how far recon has verified it: the last posting checked, the balance and the
-- chain link there. Incremental runs start from here; a full run starts from the beginning and
-- moves these forward. Not advanced for an account with a discrepancy, so it is reported again.
CREATE TABLE recon_checkpoints (
    account_id     UUID PRIMARY KEY REFERENCES accounts (id),
    posting_seq    BIGINT NOT NULL,
    balance_micros BIGINT NOT NULL,
    chain_hash     BYTEA NOT NULL CHECK (length(chain_hash) = 32),
    run_id         UUID NOT NULL,
    verified_at    TIMESTAMPTZ NOT NULL
);

-- Recon's per-account pending check, and its payout checks.
CREATE INDEX holds_open_by_account ON holds (from_account_id) WHERE status = 'PENDING';
CREATE INDEX journal_entries_by_payout ON journal_entries (payout_id) WHERE payout_id IS NOT NULL;
