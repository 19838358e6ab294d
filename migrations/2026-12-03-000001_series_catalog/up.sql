-- The series catalog: one row per series with its metric and tags (labels),
-- so list_series can filter by them without reading points, and how far its
-- rollups are folded.
--
-- Rollups are no longer written in every ingest transaction: a write lands its
-- points and nothing else, so collectors that send one point per series per
-- request ingest at COPY speed. A series' hours and days before `folded_to`
-- are in the rollup tables, complete; none are there from `folded_to` on,
-- and readers summarise that tail from the raw points. The server folds the
-- tail in the background (mcp_fold); a write that lands before `folded_to`
-- recomputes the hours it touched in its own transaction. So every answer is
-- exact, whether or not the fold has run (src/store/rollups.rs).
CREATE TABLE timeseries_series (
    series_name TEXT NOT NULL,
    -- The collector's metric: Prometheus' __name__, InfluxDB's
    -- measurement.field; the series name for series written by name.
    metric      TEXT NOT NULL,
    -- The latest tags written with the series: a Prometheus label set, an
    -- InfluxDB tag set with _measurement and _field.
    tags        JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- Hour-aligned (or -infinity): the rollups hold every hour before it.
    folded_to   TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT timeseries_series_pkey PRIMARY KEY (series_name),
    CONSTRAINT timeseries_series_series_name_check
        CHECK (series_name ~ '^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$')
);
CREATE INDEX timeseries_series_metric_idx ON timeseries_series (metric, series_name);
-- `tags @> '{"job": "node"}'`.
CREATE INDEX timeseries_series_tags_idx ON timeseries_series USING gin (tags jsonb_path_ops);

-- Which of 64 lock stripes a series belongs to. Writers hold their series'
-- stripes of the fold lock shared, the fold holds one exclusively; a write
-- that recomputes hours holds the refresh lock of their stripes. Stripes,
-- not one lock per series: a request of 100,000 series takes at most 64
-- locks (the lock table is max_locks_per_transaction × max_connections).
CREATE FUNCTION mcp_series_stripe(p_series TEXT) RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT hashtext(p_series) & 63 $$;

