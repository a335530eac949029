-- Accounts, sessions and the social graph.
--
-- Conventions: ids are INTEGER (Kith's 64-bit ids, all below 2^63);
-- timestamps are INTEGER milliseconds since the Unix epoch; every table is
-- STRICT so a wrongly typed bind fails instead of being silently coerced.
-- The writer keeps one invariant the queries rely on: no session, request,
-- friendship, follow, block or mute ever involves a deleted account
-- (delete_account removes them in the same transaction that makes the
-- tombstone, and inserts check that both accounts are live).

-- One row per account ever created. A deleted account stays as a tombstone
-- (deleted_at set) so that its id is never reused; its username, email,
-- password and profile are erased, and the NULLed username/email columns free
-- the unique indexes below for new accounts (NULLs are distinct in SQLite).
CREATE TABLE accounts (
    id                 INTEGER PRIMARY KEY,
    username           TEXT,             -- as registered; NULL once deleted
    username_lower     TEXT,             -- ASCII-lowercased username; NULL once deleted
    email              TEXT,             -- as registered; NULL if none or deleted
    email_lower        TEXT,             -- lowercased email; NULL if none or deleted
    password_hash      TEXT,
    created_at         INTEGER NOT NULL,
    deleted_at         INTEGER,          -- NULL while the account is live
    display_name       TEXT,
    display_name_lower TEXT,             -- display_name lowercased by Rust's str::to_lowercase
    bio                TEXT,
    location           TEXT,
    birth_date         TEXT,             -- 'YYYY-MM-DD'
    job                TEXT,
    interests          TEXT NOT NULL DEFAULT '[]',  -- JSON array of strings
    avatar_url         TEXT,
    cover_url          TEXT,
    contact_email      TEXT,
    contact_phone      TEXT,
    contact_website    TEXT,
    visibility         TEXT NOT NULL DEFAULT 'public'
                       CHECK (visibility IN ('public', 'friends', 'private')),
    CHECK ((deleted_at IS NULL) = (username IS NOT NULL AND username_lower IS NOT NULL))
) STRICT;

-- Login by username / uniqueness ignoring case.
CREATE UNIQUE INDEX accounts_username_lower ON accounts (username_lower);
-- Login by email / uniqueness ignoring case.
CREATE UNIQUE INDEX accounts_email_lower ON accounts (email_lower);

-- Login sessions, stored under the SHA-256 digest of their bearer token.
CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES accounts (id),
    token_digest BLOB NOT NULL CHECK (length(token_digest) = 32),
    created_at   INTEGER NOT NULL
) STRICT;

-- Authenticating a token.
CREATE UNIQUE INDEX sessions_token_digest ON sessions (token_digest);
-- A user's sessions, oldest first; revoking them all.
CREATE INDEX sessions_user ON sessions (user_id, created_at, id);

-- Pending friend requests; at most one per (sender, recipient).
CREATE TABLE friend_requests (
    id         INTEGER PRIMARY KEY,
    from_user  INTEGER NOT NULL REFERENCES accounts (id),
    to_user    INTEGER NOT NULL REFERENCES accounts (id),
    created_at INTEGER NOT NULL,
    CHECK (from_user <> to_user)
) STRICT;

-- The pending request between two users (and the uniqueness rule).
CREATE UNIQUE INDEX friend_requests_pair ON friend_requests (from_user, to_user);
-- Incoming requests of a user, newest first (by id).
CREATE INDEX friend_requests_to ON friend_requests (to_user, id);
-- Outgoing requests of a user, newest first (by id).
CREATE INDEX friend_requests_from ON friend_requests (from_user, id);

-- Friendships, stored once in each direction so that "the friends of X" is
-- one index range. friend_name is the friend's username_lower, copied here so
-- that the friends list is read in username order straight from the index
-- (the trigger below keeps it in step should usernames ever change).
CREATE TABLE friendships (
    user_id     INTEGER NOT NULL REFERENCES accounts (id),
    friend_id   INTEGER NOT NULL REFERENCES accounts (id),
    friend_name TEXT NOT NULL,
    since       INTEGER NOT NULL,
    PRIMARY KEY (user_id, friend_id),
    CHECK (user_id <> friend_id)
) STRICT, WITHOUT ROWID;

-- The friends of a user ordered by lowercased username (keyset pagination).
CREATE INDEX friendships_by_name ON friendships (user_id, friend_name, since);

CREATE TRIGGER friendships_follow_username
AFTER UPDATE OF username_lower ON accounts
WHEN NEW.username_lower IS NOT NULL
BEGIN
    UPDATE friendships SET friend_name = NEW.username_lower WHERE friend_id = NEW.id;
END;

-- follower follows followee.
CREATE TABLE follows (
    follower_id INTEGER NOT NULL REFERENCES accounts (id),
    followee_id INTEGER NOT NULL REFERENCES accounts (id),
    since       INTEGER NOT NULL,
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
) STRICT, WITHOUT ROWID;

-- Followers of a user, newest first: ordered by (since, follower_id) descending.
CREATE INDEX follows_followers ON follows (followee_id, since, follower_id);
-- Users a user follows, newest first: ordered by (since, followee_id) descending.
CREATE INDEX follows_following ON follows (follower_id, since, followee_id);

-- blocker blocks blocked.
CREATE TABLE blocks (
    blocker_id INTEGER NOT NULL REFERENCES accounts (id),
    blocked_id INTEGER NOT NULL REFERENCES accounts (id),
    since      INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
) STRICT, WITHOUT ROWID;

-- The users a user blocks, newest first.
CREATE INDEX blocks_by_since ON blocks (blocker_id, since, blocked_id);
-- Removing the blocks against a deleted account.
CREATE INDEX blocks_blocked ON blocks (blocked_id);

-- muter mutes muted.
CREATE TABLE mutes (
    muter_id INTEGER NOT NULL REFERENCES accounts (id),
    muted_id INTEGER NOT NULL REFERENCES accounts (id),
    since    INTEGER NOT NULL,
    PRIMARY KEY (muter_id, muted_id),
    CHECK (muter_id <> muted_id)
) STRICT, WITHOUT ROWID;

-- The users a user mutes, newest first.
CREATE INDEX mutes_by_since ON mutes (muter_id, since, muted_id);
-- Removing the mutes of a deleted account.
CREATE INDEX mutes_muted ON mutes (muted_id);
