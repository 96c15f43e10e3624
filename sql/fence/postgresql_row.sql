-- ordo fence, PostgreSQL: per-row fencing of a column of the user's table
-- (`ordo fence install --database postgresql://… --table T --column C`).
--
-- The writer stores its token in the row (UPDATE T SET …, C = :token WHERE …). The trigger
-- guarantees, for every row of T:
--   * an INSERT or UPDATE that leaves C NULL is refused;
--   * an UPDATE that lowers C is refused: a holder with an older token cannot overwrite a row
--     that a newer holder has written (equal tokens pass: one holder may write many times).
-- Refusals raise SQLSTATE OR409 naming both tokens; the statement and its transaction abort.
-- Installing twice is a no-op; nothing but the trigger function and the trigger is created.

SELECT pg_advisory_xact_lock(hashtext('ordo fence install'));

-- One function serves every fenced table; the trigger passes the column's name. The row is read
-- through to_jsonb so that one function works for any table and any integer column.
CREATE OR REPLACE FUNCTION {{schema}}.ordo_fence_row()
RETURNS trigger
LANGUAGE plpgsql
AS $ordo_fence_row$
DECLARE
  col text := TG_ARGV[0];
  new_token bigint := (to_jsonb(NEW) ->> col)::bigint;
  old_token bigint;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    old_token := (to_jsonb(OLD) ->> col)::bigint;
  END IF;
  IF new_token IS NULL OR new_token < old_token THEN
    RAISE EXCEPTION USING ERRCODE = 'OR409',
      MESSAGE = format('ordo: stale fencing token %s for %I.%I.%I: the row is at %s',
                       coalesce(new_token::text, 'NULL'), TG_TABLE_SCHEMA, TG_TABLE_NAME, col,
                       coalesce(old_token::text, 'NULL')),
      HINT = format('Every write must set %I to its ordo token, which may only grow.', col);
  END IF;
  RETURN NEW;
END
$ordo_fence_row$;

-- BEFORE … FOR EACH ROW: the check runs on the row as it would be stored, after any earlier
-- BEFORE trigger, and its refusal leaves nothing written. Created only if missing, so a second
-- install neither drops nor duplicates it.
DO $ordo_install$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger
                  WHERE tgrelid = {{table_literal}}::regclass AND tgname = {{trigger_literal}}) THEN
    CREATE TRIGGER {{trigger}}
      BEFORE INSERT OR UPDATE ON {{table}}
      FOR EACH ROW EXECUTE FUNCTION {{schema}}.ordo_fence_row({{column_literal}});
  END IF;
END
$ordo_install$;
