-- Each sender's send-rate bucket (see kith_core::SendRate::take), taken from
-- in the transaction that stores the message, so the rate holds across
-- every writer of the database. A sender without a row has a full bucket.
CREATE TABLE send_buckets (
    user_id      BIGINT PRIMARY KEY REFERENCES accounts (id),
    milli_tokens BIGINT NOT NULL,
    at           BIGINT NOT NULL
);
