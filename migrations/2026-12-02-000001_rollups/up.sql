-- Hourly rollups of timeseries_data, so that statistics, trends, buckets and
-- anomaly bounds cost the number of hours in a range, not the number of
-- points. The server keeps them in the ingest transaction: every write
-- recomputes the hours it touched from the raw points (see
-- src/store/rollups.rs), so they are never stale. A plain table, not a
-- continuous aggregate: it works on PostgreSQL and both TimescaleDB editions
-- alike, and a write is in every answer that follows without real-time
-- aggregation over an unmaterialised tail.
CREATE TABLE timeseries_rollups (
    series_name   TEXT NOT NULL,
    -- Start of the hour, aligned as date_bin('1 hour', time, 2000-01-01Z).
    bucket        TIMESTAMPTZ NOT NULL,
    count         BIGINT NOT NULL CHECK (count > 0),
    sum           DOUBLE PRECISION NOT NULL,
    -- Σ(v − v̄)²: moments about the bucket's own mean merge exactly (Chan et
    -- al.) without the cancellation that Σv² suffers on large, flat values.
    m2            DOUBLE PRECISION NOT NULL,
    min_value     DOUBLE PRECISION NOT NULL,
    max_value     DOUBLE PRECISION NOT NULL,
    first_time    TIMESTAMPTZ NOT NULL,
    first_value   DOUBLE PRECISION NOT NULL,
    last_time     TIMESTAMPTZ NOT NULL,
    last_value    DOUBLE PRECISION NOT NULL,
    -- Least squares against t = seconds after the bucket's start: the mean
    -- of t, Σ(t − t̄)² and Σ(t − t̄)(v − v̄).
    mean_t        DOUBLE PRECISION NOT NULL,
    sxx           DOUBLE PRECISION NOT NULL,
    sxy           DOUBLE PRECISION NOT NULL,
    -- A DDSketch-mapped histogram (relative accuracy 1%): sorted keys from
    -- mcp_sketch_key() and their counts. Merged by adding counts.
    sketch_keys   INTEGER[] NOT NULL,
    sketch_counts INTEGER[] NOT NULL,
    CONSTRAINT timeseries_rollups_pkey PRIMARY KEY (series_name, bucket)
);

-- DDSketch's logarithmic mapping with γ = (1 + 0.01) / (1 − 0.01): the key of
-- v is ⌈log_γ |v|⌉, offset by 40000 and signed by v, so that keys sort as
-- values do; 0 holds zero (and subnormals).
CREATE FUNCTION mcp_sketch_key(v DOUBLE PRECISION) RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN abs(v) < 1e-300 THEN 0
                ELSE (sign(v) * (ceil(ln(abs(v)) / ln(1.01 / 0.99)) + 40000))::integer END
$$;

-- The rollup rows of one series over [from_time, to_time), from the raw
-- points. The server uses it to refresh touched hours and to summarise the
-- partial hours at a window's edges; the fill below uses it too.
CREATE FUNCTION mcp_rollups_from_raw(p_series TEXT, from_time TIMESTAMPTZ, to_time TIMESTAMPTZ)
RETURNS SETOF timeseries_rollups
LANGUAGE sql STABLE AS $$
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
$$;

-- Fill from what is there. The INSERT reads timeseries_data under ACCESS
-- SHARE only, so ingest and reads go on meanwhile; only servers of this
-- version maintain the rollups, and they wait for this migration (the
-- migration lock) before they serve.
INSERT INTO timeseries_rollups
SELECT r.* FROM (SELECT DISTINCT series_name FROM timeseries_data) s
 CROSS JOIN LATERAL mcp_rollups_from_raw(s.series_name, '-infinity', 'infinity') r;
