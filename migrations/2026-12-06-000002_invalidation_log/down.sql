DROP TRIGGER IF EXISTS timeseries_data_inserted ON timeseries_data;
DROP TRIGGER IF EXISTS timeseries_data_deleted ON timeseries_data;
DROP TRIGGER IF EXISTS timeseries_data_updated ON timeseries_data;
DROP TRIGGER IF EXISTS timeseries_data_emptied ON timeseries_data;
DROP FUNCTION IF EXISTS mcp_data_triggers(BOOLEAN);
DROP FUNCTION IF EXISTS mcp_rows_touched();
DROP FUNCTION IF EXISTS mcp_row_touched();
DROP FUNCTION IF EXISTS mcp_data_emptied();
DROP FUNCTION IF EXISTS mcp_invalidate(TEXT[], TIMESTAMPTZ[]);
DROP TABLE IF EXISTS timeseries_invalidations;
ALTER TABLE IF EXISTS timeseries_series DROP COLUMN IF EXISTS sql_writes;

-- As the series catalog's migration defined them.
CREATE OR REPLACE FUNCTION mcp_lock_for_write(p_series TEXT[], p_all BOOLEAN)
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

CREATE OR REPLACE FUNCTION mcp_fold(p_series TEXT[], p_until TIMESTAMPTZ) RETURNS INTEGER
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
