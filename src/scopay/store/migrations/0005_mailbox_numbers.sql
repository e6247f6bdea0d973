-- scopay schema, version 5: each participant's notices are numbered 1, 2, 3 ... in its own
-- mailbox (`number`), as a FIN output sequence number is per participant. The API shows this
-- number, not `seq`: `seq` counts the notices of all participants, and its gaps told each one
-- how busy the network was. With its own numbers a participant also sees that it has every
-- notice: there is no gap in them. A number follows from the rows' order (the n-th notice of
-- a participant by seq is its number n), which the audit log covers; `scopay audit verify`
-- checks that every number is that one.
ALTER TABLE mailbox ADD COLUMN number INTEGER;
UPDATE mailbox SET number = ranked.n
    FROM (SELECT seq, row_number() OVER (PARTITION BY participant_bic ORDER BY seq) AS n
          FROM mailbox) AS ranked
    WHERE mailbox.seq = ranked.seq;
CREATE UNIQUE INDEX mailbox_number ON mailbox (participant_bic, number);
DROP INDEX mailbox_unacked;
CREATE INDEX mailbox_unacked ON mailbox (participant_bic, number) WHERE acked_us IS NULL;
