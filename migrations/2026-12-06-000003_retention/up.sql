-- Retention of raw points (RETENTION_RAW_DAYS, src/store/retention.rs).
-- The worker drops a series' raw points only before its folded_to, so every
-- hour it drops is in the rollups; raw_from records how far it went. Hours
-- and days before raw_from are kept without their points: readers answer
-- from them, and nothing may recompute or change them.
ALTER TABLE timeseries_series ADD COLUMN raw_from TIMESTAMPTZ NOT NULL DEFAULT '-infinity';

-- A SQL writer's rows before raw_from are refused (the server's own are
-- refused before they reach the table).
CREATE OR REPLACE FUNCTION mcp_invalidate(p_series TEXT[], p_first TIMESTAMPTZ[]) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    v_kept TEXT;
BEGIN
    -- Hours before raw_from are kept without their points: nothing can
    -- recompute them, so no write may land there.
    SELECT format('%s (no raw points before %s)', c.series_name, c.raw_from) INTO v_kept
      FROM unnest(p_series, p_first) AS x(n, f)
      JOIN timeseries_series c ON c.series_name = x.n
     WHERE x.f < c.raw_from LIMIT 1;
    IF v_kept IS NOT NULL THEN
        RAISE EXCEPTION 'a write before the raw retention horizon of series %', v_kept
            USING ERRCODE = 'check_violation',
                  HINT = 'Retention dropped those points and keeps only their hourly and daily rollups.';
    END IF;
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

-- A rebuild from the points starts at raw_from: the hours before it have no
-- points left to rebuild them from.
CREATE OR REPLACE FUNCTION mcp_refold(p_series TEXT) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    v_last TIMESTAMPTZ;
    v_from TIMESTAMPTZ;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('mcp_fold'), mcp_series_stripe(p_series));
    INSERT INTO timeseries_series (series_name, metric) VALUES (p_series, p_series)
    ON CONFLICT (series_name) DO NOTHING;
    SELECT raw_from INTO v_from FROM timeseries_series WHERE series_name = p_series;
    DELETE FROM timeseries_rollups WHERE series_name = p_series AND bucket >= v_from;
    DELETE FROM timeseries_rollups_daily WHERE series_name = p_series
       AND bucket >= date_bin('1 day', v_from, TIMESTAMPTZ '2000-01-01 00:00:00+00');
    UPDATE timeseries_series SET folded_to = v_from WHERE series_name = p_series;
    SELECT max(time) INTO v_last FROM timeseries_data WHERE series_name = p_series;
    IF v_last IS NULL THEN
        RETURN 0;
    END IF;
    RETURN mcp_fold(ARRAY[p_series],
        date_bin('1 hour', v_last, TIMESTAMPTZ '2000-01-01 00:00:00+00') + interval '1 hour');
END
$$;
