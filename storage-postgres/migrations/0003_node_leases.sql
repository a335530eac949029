-- Node numbers leased by the writers that share this database (see
-- kith_core::NodeLease): a writer's ids carry its number in their low bits.
-- A row is a lease held by `holder` until `until` (milliseconds); a lease
-- that ended may be taken by another writer. Leasing locks the table, so
-- two writers starting at once never take the same number.
CREATE TABLE node_leases (
    node   BIGINT PRIMARY KEY,
    holder BIGINT NOT NULL,
    until  BIGINT NOT NULL
);
