-- Version 3: semaphores. A holder records the limit it was acquired with (lim) and its slot (the
-- lowest one free among the live holders when it was acquired; 0 for a plain lock or a shared
-- holder). Adding columns with constant defaults rewrites nothing (PostgreSQL 11+).
--
-- An acquisition decides on the live holders and applies the decision only if the lock row's
-- version is unchanged (statements.h), so two permits never get one slot. The unique index is
-- the database's own check of that: acquisitions delete expired holder rows before inserting
-- (the insert waits for the purge in the same statement), so every row a permit's insert meets
-- is live. Plain locks (lim = 1) are left out: shared holders all have slot 0.
ALTER TABLE ordo.holders ADD COLUMN slot integer NOT NULL DEFAULT 0 CHECK (slot >= 0);
ALTER TABLE ordo.holders ADD COLUMN lim integer NOT NULL DEFAULT 1 CHECK (lim >= 1);
CREATE UNIQUE INDEX holders_permit_slot ON ordo.holders (name, slot) WHERE lim > 1;
