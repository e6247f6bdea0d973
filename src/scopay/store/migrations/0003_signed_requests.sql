-- scopay schema, version 3: Ed25519 public keys replace bearer secrets; responses kept for
-- idempotency keys; the hash-chained audit log.
DROP TABLE credential;

CREATE TABLE participant_key (
    key_id          TEXT PRIMARY KEY,
    participant_bic TEXT NOT NULL REFERENCES participant (bic),
    public_key      TEXT NOT NULL,            -- Ed25519, raw 32 bytes, base64url
    created_us      INTEGER NOT NULL,
    revoked_us      INTEGER
);

CREATE TABLE idempotency_record (
    participant_bic TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_sha256  TEXT NOT NULL,
    status_code     INTEGER NOT NULL,
    response_body   BLOB NOT NULL,
    created_us      INTEGER NOT NULL,
    PRIMARY KEY (participant_bic, idempotency_key)
);

CREATE TABLE audit_log (
    seq          INTEGER PRIMARY KEY,
    at_us        INTEGER NOT NULL,
    payload      TEXT NOT NULL,               -- canonical JSON of what the commit changed
    prev_sha256  TEXT NOT NULL,
    sha256       TEXT NOT NULL
);
