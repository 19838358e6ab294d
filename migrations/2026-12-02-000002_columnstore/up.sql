-- The TimescaleDB columnstore (compression) for timeseries_data, where the
-- TSL edition provides it: segments by series, ordered by time, so a range
-- of one series decompresses only its own segments. The server's start-up
-- sets the policy's age (TIMESCALE_COMPRESS_AFTER_DAYS); 7 days until then.
-- A no-op on plain PostgreSQL and on the Apache edition. (Nested IFs: the
-- catalog view does not exist without the extension.)
DO $$
BEGIN
    IF to_regclass('timescaledb_information.hypertables') IS NOT NULL THEN
        IF current_setting('timescaledb.license', true) = 'timescale'
           AND EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                       WHERE hypertable_name = 'timeseries_data') THEN
            ALTER TABLE timeseries_data SET (timescaledb.compress,
                                             timescaledb.compress_segmentby = 'series_name',
                                             timescaledb.compress_orderby = 'time');
            PERFORM add_compression_policy('timeseries_data', INTERVAL '7 days',
                                           if_not_exists => true);
        ELSE
            RAISE NOTICE 'no TimescaleDB columnstore here (Apache edition or no hypertable)';
        END IF;
    END IF;
END
$$;
