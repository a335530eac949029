-- Posts, their hashtags and their mentions.
--
-- Every post gets a position in commit order: the inserting transaction
-- takes the next value of the one-row counter post_positions as its last
-- step before COMMIT (SQLite has one writer, so transactions never overlap
-- and positions grow in commit order). Lists of posts are keyset pages on
-- position descending, so a post can never commit behind a reader's cursor.
-- position is NULL only inside the inserting transaction.
CREATE TABLE posts (
    id         INTEGER PRIMARY KEY,
    author_id  INTEGER NOT NULL REFERENCES accounts (id),
    text       TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'friends', 'private')),
    created_at INTEGER NOT NULL,
    edited_at  INTEGER,
    position   INTEGER,
    -- For a share: the original it shares (never a share). No foreign key:
    -- a share of a deleted post stays, showing the original as unavailable.
    shared_id  INTEGER
) STRICT;

-- Positions are unique (NULLs, inside the inserting transaction, are distinct).
CREATE UNIQUE INDEX posts_position ON posts (position);
-- A profile's timeline: one author's posts by position.
CREATE INDEX posts_author ON posts (author_id, position);
-- The shares of a post (their count on the original).
CREATE INDEX posts_shared ON posts (shared_id) WHERE shared_id IS NOT NULL;

-- The one-row counter of positions.
CREATE TABLE post_positions (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
) STRICT;
INSERT INTO post_positions (id, last) VALUES (1, 0);

-- The hashtags of each post (lowercased), with the post's position copied
-- beside them so that a hashtag's posts are one index range by position.
CREATE TABLE post_hashtags (
    post_id  INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    position INTEGER,
    PRIMARY KEY (post_id, tag)
) STRICT;

-- A hashtag's posts by position.
CREATE INDEX post_hashtags_tag ON post_hashtags (tag, position);

-- The live users each post mentions (resolved by username when the text
-- was written), kept as data for notifications.
CREATE TABLE post_mentions (
    post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES accounts (id),
    PRIMARY KEY (post_id, user_id)
) STRICT;

-- The posts mentioning a user.
CREATE INDEX post_mentions_user ON post_mentions (user_id, post_id);

-- Reactions to posts: at most one per user per post. Listed by user id
-- (all kinds, or one) straight from an index.
CREATE TABLE post_reactions (
    post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES accounts (id),
    kind    TEXT NOT NULL CHECK (kind IN ('like', 'love', 'haha', 'wow', 'sad', 'angry')),
    PRIMARY KEY (post_id, user_id)
) STRICT, WITHOUT ROWID;

-- Who reacted to a post with one kind, and the counts per kind.
CREATE INDEX post_reactions_kind ON post_reactions (post_id, kind, user_id);

-- Comments on posts and replies to comments (parent_id). A deleted comment
-- with replies stays as a tombstone (text NULL, deleted_at set) so that its
-- thread holds together; without replies it is removed. A post's comments
-- (parent_id NULL) and a comment's replies are each one index range by id.
CREATE TABLE comments (
    id         INTEGER PRIMARY KEY,
    post_id    INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    parent_id  INTEGER REFERENCES comments (id) ON DELETE CASCADE,
    author_id  INTEGER NOT NULL REFERENCES accounts (id),
    text       TEXT,
    created_at INTEGER NOT NULL,
    edited_at  INTEGER,
    deleted_at INTEGER,
    CHECK ((deleted_at IS NULL) = (text IS NOT NULL))
) STRICT;

-- A post's comments (and the count on the post).
CREATE INDEX comments_post ON comments (post_id, parent_id, id);
-- A comment's replies.
CREATE INDEX comments_parent ON comments (parent_id, id);

-- Reactions to comments, as post_reactions.
CREATE TABLE comment_reactions (
    comment_id INTEGER NOT NULL REFERENCES comments (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES accounts (id),
    kind       TEXT NOT NULL CHECK (kind IN ('like', 'love', 'haha', 'wow', 'sad', 'angry')),
    PRIMARY KEY (comment_id, user_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX comment_reactions_kind ON comment_reactions (comment_id, kind, user_id);
