-- Uploaded media. The bytes of each variant live in the embedder's byte
-- store under `media/<id>/<variant>`; this is the record. An unattached
-- upload expires at `expires_at` (then the garbage collection removes it);
-- attaching it sets `attached_kind` and `attached_to` (the owner for an
-- avatar or a cover) and clears `expires_at`.
CREATE TABLE media (
    id            INTEGER PRIMARY KEY,
    owner         INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    byte_size     INTEGER NOT NULL CHECK (byte_size >= 0),
    width         INTEGER NOT NULL CHECK (width >= 0),
    height        INTEGER NOT NULL CHECK (height >= 0),
    -- The variants stored, comma-separated, in order (`original,thumbnail`).
    variants      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    attached_kind TEXT,
    attached_to   INTEGER,
    expires_at    INTEGER,
    CHECK ((attached_kind IS NULL) = (attached_to IS NULL)),
    CHECK ((attached_kind IS NULL) = (expires_at IS NOT NULL))
) STRICT;
CREATE INDEX media_owner ON media (owner);
CREATE INDEX media_expires ON media (expires_at, id) WHERE expires_at IS NOT NULL;
CREATE INDEX media_attached ON media (attached_kind, attached_to)
    WHERE attached_kind IS NOT NULL;
