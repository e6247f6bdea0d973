-- scopay schema, version 6: a kept answer may be stored compressed. An answer to a bulk
-- request of 1,000 payments is about half a megabyte of JSON, and every bulk request keeps
-- one for a day under its idempotency key: they were a third of a busy database. Deflated
-- (zlib, fastest level) such an answer takes about a twentieth of that. `body_encoding` says
-- how `response_body` is stored: 'identity' (as given, what earlier versions wrote) or
-- 'deflate'. A retry is given the answer's own bytes either way, and the audit log records
-- the hash of those bytes, not of the stored form.
ALTER TABLE idempotency_record ADD COLUMN body_encoding TEXT NOT NULL DEFAULT 'identity';
