-- Outbound webhooks: endpoints users register, one delivery per (event, endpoint), and every
-- attempt at sending it. The relay fans unpublished outbox rows out into deliveries and sends
-- them (see ledger-core/src/webhook.rs).

-- The payout's status after the change, so payout.status_changed carries it.
ALTER TABLE outbox ADD COLUMN payout_status TEXT;

CREATE TABLE webhook_endpoints (
    id          UUID PRIMARY KEY,
    -- Only events on this user's accounts reach the endpoint.
    owner_id    UUID NOT NULL REFERENCES users (id),
    url         TEXT NOT NULL CHECK (length(url) <= 2048),
    -- Subscribed event kinds (wire names), at least one.
    events      TEXT[] NOT NULL CHECK (cardinality(events) > 0),
    -- The HMAC-SHA256 key deliveries are signed with; returned once, at creation.
    secret      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    -- Set on delete: nothing more is fanned out or sent; the delivery log stays.
    deleted_at  TIMESTAMPTZ
);
CREATE INDEX webhook_endpoints_by_owner ON webhook_endpoints (owner_id, id) WHERE deleted_at IS NULL;

CREATE TABLE webhook_deliveries (
    id              UUID PRIMARY KEY,
    endpoint_id     UUID NOT NULL REFERENCES webhook_endpoints (id),
    -- The outbox event (its id is the event id receivers deduplicate by).
    event_id        BIGINT NOT NULL REFERENCES outbox (id),
    event_type      TEXT NOT NULL,
    -- The JSON body, rendered once at fan-out: every attempt sends the same bytes.
    body            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead_lettered')),
    -- Times claimed (a claim counts an attempt, so a relay dying mid-send still uses one up).
    claims          INT NOT NULL DEFAULT 0,
    -- Due time of the next attempt while pending; NULL once delivered or dead-lettered.
    next_attempt_at TIMESTAMPTZ,
    -- Set while a relay holds it; a delivery whose lease ran out is due again.
    leased_until    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (endpoint_id, event_id),
    CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);

CREATE TABLE webhook_delivery_attempts (
    delivery_id UUID NOT NULL REFERENCES webhook_deliveries (id),
    attempt     INT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    -- The receiver's HTTP status, when it answered.
    status_code INT,
    -- Why there was no answer (refused, timed out), when there was none.
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
