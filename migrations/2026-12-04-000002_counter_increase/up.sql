-- A counter's increase in each hour and day, resets handled as Prometheus
-- does (a drop is a restart from 0: the sample after it counts whole), so a
-- rate or an increase over a month reads days, not points. `increase` sums
-- the pairs of consecutive samples inside the bucket; the pair across two
-- buckets is added by whoever merges them (a day from its hours here, the
-- server from the rows it reads), from their last and first values. Every
-- series has it, counter or not: it is cheap, and a metric's kind may be
-- learned after its points. Plain columns and functions: the same on
-- PostgreSQL and on TimescaleDB.
ALTER TABLE timeseries_rollups ADD COLUMN increase DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE timeseries_rollups_daily ADD COLUMN increase DOUBLE PRECISION NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION mcp_rollups_from_raw(p_series TEXT, from_time TIMESTAMPTZ, to_time TIMESTAMPTZ)
RETURNS SETOF timeseries_rollups
LANGUAGE sql STABLE AS $$
    WITH q AS (
        SELECT date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket, time, value
          FROM timeseries_data
         WHERE series_name = p_series AND time >= from_time AND time < to_time),
    p AS (
        SELECT q.*, value - lag(value) OVER (PARTITION BY bucket ORDER BY time) AS d FROM q),
    m AS (
        SELECT bucket, count(*) AS count, sum(value) AS sum,
               regr_syy(value, date_part('epoch', time - bucket)) AS m2,
               min(value) AS min_value, max(value) AS max_value,
               min(time) AS first_time, max(time) AS last_time,
               avg(date_part('epoch', time - bucket)) AS mean_t,
               regr_sxx(value, date_part('epoch', time - bucket)) AS sxx,
               regr_sxy(value, date_part('epoch', time - bucket)) AS sxy,
               COALESCE(sum(CASE WHEN d >= 0 THEN d WHEN d < 0 THEN value END), 0) AS increase
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
           m.mean_t, m.sxx, m.sxy, s.keys, s.counts, m.increase
      FROM m JOIN s USING (bucket)
$$;

CREATE OR REPLACE FUNCTION mcp_days_from_hours(p_series TEXT, from_time TIMESTAMPTZ, to_time TIMESTAMPTZ)
RETURNS SETOF timeseries_rollups_daily
LANGUAGE sql STABLE AS $$
    WITH h AS (
        SELECT r.*, date_bin('1 day', r.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS day,
               date_part('epoch', r.bucket - date_bin('1 day', r.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00'))
                 + r.mean_t AS tx,
               r.sum / r.count AS mean_v,
               -- The pair across the boundary from the hour before, in the same day.
               CASE WHEN lag(r.last_value) OVER w IS NULL THEN 0
                    WHEN r.first_value >= lag(r.last_value) OVER w
                    THEN r.first_value - lag(r.last_value) OVER w
                    ELSE r.first_value END AS joined
          FROM timeseries_rollups r
         WHERE r.series_name = p_series AND r.bucket >= from_time AND r.bucket < to_time
        WINDOW w AS (PARTITION BY date_bin('1 day', r.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00')
                     ORDER BY r.bucket)),
    d AS (
        SELECT day, sum(h.count)::bigint AS count, sum(h.sum) AS sum,
               sum(h.sum) / sum(h.count)::float8 AS mean_v,
               sum(h.tx * h.count) / sum(h.count)::float8 AS mean_t,
               min(h.min_value) AS min_value, max(h.max_value) AS max_value,
               min(h.first_time) AS first_time, max(h.last_time) AS last_time,
               sum(h.increase + h.joined) AS increase
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
           m.first_value, d.last_time, m.last_value, d.mean_t, m.sxx, m.sxy, s.keys, s.counts,
           d.increase
      FROM d JOIN m USING (day) JOIN s USING (day)
$$;

CREATE OR REPLACE FUNCTION mcp_store_hours(p_series TEXT[], p_from TIMESTAMPTZ[], p_to TIMESTAMPTZ[])
RETURNS VOID LANGUAGE sql AS $$
    INSERT INTO timeseries_rollups
    SELECT r.* FROM unnest(p_series, p_from, p_to) AS u(s, f, t)
     CROSS JOIN LATERAL mcp_rollups_from_raw(u.s, u.f, u.t) r
    ON CONFLICT (series_name, bucket) DO UPDATE SET
        count = EXCLUDED.count, sum = EXCLUDED.sum, m2 = EXCLUDED.m2,
        min_value = EXCLUDED.min_value, max_value = EXCLUDED.max_value,
        first_time = EXCLUDED.first_time, first_value = EXCLUDED.first_value,
        last_time = EXCLUDED.last_time, last_value = EXCLUDED.last_value,
        mean_t = EXCLUDED.mean_t, sxx = EXCLUDED.sxx, sxy = EXCLUDED.sxy,
        sketch_keys = EXCLUDED.sketch_keys, sketch_counts = EXCLUDED.sketch_counts,
        increase = EXCLUDED.increase
$$;

CREATE OR REPLACE FUNCTION mcp_store_days(p_series TEXT[], p_from TIMESTAMPTZ[], p_to TIMESTAMPTZ[])
RETURNS VOID LANGUAGE sql AS $$
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
        sketch_keys = EXCLUDED.sketch_keys, sketch_counts = EXCLUDED.sketch_counts,
        increase = EXCLUDED.increase
$$;

-- The rows there are: the hours in one pass over the points, then the days
-- from their hours.
UPDATE timeseries_rollups r SET increase = i.increase
  FROM (SELECT series_name, bucket,
               COALESCE(sum(CASE WHEN d >= 0 THEN d WHEN d < 0 THEN value END), 0) AS increase
          FROM (SELECT series_name, value,
                       date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
                       value - lag(value) OVER (PARTITION BY series_name,
                           date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01 00:00:00+00') ORDER BY time) AS d
                  FROM timeseries_data) p
         GROUP BY series_name, bucket) i
 WHERE r.series_name = i.series_name AND r.bucket = i.bucket AND i.increase <> 0;
UPDATE timeseries_rollups_daily d SET increase = x.increase
  FROM (SELECT s.series_name, h.bucket, h.increase
          FROM (SELECT DISTINCT series_name FROM timeseries_rollups_daily) s
         CROSS JOIN LATERAL mcp_days_from_hours(s.series_name, '-infinity', 'infinity') h) x
 WHERE d.series_name = x.series_name AND d.bucket = x.bucket AND x.increase <> 0;
