-- Version 4: permits (semaphores) on the for-update strategy. A permit holder of lock NAME with
-- limit N holds one of the rows (NAME, 0) … (NAME, N-1) FOR UPDATE in a transaction left open
-- for as long as it holds the permit, exactly as a plain for-update holder holds its
-- ordo.lock_rows row: releasing commits, and a holder whose connection dies loses the row lock
-- at once. An acquisition locks the lowest slot row nobody holds (ORDER BY slot … FOR UPDATE
-- SKIP LOCKED), so the row lock itself is what keeps two live permits out of one slot; the
-- holder row in ordo.holders (slot, lim) is what Describe, List and strict fencing read.
-- Rows are created on first use of a slot and never deleted (a few bytes per slot).
-- Kept apart from ordo.lock_rows so that plain holders and permit holders never lock the same
-- row: a request whose limit differs from the live holders' is refused where the token is
-- issued (statements.h, kForUpdateIssueToken), not by waiting on a row.
CREATE TABLE ordo.permit_rows (
  name text COLLATE "C" NOT NULL,
  slot integer NOT NULL CHECK (slot >= 0),
  PRIMARY KEY (name, slot)
);
