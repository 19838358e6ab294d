-- A hypertable cannot be turned back in place: copy it into a plain table of
-- the same shape and swap names. Nothing to do on plain PostgreSQL.
-- The extension itself is left installed: other objects may depend on it.
-- (Nested IFs: PL/pgSQL plans a whole condition at once, and the catalog view
-- does not exist without the extension.)
DO $$
BEGIN
    IF to_regclass('timescaledb_information.hypertables') IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                   WHERE hypertable_name = 'timeseries_data') THEN
            CREATE TABLE timeseries_data_plain (LIKE timeseries_data INCLUDING ALL);
            INSERT INTO timeseries_data_plain SELECT * FROM timeseries_data;
            DROP TABLE timeseries_data;
            ALTER TABLE timeseries_data_plain RENAME TO timeseries_data;
            ALTER INDEX timeseries_data_plain_pkey RENAME TO timeseries_data_pkey;
        END IF;
    END IF;
END
$$;
