ALTER TABLE IF EXISTS timeseries_series DROP COLUMN IF EXISTS raw_from;

-- As the invalidation log's migration defined it.
CREATE OR REPLACE FUNCTION mcp_invalidate(p_series TEXT[], p_first TIMESTAMPTZ[]) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    -- As a server writer does: no fold of these stripes runs until commit,
    -- and one that ran before is seen by the statements below.
    PERFORM count(pg_advisory_xact_lock_shared(hashtext('mcp_fold'), q.s))
       FROM (SELECT DISTINCT mcp_series_stripe(n) AS s FROM unnest(p_series) AS n ORDER BY 1) q;
    -- Catalog rows in name order, so that two writers never wait on each
    -- other's. A series written only by SQL joins the catalog, so that it
    -- is listed and folded.
    INSERT INTO timeseries_series (series_name, metric, folded_to)
    SELECT n, n, '-infinity' FROM unnest(p_series) AS n ORDER BY n
    ON CONFLICT (series_name) DO NOTHING;
    PERFORM 1 FROM timeseries_series c WHERE c.series_name = ANY(p_series)
     ORDER BY c.series_name FOR UPDATE;
    UPDATE timeseries_series c
       SET folded_to = LEAST(c.folded_to, u.hour), sql_writes = c.sql_writes + 1
      FROM (SELECT n, min(date_bin('1 hour', f, TIMESTAMPTZ '2000-01-01 00:00:00+00')) AS hour
              FROM unnest(p_series, p_first) AS x(n, f) GROUP BY n) u
     WHERE c.series_name = u.n;
    INSERT INTO timeseries_invalidations AS i (series_name, since)
    SELECT n, min(date_bin('1 hour', f, TIMESTAMPTZ '2000-01-01 00:00:00+00'))
      FROM unnest(p_series, p_first) AS x(n, f) GROUP BY n ORDER BY n
    ON CONFLICT (series_name) DO UPDATE SET since = EXCLUDED.since, logged_at = now()
        WHERE i.since > EXCLUDED.since;
END
$$;

-- As the series catalog's migration defined it.
CREATE OR REPLACE FUNCTION mcp_refold(p_series TEXT) RETURNS INTEGER
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
