-- Accounts, sessions and the social graph.
--
-- Conventions: ids are BIGINT (Kith's 64-bit ids, all below 2^63);
-- timestamps are BIGINT milliseconds since the Unix epoch. Text keys that
-- lists are ordered or paginated by (lowercased usernames) use COLLATE "C":
-- byte order, the same order as kith-sqlite's BINARY collation, whatever the
-- database's default collation is. The writer keeps one invariant the
-- queries rely on: no session, request, friendship, follow, block or mute
-- ever involves a deleted account (delete_account locks the account row and
-- removes them in the same transaction that makes the tombstone; inserts
-- take a share lock on both account rows and check that they are live).

-- One row per account ever created. A deleted account stays as a tombstone
-- (deleted_at set) so that its id is never reused; its username, email,
-- password and profile are erased, and the NULLed username/email columns free
-- the unique indexes below for new accounts (NULLs are distinct).
CREATE TABLE accounts (
    id                 BIGINT PRIMARY KEY,
    username           TEXT,                 -- as registered; NULL once deleted
    username_lower     TEXT COLLATE "C",     -- ASCII-lowercased username; NULL once deleted
    email              TEXT,                 -- as registered; NULL if none or deleted
    email_lower        TEXT COLLATE "C",     -- lowercased email; NULL if none or deleted
    password_hash      TEXT,
    created_at         BIGINT NOT NULL,
    deleted_at         BIGINT,               -- NULL while the account is live
    display_name       TEXT,
    display_name_lower TEXT,                 -- display_name lowercased by Rust's str::to_lowercase
    bio                TEXT,
    location           TEXT,
    birth_date         DATE,
    job                TEXT,
    interests          TEXT[] NOT NULL DEFAULT '{}',
    avatar_url         TEXT,
    cover_url          TEXT,
    contact_email      TEXT,
    contact_phone      TEXT,
    contact_website    TEXT,
    visibility         TEXT NOT NULL DEFAULT 'public'
                       CHECK (visibility IN ('public', 'friends', 'private')),
    CHECK ((deleted_at IS NULL) = (username IS NOT NULL AND username_lower IS NOT NULL))
);

-- Login by username / uniqueness ignoring case. The constraint name is what
-- insert_account maps to Clash::UsernameTaken.
CREATE UNIQUE INDEX accounts_username_lower ON accounts (username_lower);
-- Login by email / uniqueness ignoring case (Clash::EmailTaken).
CREATE UNIQUE INDEX accounts_email_lower ON accounts (email_lower);

-- Login sessions, stored under the SHA-256 digest of their bearer token.
CREATE TABLE sessions (
    id           BIGINT PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES accounts (id),
    token_digest BYTEA NOT NULL CHECK (octet_length(token_digest) = 32),
    created_at   BIGINT NOT NULL
);

-- Authenticating a token.
CREATE UNIQUE INDEX sessions_token_digest ON sessions (token_digest);
-- A user's sessions, oldest first; revoking them all.
CREATE INDEX sessions_user ON sessions (user_id, created_at, id);

-- Pending friend requests; at most one per (sender, recipient).
CREATE TABLE friend_requests (
    id         BIGINT PRIMARY KEY,
    from_user  BIGINT NOT NULL REFERENCES accounts (id),
    to_user    BIGINT NOT NULL REFERENCES accounts (id),
    created_at BIGINT NOT NULL,
    CHECK (from_user <> to_user)
);

-- The pending request between two users, and the uniqueness rule
-- (Clash::RequestPending).
CREATE UNIQUE INDEX friend_requests_pair ON friend_requests (from_user, to_user);
-- Incoming requests of a user, newest first (by id).
CREATE INDEX friend_requests_to ON friend_requests (to_user, id);
-- Outgoing requests of a user, newest first (by id); the pair index serves
-- lookups by sender but not this order.
CREATE INDEX friend_requests_from ON friend_requests (from_user, id);

-- Friendships, stored once in each direction so that "the friends of X" is
-- one index range. friend_name is the friend's username_lower, copied here so
-- that the friends list is read in username order straight from the index
-- (the trigger below keeps it in step should usernames ever change).
CREATE TABLE friendships (
    user_id     BIGINT NOT NULL REFERENCES accounts (id),
    friend_id   BIGINT NOT NULL REFERENCES accounts (id),
    friend_name TEXT COLLATE "C" NOT NULL,
    since       BIGINT NOT NULL,
    PRIMARY KEY (user_id, friend_id),
    CHECK (user_id <> friend_id)
);

-- The friends of a user ordered by lowercased username (keyset pagination).
CREATE INDEX friendships_by_name ON friendships (user_id, friend_name) INCLUDE (since);
-- Removing the friendships of a deleted account from its friends' side.
CREATE INDEX friendships_friend ON friendships (friend_id);

CREATE FUNCTION friendships_follow_username() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE friendships SET friend_name = NEW.username_lower WHERE friend_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER friendships_follow_username
AFTER UPDATE OF username_lower ON accounts
FOR EACH ROW
WHEN (NEW.username_lower IS NOT NULL AND NEW.username_lower IS DISTINCT FROM OLD.username_lower)
EXECUTE FUNCTION friendships_follow_username();

-- follower follows followee.
CREATE TABLE follows (
    follower_id BIGINT NOT NULL REFERENCES accounts (id),
    followee_id BIGINT NOT NULL REFERENCES accounts (id),
    since       BIGINT NOT NULL,
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);

-- Followers of a user, newest first: ordered by (since, follower_id) descending.
CREATE INDEX follows_followers ON follows (followee_id, since, follower_id);
-- Users a user follows, newest first: ordered by (since, followee_id) descending.
CREATE INDEX follows_following ON follows (follower_id, since, followee_id);

-- blocker blocks blocked.
CREATE TABLE blocks (
    blocker_id BIGINT NOT NULL REFERENCES accounts (id),
    blocked_id BIGINT NOT NULL REFERENCES accounts (id),
    since      BIGINT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);

-- The users a user blocks, newest first.
CREATE INDEX blocks_by_since ON blocks (blocker_id, since, blocked_id);
-- Removing the blocks against a deleted account.
CREATE INDEX blocks_blocked ON blocks (blocked_id);

-- muter mutes muted.
CREATE TABLE mutes (
    muter_id BIGINT NOT NULL REFERENCES accounts (id),
    muted_id BIGINT NOT NULL REFERENCES accounts (id),
    since    BIGINT NOT NULL,
    PRIMARY KEY (muter_id, muted_id),
    CHECK (muter_id <> muted_id)
);

-- The users a user mutes, newest first.
CREATE INDEX mutes_by_since ON mutes (muter_id, since, muted_id);
-- Removing the mutes of a deleted account.
CREATE INDEX mutes_muted ON mutes (muted_id);
