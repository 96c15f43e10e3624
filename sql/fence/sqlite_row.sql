-- ordo fence, SQLite: per-row fencing of a column of the user's table
-- (`ordo fence install --database sqlite:///path.db --table T --column C`).
--
-- The writer stores its token in the row (UPDATE T SET …, C = :token WHERE …). The triggers
-- guarantee, for every row of T:
--   * an INSERT or UPDATE whose C is not an integer (NULL included) is refused;
--   * an UPDATE that lowers C is refused (equal tokens pass: one holder may write many times).
-- SQLite's RAISE takes a fixed string, so the message names the column but not the tokens.
-- RAISE(ABORT) undoes the refused statement and fails it with SQLITE_CONSTRAINT_TRIGGER; the
-- caller must then ROLLBACK its transaction (SQLite keeps the transaction open).
-- Installing twice is a no-op (IF NOT EXISTS); nothing but these two triggers is created.

CREATE TRIGGER IF NOT EXISTS {{trigger_insert}}
  BEFORE INSERT ON {{table}} FOR EACH ROW
  WHEN typeof(NEW.{{column}}) <> 'integer'
BEGIN
  SELECT RAISE(ABORT, {{message_null}});
END;

CREATE TRIGGER IF NOT EXISTS {{trigger_update}}
  BEFORE UPDATE ON {{table}} FOR EACH ROW
  WHEN typeof(NEW.{{column}}) <> 'integer' OR NEW.{{column}} < OLD.{{column}}
BEGIN
  SELECT RAISE(ABORT, {{message_stale}});
END;
