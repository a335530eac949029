-- Node numbers leased by the writers that share this database (see
-- kith_core::NodeLease): a writer's ids carry its number in their low bits.
-- A row is a lease held by `holder` until `until` (milliseconds); a lease
-- that ended may be taken by another writer.
CREATE TABLE node_leases (
    node   INTEGER PRIMARY KEY,
    holder INTEGER NOT NULL,
    until  INTEGER NOT NULL
) STRICT;
