-- Decompress every chunk first: compression cannot be turned off while a
-- chunk is compressed.
DO $$
BEGIN
    IF to_regclass('timescaledb_information.hypertables') IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                   WHERE hypertable_name = 'timeseries_data' AND compression_enabled) THEN
            PERFORM remove_compression_policy('timeseries_data', if_exists => true);
            PERFORM decompress_chunk(c, if_compressed => true)
               FROM show_chunks('timeseries_data') c;
            ALTER TABLE timeseries_data SET (timescaledb.compress = false);
        END IF;
    END IF;
END
$$;
