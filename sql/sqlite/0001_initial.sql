-- ordo's SQLite schema, version 1. Applied by adapters/sqlite inside BEGIN IMMEDIATE, which also
-- records the version in schema_migrations (so this file does not insert into it).
--
-- Times are integers: milliseconds since the Unix epoch by SQLite's own clock
-- (julianday('now')), never a client's. Tokens and versions are 64-bit integers >= 1.
-- STRICT tables make SQLite refuse a value of the wrong type instead of storing it.

-- One row per applied migration; the schema's version is MAX(version).
CREATE TABLE schema_migrations (
  version    INTEGER PRIMARY KEY,
  name       TEXT    NOT NULL,
  applied_at INTEGER NOT NULL
) STRICT;

-- One row per lock name, created by its first acquisition and never deleted, so last_token
-- (the largest token ever issued for the name) survives releases, expiry and crashes.
CREATE TABLE locks (
  name       TEXT    PRIMARY KEY,
  last_token INTEGER NOT NULL CHECK (last_token >= 0)
) STRICT;

-- The holders of each lock, one row per acquisition. A row whose expires_at has passed is not a
-- holder any more; acquisitions delete such rows.
CREATE TABLE holders (
  name       TEXT    NOT NULL REFERENCES locks (name),
  token      INTEGER NOT NULL CHECK (token > 0),
  owner      TEXT    NOT NULL,
  mode       TEXT    NOT NULL CHECK (mode IN ('exclusive', 'shared')),
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (name, token)
) STRICT;

-- FencedStore: per key the fence (highest token accepted by a write or a fenced read), the
-- value and its version. A fenced read of a missing key creates a value-less row
-- (has_value = 0, version = 0) so that the fence it raised is kept.
CREATE TABLE fenced (
  key       TEXT    PRIMARY KEY,
  fence     INTEGER NOT NULL CHECK (fence > 0),
  value     BLOB    NOT NULL,
  has_value INTEGER NOT NULL CHECK (has_value IN (0, 1)),
  version   INTEGER NOT NULL CHECK (version >= 0)
) STRICT;

-- VersionedStore: per key a document and its version (1 on creation, +1 per successful CAS).
CREATE TABLE objects (
  key     TEXT    PRIMARY KEY,
  value   BLOB    NOT NULL,
  version INTEGER NOT NULL CHECK (version > 0)
) STRICT;
