-- scopay schema, version 4: payment_event loses its index by UETR. Histories are read whole,
-- in seq order, when the engine recovers; a payment's history is then served from memory.
-- The index cost a random B-tree insert for each of a payment's status changes (three for a
-- payment that settles at once) and the pages that insert dirtied in every commit.
DROP INDEX payment_event_by_uetr;
