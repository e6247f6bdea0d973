-- scopay schema, version 2: payments with their status history, RTGS account policies,
-- and participants' mailboxes.
CREATE TABLE payment (
    uetr             TEXT PRIMARY KEY,
    sender_bic       TEXT NOT NULL,
    instruction_id   TEXT NOT NULL,
    content          TEXT NOT NULL,           -- the payment as JSON, exactly as accepted
    status           TEXT NOT NULL,
    debtor_account   INTEGER,
    creditor_account INTEGER,
    sequence         INTEGER NOT NULL,        -- queue position (FIFO within priority)
    priority         TEXT NOT NULL,
    latest_us        INTEGER,
    reject_by_us     INTEGER,
    UNIQUE (sender_bic, instruction_id)
);
CREATE INDEX payment_open ON payment (status) WHERE status IN ('queued', 'accepted');

CREATE TABLE payment_event (
    seq     INTEGER PRIMARY KEY,
    uetr    TEXT NOT NULL REFERENCES payment (uetr),
    status  TEXT NOT NULL,
    at_us   INTEGER NOT NULL,
    reason  TEXT,
    detail  TEXT
);
CREATE INDEX payment_event_by_uetr ON payment_event (uetr, seq);

CREATE TABLE account_policy (
    account_id               INTEGER PRIMARY KEY REFERENCES account (id),
    reserved_urgent_minor    INTEGER NOT NULL,
    reserved_high_minor      INTEGER NOT NULL,
    multilateral_limit_minor INTEGER,
    bilateral_limits         TEXT NOT NULL    -- JSON: {"creditor account id": limit_minor}
);

CREATE TABLE mailbox (
    seq             INTEGER PRIMARY KEY,
    participant_bic TEXT NOT NULL,
    kind            TEXT NOT NULL,            -- status_report, credit_notification, ...
    uetr            TEXT,
    status          TEXT,
    reason          TEXT,
    created_us      INTEGER NOT NULL,
    acked_us        INTEGER
);
CREATE INDEX mailbox_unacked ON mailbox (participant_bic, seq) WHERE acked_us IS NULL;
