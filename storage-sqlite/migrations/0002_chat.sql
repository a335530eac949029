-- Chat: conversations, members, messages and reactions.
--
-- Same conventions as 0001 (INTEGER ids and millisecond timestamps, STRICT
-- tables). Every change to a conversation takes its next `version` inside the
-- write transaction that makes the change (UPDATE conversations SET version =
-- version + 1 ... RETURNING version); a new message also takes the next
-- `seq` the same way. Write transactions never overlap (one writer
-- connection, BEGIN IMMEDIATE), so both sequences are gap-free. Nothing here
-- is ever deleted except reactions: a deleted message is a tombstone that
-- keeps its seq, a member who leaves keeps a row marked as left, and deleting
-- an account leaves its conversations, memberships and messages in place (the
-- account row itself is a tombstone, so the references stay valid).
--
-- The conversation list (a user's conversations by last_activity DESC, id
-- DESC) is NOT one index range: it walks the user's current memberships in
-- the index conversation_members_user, joins each conversation by primary key
-- and sorts them (a bounded top-N sort, LIMIT rows kept). The alternative,
-- copying last_activity into every member row with an index on (user_id,
-- last_activity, conversation_id), would make the list a plain index range
-- but would cost every message one row update and two index updates per
-- member of its conversation, on the single writer, with each update
-- dirtying pages spread over the whole index: for a group of 10,000 members
-- (the default maximum) one message would rewrite thousands of pages of WAL.
-- Sending is the hot write path and the writer is shared by everything, so
-- the cost goes to the read instead: it is bounded by the reader's own number
-- of conversations, runs on the read pool, and never blocks a writer.

-- One row per conversation. A direct conversation has its pair of users,
-- smaller id first, in direct_low/direct_high (unique: one per pair); a group
-- has a title instead.
CREATE TABLE conversations (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    title         TEXT,                  -- NULL for direct conversations
    title_version INTEGER NOT NULL DEFAULT 0,  -- version of the latest rename; 0 if never renamed
    created_by    INTEGER NOT NULL REFERENCES accounts (id),
    created_at    INTEGER NOT NULL,
    last_seq      INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),   -- seq of the newest message
    version       INTEGER NOT NULL DEFAULT 0 CHECK (version >= last_seq), -- newest change
    last_activity INTEGER NOT NULL,      -- created_at of the newest message, or of the conversation
    direct_low    INTEGER REFERENCES accounts (id),
    direct_high   INTEGER REFERENCES accounts (id),
    CHECK ((kind = 'direct') = (direct_low IS NOT NULL AND direct_high IS NOT NULL)),
    CHECK ((kind = 'group') = (title IS NOT NULL)),
    CHECK (direct_low < direct_high)
) STRICT;

-- The direct conversation of a pair, and the one-per-pair rule.
CREATE UNIQUE INDEX conversations_direct_pair ON conversations (direct_low, direct_high)
    WHERE direct_low IS NOT NULL;

-- Members, current and former: a member who leaves (or is removed) keeps
-- their row with left_version set, so that changes() can report the
-- departure; re-adding them reuses the row. The trait gives no time for a
-- departure, so it is recorded by its version rather than a timestamp.
-- version is the conversation version of the member's latest membership
-- change (joined, role changed, left, promoted), 0 for the first members.
CREATE TABLE conversation_members (
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    user_id         INTEGER NOT NULL REFERENCES accounts (id),
    role            TEXT NOT NULL CHECK (role IN ('member', 'admin')),
    joined_at       INTEGER NOT NULL,
    last_read_seq   INTEGER NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    left_version    INTEGER,             -- NULL while a current member
    version         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id),
    CHECK (left_version IS NULL OR left_version = version)
) STRICT, WITHOUT ROWID;

-- A user's current conversations in id order with their read positions
-- (covering): unread counts, and the membership walk of the conversation
-- list. The members of a conversation by user id come from the primary key.
CREATE INDEX conversation_members_user
    ON conversation_members (user_id, conversation_id, last_read_seq)
    WHERE left_version IS NULL;
-- Membership changes after a version, in (version, user_id) order.
CREATE INDEX conversation_members_version
    ON conversation_members (conversation_id, version, user_id);

-- Messages. A deleted message is a tombstone: body NULL, deleted_at set, its
-- seq kept. version is the conversation version of its latest change (sent,
-- edited, deleted, reacted to). The rowid is the message id: ids grow with
-- time, so new messages are appended at the end of the table.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    seq             INTEGER NOT NULL CHECK (seq >= 1),
    version         INTEGER NOT NULL CHECK (version >= seq),
    sender_id       INTEGER NOT NULL REFERENCES accounts (id),
    client_id       TEXT NOT NULL,
    body            TEXT,                -- NULL once deleted
    reply_to        INTEGER REFERENCES messages (id),
    created_at      INTEGER NOT NULL,
    edited_at       INTEGER,
    deleted_at      INTEGER,
    CHECK ((body IS NULL) = (deleted_at IS NOT NULL))
) STRICT;

-- History pages by seq (either direction), the newest message.
CREATE UNIQUE INDEX messages_seq ON messages (conversation_id, seq);
-- Idempotent sends: one message per (sender, client_id).
CREATE UNIQUE INDEX messages_client ON messages (sender_id, client_id);
-- Messages changed after a version.
CREATE INDEX messages_version ON messages (conversation_id, version);

-- At most one reaction per user per message; read per message in user order
-- straight from the primary key. Removed with the message's body on delete.
CREATE TABLE message_reactions (
    message_id INTEGER NOT NULL REFERENCES messages (id),
    user_id    INTEGER NOT NULL REFERENCES accounts (id),
    kind       TEXT NOT NULL CHECK (kind IN ('like', 'love', 'haha', 'wow', 'sad', 'angry')),
    PRIMARY KEY (message_id, user_id)
) STRICT, WITHOUT ROWID;
