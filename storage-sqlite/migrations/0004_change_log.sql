-- Each conversation's change log: one row per version, written in the
-- transaction that takes the version, saying what changed (kind), who did
-- it (actor) and to what (subject: a message or a member; NULL for
-- members_added and conversation_renamed). A writer that missed changes
-- made by another writer replays them from here in version order. Versions
-- taken before this migration have no row.
CREATE TABLE conversation_changes (
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    version         INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    actor           INTEGER NOT NULL,
    subject         INTEGER,
    PRIMARY KEY (conversation_id, version)
) STRICT, WITHOUT ROWID;
