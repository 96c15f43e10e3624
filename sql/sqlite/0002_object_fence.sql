-- Version 2: fenced compare-and-swap (VersionedStore::CompareAndSwap with a token).
--
-- Per object, the fence: the highest fencing token a fenced CAS has written with (0 = none).
-- A fenced CAS with a lower token is refused before its version is looked at, so a deposed
-- leader that read a fresh version still cannot move the object's state.
ALTER TABLE objects ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;
