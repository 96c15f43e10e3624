-- ordo's SQLite schema, version 3: semaphores. A holder records the limit it was acquired with
-- and its slot (the lowest one free among the live holders when it was acquired; 0 for a plain
-- lock or a shared holder).
--
-- Acquisitions delete expired holders before inserting (cas: kPurgeExpired; version: each
-- expired row it read), so every row a permit's insert can meet is live, and the unique index
-- below keeps slots unique among a semaphore's live holders. Plain locks (lim = 1) are left out
-- of it: shared holders all have slot 0.
ALTER TABLE holders ADD COLUMN slot INTEGER NOT NULL DEFAULT 0 CHECK (slot >= 0);
ALTER TABLE holders ADD COLUMN lim INTEGER NOT NULL DEFAULT 1 CHECK (lim >= 1);
CREATE UNIQUE INDEX holders_permit_slot ON holders (name, slot) WHERE lim > 1;
