-- Each user's rate-limit bucket per kind of write (see kith_core::Rate::take
-- and kith_core::WriteKind), taken from before the write, so a limit holds
-- across every writer of the database. A user without a row for a kind has
-- a full bucket.
CREATE TABLE write_buckets (
    user_id      INTEGER NOT NULL REFERENCES accounts (id),
    kind         TEXT NOT NULL,
    milli_tokens INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    PRIMARY KEY (user_id, kind)
) STRICT;
