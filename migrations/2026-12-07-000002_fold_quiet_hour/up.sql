-- The fold may take a series' newest hour too, for the series the caller
-- names in p_whole: those written to by nobody for a while (the folder
-- knows; ROLLUP_FOLD_AFTER_SECS). A series that stopped, or data imported
-- in one go, otherwise kept its last hour as raw points for good, and every
-- read over it summed them. Writes into a folded hour refresh it, as they
-- do any folded hour.
CREATE FUNCTION mcp_fold(p_series TEXT[], p_until TIMESTAMPTZ, p_whole TEXT[]) RETURNS INTEGER
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
           SELECT CASE WHEN s.series_name <> ALL(p_whole)
                       THEN LEAST(p_until, date_bin('1 hour', max(d.time), TIMESTAMPTZ '2000-01-01 00:00:00+00'))
                       -- A quiet series stops at the end of its newest hour, not at
                       -- p_until: samples that come later (a collector catching up)
                       -- land in its tail rather than in a refresh.
                       WHEN max(d.time) IS NOT NULL
                       THEN LEAST(p_until, date_bin('1 hour', max(d.time), TIMESTAMPTZ '2000-01-01 00:00:00+00')
                                           + interval '1 hour')
                  END AS until
             FROM timeseries_data d WHERE d.series_name = s.series_name AND d.time >= s.folded_to) e
     WHERE s.series_name = ANY(p_series) AND s.folded_to < e.until;
    IF v_names IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM timeseries_rollups r USING unnest(v_names, v_from, v_to) AS u(s, f, t)
     WHERE r.series_name = u.s AND r.bucket >= u.f AND r.bucket < u.t;
    DELETE FROM timeseries_rollups_daily r USING unnest(v_names, v_from, v_to) AS u(s, f, t)
     WHERE r.series_name = u.s
       AND r.bucket >= date_bin('1 day', u.f, TIMESTAMPTZ '2000-01-01 00:00:00+00') AND r.bucket < u.t;
    PERFORM mcp_store_hours(v_names, v_from, v_to);
    PERFORM mcp_store_days(v_names, v_from, v_to);
    UPDATE timeseries_series c SET folded_to = u.t
      FROM unnest(v_names, v_to) AS u(s, t) WHERE c.series_name = u.s;
    RETURN cardinality(v_names);
END
$$;

-- The two-argument form (mcp_refold's) folds no newest hour, as before.
CREATE OR REPLACE FUNCTION mcp_fold(p_series TEXT[], p_until TIMESTAMPTZ) RETURNS INTEGER
LANGUAGE sql AS $$ SELECT mcp_fold(p_series, p_until, '{}'::text[]) $$;
