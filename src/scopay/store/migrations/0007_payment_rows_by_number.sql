-- scopay schema, version 7: payment rows are found by their row number, not by an index of
-- their UETR or of their sender's instruction id. Both keys come in no order, so once such an
-- index outgrew a commit each of the commit's payments dirtied an index page of its own, which
-- went whole into the WAL and back: at 100,000 payments the two indexes cost about 40 us of a
-- payment's commit, and more the larger the day grew. The engine keeps both keys unique in
-- memory (it refuses a duplicate UETR or instruction id before anything is written) and the
-- store keeps each UETR's row number in memory, as it writes them. `scopay audit verify`
-- still names a second row of one UETR (a queue state no entry recorded), and the journal's
-- UNIQUE transfer id (a payment's is its UETR's) still keeps any payment from settling twice.
-- payment_event loses its reference to payment (uetr), which needs that index too.
-- Row numbers are kept as they are: the audit entries name payment rows by them.
CREATE TABLE payment_event_new (
    seq     INTEGER PRIMARY KEY,
    uetr    TEXT NOT NULL,
    status  TEXT NOT NULL,
    at_us   INTEGER NOT NULL,
    reason  TEXT,
    detail  TEXT
);
INSERT INTO payment_event_new (seq, uetr, status, at_us, reason, detail)
    SELECT seq, uetr, status, at_us, reason, detail FROM payment_event ORDER BY seq;
DROP TABLE payment_event;
ALTER TABLE payment_event_new RENAME TO payment_event;
CREATE TABLE payment_new (
    uetr             TEXT NOT NULL,
    sender_bic       TEXT NOT NULL,
    instruction_id   TEXT NOT NULL,
    content          TEXT NOT NULL,           -- the payment as JSON, exactly as accepted
    status           TEXT NOT NULL,
    debtor_account   INTEGER,
    creditor_account INTEGER,
    sequence         INTEGER NOT NULL,        -- queue position (FIFO within priority)
    priority         TEXT NOT NULL,
    latest_us        INTEGER,
    reject_by_us     INTEGER
);
INSERT INTO payment_new (rowid, uetr, sender_bic, instruction_id, content, status,
                         debtor_account, creditor_account, sequence, priority, latest_us,
                         reject_by_us)
    SELECT rowid, uetr, sender_bic, instruction_id, content, status, debtor_account,
           creditor_account, sequence, priority, latest_us, reject_by_us
    FROM payment ORDER BY rowid;
DROP TABLE payment;
ALTER TABLE payment_new RENAME TO payment;
CREATE INDEX payment_open ON payment (status) WHERE status IN ('queued', 'accepted');
