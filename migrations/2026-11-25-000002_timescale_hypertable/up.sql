-- Make timeseries_data a TimescaleDB hypertable when the extension can be
-- used (available and preloaded, as in the timescale/timescaledb image).
-- On plain PostgreSQL this is a no-op, so one migration set serves both.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND current_setting('shared_preload_libraries', true) LIKE '%timescaledb%' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        -- The primary key (series_name, time) already serves lookups by series
        -- and time, so no extra default index on time.
        PERFORM create_hypertable('timeseries_data', 'time',
                                  chunk_time_interval => INTERVAL '7 days',
                                  create_default_indexes => FALSE,
                                  if_not_exists => TRUE,
                                  migrate_data => TRUE);
    ELSE
        RAISE NOTICE 'timescaledb is not available: timeseries_data stays a plain table';
    END IF;
END
$$;
