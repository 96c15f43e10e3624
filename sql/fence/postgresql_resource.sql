-- ordo fence, PostgreSQL: resource fences (`ordo fence install --database postgresql://…`).
--
-- Call ordo_fence(resource, token) FIRST in a transaction, before the reads that the
-- transaction's writes depend on:
--   BEGIN;
--   SELECT ordo_fence('orders:42', 1234);   -- 1234: the token of ordo lock 'orders:42'
--   SELECT … FROM orders WHERE id = 42;     -- read
--   UPDATE orders SET … WHERE id = 42;      -- modify-write
--   COMMIT;
-- Guarantees:
--   * a token below the resource's fence raises SQLSTATE OR409 naming both tokens, and the
--     transaction aborts: none of its writes, earlier or later, can commit;
--   * the fence's row stays locked until the transaction ends, so the fenced transactions of
--     one resource run one after another, in token order: a higher token waits for a lower
--     token's open transaction, then wins; a lower token that arrives later is refused;
--   * tokens are compared per resource only. Name the resource after the ordo lock whose tokens
--     it receives (tokens of different lock names are unrelated numbers).
-- Installing twice is a no-op: every statement is IF NOT EXISTS or OR REPLACE with the same text.

-- Concurrent installs queue here instead of racing on the catalog (CREATE TABLE IF NOT EXISTS
-- is not safe against a concurrent CREATE of the same table). Released at commit.
SELECT pg_advisory_xact_lock(hashtext('ordo fence install'));

-- One row per fenced resource: the highest token that has reached it. Rows are never deleted by
-- ordo (a deleted fence would accept any old token again).
CREATE TABLE IF NOT EXISTS {{schema}}.ordo_fences (
  resource   text        PRIMARY KEY,
  token      bigint      NOT NULL CHECK (token > 0),
  updated_at timestamptz NOT NULL
);

-- ordo_fence(resource, token) -> the resource's fence after the call (= token).
-- One statement does the check and the raise together: INSERT … ON CONFLICT DO UPDATE locks the
-- conflicting row (waiting for a transaction that holds it) and then updates it only if the
-- fence is not above the token. ON CONFLICT locks the row even when its WHERE is false, so the
-- refused caller reads a fence that cannot move under it while it builds the message.
-- Ties (token = fence) are accepted: the same holder may fence several transactions.
CREATE OR REPLACE FUNCTION {{schema}}.ordo_fence(resource text, token bigint)
RETURNS bigint
LANGUAGE plpgsql
AS $ordo_fence$
#variable_conflict use_column
DECLARE
  accepted bigint;
  fence bigint;
BEGIN
  IF ordo_fence.resource IS NULL OR ordo_fence.token IS NULL OR ordo_fence.token < 1 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('ordo_fence: resource must not be NULL and token must be a token '
                       'issued by ordo (1 or more); got resource %L, token %s',
                       ordo_fence.resource, coalesce(ordo_fence.token::text, 'NULL'));
  END IF;
  INSERT INTO {{schema}}.ordo_fences AS f (resource, token, updated_at)
  VALUES (ordo_fence.resource, ordo_fence.token, now())
  ON CONFLICT (resource) DO UPDATE
    SET token = excluded.token, updated_at = excluded.updated_at
    WHERE f.token <= excluded.token
  RETURNING f.token INTO accepted;
  IF accepted IS NULL THEN
    -- Refused: the row is locked by this transaction, so this is the fence that refused us.
    SELECT f.token INTO fence FROM {{schema}}.ordo_fences AS f
     WHERE f.resource = ordo_fence.resource;
    RAISE EXCEPTION USING ERRCODE = 'OR409',
      MESSAGE = format('ordo: stale fencing token %s for resource %L: the fence is at %s',
                       ordo_fence.token, ordo_fence.resource, fence),
      HINT = 'A newer holder of the lock has written; this transaction must not commit.';
  END IF;
  RETURN accepted;
END
$ordo_fence$;
