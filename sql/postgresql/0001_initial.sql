-- ordo's PostgreSQL schema, version 1. Applied by adapters/postgresql inside one transaction
-- that holds pg_advisory_xact_lock, and that also creates the schema `ordo` and the table
-- ordo.schema_migrations and records the version there (so this file does neither).
--
-- Times are timestamptz from the database's own clock (clock_timestamp()), never a client's.
-- Tokens and versions are bigint >= 1. Keys and names use the "C" collation: byte order, the
-- same as every other ordo backend, and prefix scans that can use the primary-key index.

-- One row per lock name, created by its first acquisition and never deleted, so last_token
-- (the largest token ever issued for the name) survives releases, expiry, crashes and restarts.
-- `version` is bumped by every statement that adds, renews or removes a holder of the name:
-- a statement that decided on a snapshot applies its decision only if the version is still the
-- one that snapshot saw (see adapters/postgresql/statements.h).
CREATE TABLE ordo.locks (
  name       text COLLATE "C" PRIMARY KEY,
  last_token bigint NOT NULL CHECK (last_token >= 0),
  version    bigint NOT NULL DEFAULT 0 CHECK (version >= 0)
);

-- The holders of each lock, one row per acquisition.
--   cas / version strategies: a lease; live while expires_at > clock_timestamp().
--   for-update strategy: holder_xact is the transaction id (txid_current()) of the transaction
--     that holds the row lock in ordo.lock_rows; live while txid_status(holder_xact) is
--     'in progress'. expires_at is informational for those rows.
-- No foreign key to ordo.locks on purpose: a foreign-key check takes FOR KEY SHARE on the
-- referenced row, and issuing a for-update token must never wait on a lock row.
CREATE TABLE ordo.holders (
  name        text COLLATE "C" NOT NULL,
  token       bigint NOT NULL CHECK (token > 0),
  owner       text NOT NULL,
  mode        text NOT NULL CHECK (mode IN ('exclusive', 'shared')),
  expires_at  timestamptz NOT NULL,
  holder_xact bigint,
  PRIMARY KEY (name, token)
);

-- The rows that for-update holders lock (FOR UPDATE / FOR SHARE) for as long as they hold the
-- lock. Kept apart from ordo.locks because the token counter there must be bumped, and
-- committed, by another connection while this row is locked.
CREATE TABLE ordo.lock_rows (
  name text COLLATE "C" PRIMARY KEY
);

-- FencedStore: per key the fence (highest token accepted by a write or a fenced read), the
-- value and its version. A fenced read of a missing key creates a value-less row
-- (has_value = false, version = 0) so that the fence it raised is kept.
CREATE TABLE ordo.fenced (
  key       text COLLATE "C" PRIMARY KEY,
  fence     bigint NOT NULL CHECK (fence > 0),
  value     bytea NOT NULL DEFAULT '',
  has_value boolean NOT NULL,
  version   bigint NOT NULL CHECK (version >= 0)
);

-- VersionedStore: per key a document and its version (1 on creation, +1 per successful CAS).
CREATE TABLE ordo.objects (
  key     text COLLATE "C" PRIMARY KEY,
  value   bytea NOT NULL,
  version bigint NOT NULL CHECK (version > 0)
);
