-- The home feed reads each author's posts by position and keeps those the
-- viewer's link to the author shows (kith's BY_HOME): with the visibility in
-- the index, that probe never reads the table. It replaces posts_author,
-- whose queries it serves as well.
DROP INDEX posts_author;
CREATE INDEX posts_author_visibility ON posts (author_id, position, visibility);
