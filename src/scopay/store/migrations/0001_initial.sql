-- scopay schema, version 1: participants, accounts, the append-only journal, refused
-- transfers (for idempotent answers), balance checkpoints (for reconciliation), credentials.
CREATE TABLE participant (
    bic                 TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    role                TEXT NOT NULL,
    country             TEXT NOT NULL,
    tier                TEXT NOT NULL,
    sponsor_bic         TEXT REFERENCES participant (bic),
    settlement_currency TEXT,
    status              TEXT NOT NULL
);

CREATE TABLE account (
    id                INTEGER PRIMARY KEY,
    owner_bic         TEXT NOT NULL REFERENCES participant (bic),
    currency          TEXT NOT NULL,
    kind              TEXT NOT NULL,
    credit_line_minor INTEGER NOT NULL,
    blocked           INTEGER NOT NULL DEFAULT 0,
    UNIQUE (owner_bic, currency, kind)
);

CREATE TABLE journal (
    seq               INTEGER PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    kind              TEXT NOT NULL,
    debit_account_id  INTEGER NOT NULL,
    credit_account_id INTEGER NOT NULL,
    amount_minor      INTEGER NOT NULL,
    currency          TEXT NOT NULL,
    pending_id        TEXT,
    timeout_s         INTEGER NOT NULL,
    linked            INTEGER NOT NULL,
    timestamp_us      INTEGER NOT NULL
);

CREATE TABLE transfer_rejection (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    debit_account_id  INTEGER NOT NULL,
    credit_account_id INTEGER NOT NULL,
    amount_minor      INTEGER NOT NULL,
    currency          TEXT NOT NULL,
    pending_id        TEXT,
    timeout_s         INTEGER NOT NULL,
    linked            INTEGER NOT NULL,
    timestamp_us      INTEGER NOT NULL,
    rejection         TEXT NOT NULL
);

CREATE TABLE checkpoint (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    as_of_seq    INTEGER NOT NULL,
    timestamp_us INTEGER NOT NULL
);

CREATE TABLE checkpoint_balance (
    account_id            INTEGER PRIMARY KEY,
    posted_minor          INTEGER NOT NULL,
    debits_pending_minor  INTEGER NOT NULL,
    credits_pending_minor INTEGER NOT NULL
);

CREATE TABLE credential (
    key_id          TEXT PRIMARY KEY,
    participant_bic TEXT NOT NULL REFERENCES participant (bic),
    secret_sha256   TEXT NOT NULL,
    created_us      INTEGER NOT NULL,
    revoked_us      INTEGER
);