-- The first statement of a write: takes the fold lock of the named series'
-- stripes shared (every stripe with p_all, for a write that will name more
-- series than it knows yet), in stripe order, then returns the folded_to of
-- those that folded anything. The read is a statement of its own, so its
-- snapshot comes after the lock: no fold can move folded_to before the
-- write commits.
CREATE FUNCTION mcp_lock_for_write(p_series TEXT[], p_all BOOLEAN)
RETURNS TABLE (series_name TEXT, folded_to TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM count(pg_advisory_xact_lock_shared(hashtext('mcp_fold'), q.s))
       FROM (SELECT DISTINCT a.s FROM (
               SELECT mcp_series_stripe(n) AS s FROM unnest(p_series) AS n
               UNION ALL SELECT g FROM generate_series(0, 63) AS g WHERE p_all) a
             ORDER BY a.s) q;
    RETURN QUERY SELECT c.series_name, c.folded_to FROM timeseries_series c
                  WHERE c.series_name = ANY(p_series) AND c.folded_to > '-infinity';
END
$$;

-- Recomputes the hours of each series over its [from, to) from the raw
-- points and stores them, replacing the rows there were: the one statement
-- behind a refresh after a write into folded hours, the fold, and the
-- revert of this migration.
CREATE FUNCTION mcp_store_hours(p_series TEXT[], p_from TIMESTAMPTZ[], p_to TIMESTAMPTZ[])
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
        sketch_keys = EXCLUDED.sketch_keys, sketch_counts = EXCLUDED.sketch_counts
$$;

-- The same for the days that [from, to) reaches (from the start of the day
-- of `from`), merged from their hours.
CREATE FUNCTION mcp_store_days(p_series TEXT[], p_from TIMESTAMPTZ[], p_to TIMESTAMPTZ[])
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
        sketch_keys = EXCLUDED.sketch_keys, sketch_counts = EXCLUDED.sketch_counts
$$;

-- Folds the raw points of the named series from their folded_to up to
-- p_until (hour-aligned) into the hours, recomputes the days those hours
-- fall in, and advances folded_to. A series folds no further than the start
-- of the hour of its newest point: a series that goes on growing keeps
-- writing into its tail, however old its timestamps (a backfill, a replay).
-- The caller holds the series' fold lock exclusively. Returns how many
-- series moved.
CREATE FUNCTION mcp_fold(p_series TEXT[], p_until TIMESTAMPTZ) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    v_names TEXT[];
    v_from  TIMESTAMPTZ[];
    v_to    TIMESTAMPTZ[];
BEGIN
    SELECT array_agg(s.series_name), array_agg(s.folded_to), array_agg(e.until)
      INTO v_names, v_from, v_to
      FROM timeseries_series s
     CROSS JOIN LATERAL (
           SELECT LEAST(p_until, date_bin('1 hour', max(d.time), TIMESTAMPTZ '2000-01-01 00:00:00+00')) AS until
             FROM timeseries_data d WHERE d.series_name = s.series_name AND d.time >= s.folded_to) e
     WHERE s.series_name = ANY(p_series) AND s.folded_to < e.until;
    IF v_names IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM mcp_store_hours(v_names, v_from, v_to);
    PERFORM mcp_store_days(v_names, v_from, v_to);
    UPDATE timeseries_series c SET folded_to = u.t
      FROM unnest(v_names, v_to) AS u(s, t) WHERE c.series_name = u.s;
    RETURN cardinality(v_names);
END
$$;

-- Rebuilds one series' rollups from its raw points, for points written
-- behind the server's back (a psql \copy): `SELECT mcp_refold('cpu')`.
-- Everything but the hour of the newest point ends up folded.
CREATE FUNCTION mcp_refold(p_series TEXT) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    v_last TIMESTAMPTZ;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('mcp_fold'), mcp_series_stripe(p_series));
    DELETE FROM timeseries_rollups WHERE series_name = p_series;
    DELETE FROM timeseries_rollups_daily WHERE series_name = p_series;
    INSERT INTO timeseries_series (series_name, metric) VALUES (p_series, p_series)
    ON CONFLICT (series_name) DO UPDATE SET folded_to = '-infinity';
    SELECT max(time) INTO v_last FROM timeseries_data WHERE series_name = p_series;
    IF v_last IS NULL THEN
        RETURN 0;
    END IF;
    RETURN mcp_fold(ARRAY[p_series],
        date_bin('1 hour', v_last, TIMESTAMPTZ '2000-01-01 00:00:00+00') + interval '1 hour');
END
$$;

-- Every series there is, found by a loose index scan (one probe per series),
-- with the tags of its latest point. Until now rollups were kept in every
-- write, so they are complete through the hour of the latest point.
INSERT INTO timeseries_series (series_name, metric, tags, folded_to)
SELECT s.series_name, s.series_name, l.tags,
       date_bin('1 hour', l.time, TIMESTAMPTZ '2000-01-01 00:00:00+00') + interval '1 hour'
  FROM (WITH RECURSIVE n(series_name) AS (
            (SELECT series_name FROM timeseries_data ORDER BY series_name LIMIT 1)
            UNION ALL
            SELECT (SELECT d.series_name FROM timeseries_data d
                     WHERE d.series_name > n.series_name ORDER BY d.series_name LIMIT 1)
              FROM n WHERE n.series_name IS NOT NULL)
        SELECT series_name FROM n WHERE series_name IS NOT NULL) s
 CROSS JOIN LATERAL (SELECT d.tags, d.time FROM timeseries_data d
                      WHERE d.series_name = s.series_name ORDER BY d.time DESC LIMIT 1) l;
