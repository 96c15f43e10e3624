-- ordo fence, PostgreSQL: the schema that holds ordo's fence objects (only when --schema names
-- one). IF NOT EXISTS: installing twice is a no-op; an existing schema is left as it is.
CREATE SCHEMA IF NOT EXISTS {{schema}};
