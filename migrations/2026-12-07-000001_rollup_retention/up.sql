-- Retention of the rollups (RETENTION_HOURS_DAYS, RETENTION_DAYS_DAYS,
-- src/store/retention.rs). Hours go only before raw_from, on a day
-- boundary, so each day left without its hours is whole in the daily
-- table; days go only before hours_from. Readers widen an edge before
-- hours_from to its day. Nothing before days_from is kept at all.
ALTER TABLE timeseries_series
    ADD COLUMN hours_from TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    ADD COLUMN days_from TIMESTAMPTZ NOT NULL DEFAULT '-infinity';

-- list_series now reads the catalog (a series whose points all went is
-- still listed from its rollups). Series that SQL wrote before the
-- invalidation trigger catalogued such writes join it here, found by a
-- loose index scan (one probe per series, not a read of every point).
INSERT INTO timeseries_series (series_name, metric)
WITH RECURSIVE s(series_name) AS (
    (SELECT series_name FROM timeseries_data ORDER BY series_name LIMIT 1)
    UNION ALL
    SELECT (SELECT t.series_name FROM timeseries_data t
             WHERE t.series_name > s.series_name ORDER BY t.series_name LIMIT 1)
      FROM s WHERE s.series_name IS NOT NULL)
SELECT series_name, series_name FROM s WHERE series_name IS NOT NULL
ON CONFLICT (series_name) DO NOTHING;
