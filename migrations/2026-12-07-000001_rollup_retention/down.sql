ALTER TABLE IF EXISTS timeseries_series DROP COLUMN IF EXISTS days_from, DROP COLUMN IF EXISTS hours_from;
-- The catalog rows the up migration added stay: each names a series with
-- points, as the catalog's own writers would have.
