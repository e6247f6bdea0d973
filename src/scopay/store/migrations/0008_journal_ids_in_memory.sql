-- scopay schema, version 8: journal entries are no longer indexed by their transfer id. Ids
-- come in no order (a payment's is pay/<UETR>), so once the index outgrew a commit each entry
-- dirtied an index page of its own, which went whole into the WAL and back: at 120,000
-- payments the index cost about 20 us of a bulk payment, and more the larger the day grew
-- (docs/benchmarks.md). The store keeps each entry's seq by its transfer id in memory instead
-- (noted while the engine's recovery reads the journal) and refuses, before it writes
-- anything, a batch that books an id the journal already holds or books one twice: the guard
-- the index was, that no transfer, hence no payment, is booked twice. Entries keep their seq.
CREATE TABLE journal_new (
    seq               INTEGER PRIMARY KEY,
    id                TEXT NOT NULL,
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
INSERT INTO journal_new SELECT seq, id, kind, debit_account_id, credit_account_id, amount_minor,
    currency, pending_id, timeout_s, linked, timestamp_us FROM journal ORDER BY seq;
DROP TABLE journal;
ALTER TABLE journal_new RENAME TO journal;
