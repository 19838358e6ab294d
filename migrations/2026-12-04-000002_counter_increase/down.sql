-- The columns go, then the functions as they were (their return types lose
-- the column with the tables). Guarded: `migrate mark-applied` may have
-- recorded this migration on a database that never ran it.
ALTER TABLE IF EXISTS timeseries_rollups_daily DROP COLUMN IF EXISTS increase;
ALTER TABLE IF EXISTS timeseries_rollups DROP COLUMN IF EXISTS increase;
DO $$
BEGIN
    IF to_regclass('timeseries_rollups') IS NULL OR to_regclass('timeseries_series') IS NULL THEN
        RETURN;
    END IF;
    EXECUTE $q$CREATE OR REPLACE FUNCTION mcp_rollups_from_raw(p_series TEXT, from_time TIMESTAMPTZ, to_time TIMESTAMPTZ)
RETURNS SETOF timeseries_rollups
LANGUAGE sql STABLE AS $f$
    WITH p AS (
        SELECT date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket, time, value
          FROM timeseries_data
         WHERE series_name = p_series AND time >= from_time AND time < to_time),
    m AS (
        SELECT bucket, count(*) AS count, sum(value) AS sum,
               regr_syy(value, date_part('epoch', time - bucket)) AS m2,
               min(value) AS min_value, max(value) AS max_value,
               min(time) AS first_time, max(time) AS last_time,
               avg(date_part('epoch', time - bucket)) AS mean_t,
               regr_sxx(value, date_part('epoch', time - bucket)) AS sxx,
               regr_sxy(value, date_part('epoch', time - bucket)) AS sxy
          FROM p GROUP BY bucket),
    k AS (
        SELECT bucket, mcp_sketch_key(value) AS key, count(*)::integer AS n
          FROM p GROUP BY 1, 2),
    s AS (
        SELECT bucket, array_agg(key ORDER BY key) AS keys, array_agg(n ORDER BY key) AS counts
          FROM k GROUP BY bucket)
    SELECT p_series, m.bucket, m.count, m.sum, m.m2, m.min_value, m.max_value,
           m.first_time,
           (SELECT d.value FROM timeseries_data d
             WHERE d.series_name = p_series AND d.time = m.first_time),
           m.last_time,
           (SELECT d.value FROM timeseries_data d
             WHERE d.series_name = p_series AND d.time = m.last_time),
           m.mean_t, m.sxx, m.sxy, s.keys, s.counts
      FROM m JOIN s USING (bucket)
$f$
    $q$;
    EXECUTE $q$CREATE OR REPLACE FUNCTION mcp_days_from_hours(p_series TEXT, from_time TIMESTAMPTZ, to_time TIMESTAMPTZ)
RETURNS SETOF timeseries_rollups_daily
LANGUAGE sql STABLE AS $f$
    WITH h AS (
        SELECT r.*, date_bin('1 day', r.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS day,
               date_part('epoch', r.bucket - date_bin('1 day', r.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00'))
                 + r.mean_t AS tx,
               r.sum / r.count AS mean_v
          FROM timeseries_rollups r
         WHERE r.series_name = p_series AND r.bucket >= from_time AND r.bucket < to_time),
    d AS (
        SELECT day, sum(h.count)::bigint AS count, sum(h.sum) AS sum,
               sum(h.sum) / sum(h.count)::float8 AS mean_v,
               sum(h.tx * h.count) / sum(h.count)::float8 AS mean_t,
               min(h.min_value) AS min_value, max(h.max_value) AS max_value,
               min(h.first_time) AS first_time, max(h.last_time) AS last_time
          FROM h GROUP BY day),
    m AS (
        SELECT d.day,
               sum(h.m2 + h.count * (h.mean_v - d.mean_v) ^ 2) AS m2,
               sum(h.sxx + h.count * (h.tx - d.mean_t) ^ 2) AS sxx,
               sum(h.sxy + h.count * (h.tx - d.mean_t) * (h.mean_v - d.mean_v)) AS sxy,
               (array_agg(h.first_value ORDER BY h.first_time))[1] AS first_value,
               (array_agg(h.last_value ORDER BY h.last_time DESC))[1] AS last_value
          FROM h JOIN d USING (day) GROUP BY d.day),
    k AS (
        SELECT h.day, u.key, sum(u.n)::integer AS n
          FROM h CROSS JOIN LATERAL unnest(h.sketch_keys, h.sketch_counts) AS u(key, n)
         GROUP BY 1, 2),
    s AS (
        SELECT day, array_agg(key ORDER BY key) AS keys, array_agg(n ORDER BY key) AS counts
          FROM k GROUP BY day)
    SELECT p_series, d.day, d.count, d.sum, m.m2, d.min_value, d.max_value, d.first_time,
           m.first_value, d.last_time, m.last_value, d.mean_t, m.sxx, m.sxy, s.keys, s.counts
      FROM d JOIN m USING (day) JOIN s USING (day)
$f$
    $q$;
    EXECUTE $q$CREATE OR REPLACE FUNCTION mcp_store_hours(p_series TEXT[], p_from TIMESTAMPTZ[], p_to TIMESTAMPTZ[])
RETURNS VOID LANGUAGE sql AS $f$
    INSERT INTO timeseries_rollups
    SELECT r.* FROM unnest(p_series, p_from, p_to) AS u(s, f, t)
     CROSS JOIN LATERAL mcp_rollups_from_raw(u.s, u.f, u.t) r
    ON CONFLICT (series_name, bucket) DO UPDATE SET
        count = EXCLUDED.count, sum = EXCLUDED.sum, m2 = EXCLUDED.m2,
        min_value = EXCLUDED.min_value, max_value = EXCLUDED.max_value,
        first_time = EXCLUDED.first_time, first_value = EXCLUDED.first_value,
        last_time = EXCLUDED.last_time, last_value = EXCLUDED.last_value,
        mean_t = EXCLUDED.mean_t, sxx = EXCLUDED.sxx, sxy = EXCLUDED.sxy,
        sketch_keys = EXCLUDED.sketch_keys, sketch_counts = EXCLUDED.sketch_counts
$f$
    $q$;
    EXECUTE $q$CREATE OR REPLACE FUNCTION mcp_store_days(p_series TEXT[], p_from TIMESTAMPTZ[], p_to TIMESTAMPTZ[])
RETURNS VOID LANGUAGE sql AS $f$
    INSERT INTO timeseries_rollups_daily
    SELECT d.* FROM unnest(p_series, p_from, p_to) AS u(s, f, t)
     CROSS JOIN LATERAL mcp_days_from_hours(
         u.s, date_bin('1 day', u.f, TIMESTAMPTZ '2000-01-01 00:00:00+00'), u.t) d
    ON CONFLICT (series_name, bucket) DO UPDATE SET
        count = EXCLUDED.count, sum = EXCLUDED.sum, m2 = EXCLUDED.m2,
        min_value = EXCLUDED.min_value, max_value = EXCLUDED.max_value,
        first_time = EXCLUDED.first_time, first_value = EXCLUDED.first_value,
        last_time = EXCLUDED.last_time, last_value = EXCLUDED.last_value,
        mean_t = EXCLUDED.mean_t, sxx = EXCLUDED.sxx, sxy = EXCLUDED.sxy,
        sketch_keys = EXCLUDED.sketch_keys, sketch_counts = EXCLUDED.sketch_counts
$f$
    $q$;
END
$$;
