-- Chat: conversations, members, messages and reactions.
--
-- Same conventions as 0001 (BIGINT ids and millisecond timestamps). Every
-- change to a conversation takes its next `version` inside the transaction
-- that makes the change, under the conversation row's lock: either
-- `UPDATE conversations SET version = version + 1 ... RETURNING version`
-- (which locks the row until commit) or `SELECT ... FOR NO KEY UPDATE`
-- before the change's checks. Statements after the lock see every change
-- committed by the previous holder (READ COMMITTED takes a new snapshot per
-- statement), so the checks a change depends on (the sender is a current
-- member, the message is not deleted) are made after taking the lock, and
-- both counters are gap-free. Nothing here is ever deleted except
-- reactions: a deleted message is a tombstone that keeps its seq, a member
-- who leaves keeps a row marked as left, and deleting an account leaves its
-- conversations, memberships and messages in place (the account row itself
-- is a tombstone, so the references stay valid).
--
-- The conversation list (a user's conversations by last_activity DESC, id
-- DESC) walks the user's current memberships in conversation_members_user,
-- joins each conversation by primary key and keeps the newest LIMIT rows (a
-- bounded top-N sort), as kith-sqlite does: copying last_activity into every
-- member row would make each message in a large group update one row and
-- index entry per member.

-- One row per conversation. A direct conversation has its pair of users,
-- smaller id first, in direct_low/direct_high (unique: one per pair); a group
-- has a title instead.
CREATE TABLE conversations (
    id            BIGINT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    title         TEXT,                   -- NULL for direct conversations
    title_version BIGINT NOT NULL DEFAULT 0,  -- version of the latest rename; 0 if never renamed
    created_by    BIGINT NOT NULL REFERENCES accounts (id),
    created_at    BIGINT NOT NULL,
    last_seq      BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0),   -- seq of the newest message
    version       BIGINT NOT NULL DEFAULT 0 CHECK (version >= last_seq), -- newest change
    last_activity BIGINT NOT NULL,        -- created_at of the newest message, or of the conversation
    direct_low    BIGINT REFERENCES accounts (id),
    direct_high   BIGINT REFERENCES accounts (id),
    CHECK ((kind = 'direct') = (direct_low IS NOT NULL AND direct_high IS NOT NULL)),
    CHECK ((kind = 'group') = (title IS NOT NULL)),
    CHECK (direct_low < direct_high)
);

-- The direct conversation of a pair, and the one-per-pair rule
-- (Clash::DirectExists).
CREATE UNIQUE INDEX conversations_direct_pair ON conversations (direct_low, direct_high)
    WHERE direct_low IS NOT NULL;

-- Members, current and former: a member who leaves (or is removed) keeps
-- their row with left_version set, so that changes() can report the
-- departure; re-adding them reuses the row. version is the conversation
-- version of the member's latest membership change (joined, role changed,
-- left, promoted), 0 for the first members.
CREATE TABLE conversation_members (
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    user_id         BIGINT NOT NULL REFERENCES accounts (id),
    role            TEXT NOT NULL CHECK (role IN ('member', 'admin')),
    joined_at       BIGINT NOT NULL,
    last_read_seq   BIGINT NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    left_version    BIGINT,               -- NULL while a current member
    version         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id),
    CHECK (left_version IS NULL OR left_version = version)
);

-- A user's current conversations in id order with their read positions
-- (covering): unread counts, and the membership walk of the conversation
-- list. The members of a conversation by user id come from the primary key.
CREATE INDEX conversation_members_user
    ON conversation_members (user_id, conversation_id) INCLUDE (last_read_seq)
    WHERE left_version IS NULL;
-- Membership changes after a version, in (version, user_id) order.
CREATE INDEX conversation_members_version
    ON conversation_members (conversation_id, version, user_id);

-- Messages. A deleted message is a tombstone: body NULL, deleted_at set, its
-- seq kept. version is the conversation version of its latest change (sent,
-- edited, deleted, reacted to).
CREATE TABLE messages (
    id              BIGINT PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    seq             BIGINT NOT NULL CHECK (seq >= 1),
    version         BIGINT NOT NULL CHECK (version >= seq),
    sender_id       BIGINT NOT NULL REFERENCES accounts (id),
    client_id       TEXT COLLATE "C" NOT NULL,
    body            TEXT,                 -- NULL once deleted
    reply_to        BIGINT REFERENCES messages (id),
    created_at      BIGINT NOT NULL,
    edited_at       BIGINT,
    deleted_at      BIGINT,
    CHECK ((body IS NULL) = (deleted_at IS NOT NULL))
);

-- History pages by seq (either direction), the newest message.
CREATE UNIQUE INDEX messages_seq ON messages (conversation_id, seq);
-- Idempotent sends: one message per (sender, client_id).
CREATE UNIQUE INDEX messages_client ON messages (sender_id, client_id);
-- Messages changed after a version.
CREATE INDEX messages_version ON messages (conversation_id, version);

-- At most one reaction per user per message, read per message in user order
-- from the primary key. Removed with the message's body on delete.
CREATE TABLE message_reactions (
    message_id BIGINT NOT NULL REFERENCES messages (id),
    user_id    BIGINT NOT NULL REFERENCES accounts (id),
    kind       TEXT NOT NULL CHECK (kind IN ('like', 'love', 'haha', 'wow', 'sad', 'angry')),
    PRIMARY KEY (message_id, user_id)
);
