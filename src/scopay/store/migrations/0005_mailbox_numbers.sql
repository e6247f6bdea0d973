-- scopay schema, version 5: each participant's notices are numbered 1, 2, 3 ... in its own
-- mailbox (`number`), as a FIN output sequence number is per participant. The API shows this
-- number, not `seq`: `seq` counts the notices of all participants, and its gaps told each one
-- how busy the network was. With its own numbers a participant also sees that it has every
-- notice: there is no gap in them. A number follows from the rows' order (the n-th notice of
-- a participant by seq is its number n), which the audit log covers; `scopay audit verify`
-- checks that every number is that one.
-- Two partial indexes find a notice by its number: one of the notices not yet acknowledged
-- (which a mailbox lists), one of those acknowledged (a notice moves to it when it is). A
-- new notice thus enters one index, as before; one index of all the notices would double
-- what a notice costs to write where participants are many (bench/ledger.py: 10,000).
ALTER TABLE mailbox ADD COLUMN number INTEGER;
UPDATE mailbox SET number = ranked.n
    FROM (SELECT seq, row_number() OVER (PARTITION BY participant_bic ORDER BY seq) AS n
          FROM mailbox) AS ranked
    WHERE mailbox.seq = ranked.seq;
DROP INDEX mailbox_unacked;
CREATE UNIQUE INDEX mailbox_unacked ON mailbox (participant_bic, number)
    WHERE acked_us IS NULL;
CREATE UNIQUE INDEX mailbox_acked ON mailbox (participant_bic, number)
    WHERE acked_us IS NOT NULL;
