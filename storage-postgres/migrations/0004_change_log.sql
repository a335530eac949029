-- Each conversation's change log: one row per version, written in the
-- transaction that takes the version, saying what changed (kind), who did
-- it (actor) and to what (subject: a message or a member; NULL for
-- members_added and conversation_renamed). A writer that missed changes
-- made by another writer replays them from here in version order. Versions
-- taken before this migration have no row.
CREATE TABLE conversation_changes (
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    version         BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    actor           BIGINT NOT NULL,
    subject         BIGINT,
    PRIMARY KEY (conversation_id, version)
);
