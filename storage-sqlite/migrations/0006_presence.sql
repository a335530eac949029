-- Presence across nodes: each node (a Kith handle, by its random holder
-- id) holds a presence lease that it renews while it runs; a user is online
-- while they have connections on a node whose lease is live, so the users
-- of a killed node go offline when its lease ends.
CREATE TABLE presence_nodes (
    holder INTEGER PRIMARY KEY,
    until  INTEGER NOT NULL
) STRICT;
CREATE INDEX presence_nodes_until ON presence_nodes (until);

CREATE TABLE presence (
    user_id     INTEGER NOT NULL,
    holder      INTEGER NOT NULL,
    connections INTEGER NOT NULL CHECK (connections > 0),
    PRIMARY KEY (user_id, holder)
) STRICT;
CREATE INDEX presence_holder ON presence (holder);
