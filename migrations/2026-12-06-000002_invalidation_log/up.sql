-- Writes to timeseries_data that the server did not make (psql, an ETL's
-- \copy, the FastAPI service's SQLAlchemy) move their series' folded_to back
-- to the first hour they touched, so that readers summarise those hours from
-- the raw points again, exactly, at once and in the writer's own
-- transaction; and they log the series, so that the server's fold recomputes
-- those hours soon instead of at its hourly look. TimescaleDB keeps its
-- continuous aggregates the same way, from a trigger.
--
-- The server's own writes skip it (mcp_lock_for_write marks their
-- transaction): they keep their hours themselves.

-- Bumped by every transaction of a SQL writer that touches the series: the
-- server's cached answers about the series carry it in their keys, so none
-- from before such a write is served after it.
ALTER TABLE timeseries_series ADD COLUMN sql_writes BIGINT NOT NULL DEFAULT 0;

CREATE TABLE timeseries_invalidations (
    series_name TEXT NOT NULL,
    -- Hour-aligned: the first hour that a write touched.
    since       TIMESTAMPTZ NOT NULL,
    logged_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT timeseries_invalidations_pkey PRIMARY KEY (series_name)
);

-- Series touched by a write, each with the earliest time touched.
CREATE FUNCTION mcp_invalidate(p_series TEXT[], p_first TIMESTAMPTZ[]) RETURNS VOID
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

-- Statement-level: one pass over the rows a statement touched (its
-- transition tables), whatever their number.
CREATE FUNCTION mcp_rows_touched() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM mcp_invalidate(array_agg(n), array_agg(f))
           FROM (SELECT series_name AS n, min(time) AS f
                   FROM (SELECT series_name, time FROM touched
                         UNION ALL SELECT series_name, time FROM touched_before) t
                  GROUP BY 1) g
         HAVING count(*) > 0;
    ELSE
        PERFORM mcp_invalidate(array_agg(n), array_agg(f))
           FROM (SELECT series_name AS n, min(time) AS f FROM touched GROUP BY 1) g
         HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END
$$;

-- Row-level, for hypertables (they refuse transition tables). A
-- transaction's rows mostly come in runs of one series (a \copy of a file
-- per series, an UPDATE of a range): the last series and hour handled are
-- kept in transaction-local settings, and a row of that series at or after
-- that hour costs no more than this check. Rows that interleave series skip
-- on the catalog row this transaction already wrote (its xmin; under a
-- savepoint that is the subtransaction's, and the work is redone: slower,
-- never wrong).
CREATE FUNCTION mcp_row_touched() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_row RECORD;
BEGIN
    FOR v_row IN SELECT NEW.series_name AS n, NEW.time AS t WHERE TG_OP <> 'DELETE'
                 UNION ALL SELECT OLD.series_name, OLD.time WHERE TG_OP <> 'INSERT' LOOP
        IF (current_setting('mcp.touched_series', true) IS DISTINCT FROM v_row.n
            OR date_part('epoch', v_row.t)
               < COALESCE(NULLIF(current_setting('mcp.touched_hour', true), '')::float8, 'infinity'))
           AND NOT EXISTS (SELECT 1 FROM timeseries_series c
                            WHERE c.series_name = v_row.n AND c.folded_to <= v_row.t
                              AND c.xmin = pg_current_xact_id()::xid) THEN
            PERFORM mcp_invalidate(ARRAY[v_row.n], ARRAY[v_row.t]);
            PERFORM set_config('mcp.touched_series', v_row.n, true),
                    set_config('mcp.touched_hour', date_part('epoch',
                        date_bin('1 hour', v_row.t, TIMESTAMPTZ '2000-01-01 00:00:00+00'))::text, true);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- TRUNCATE leaves no point: no rollup either.
CREATE FUNCTION mcp_data_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE timeseries_rollups, timeseries_rollups_daily, timeseries_invalidations;
    UPDATE timeseries_series SET folded_to = '-infinity', sql_writes = sql_writes + 1;
    RETURN NULL;
END
$$;

-- (Re)creates the triggers in one form: row-level when p_row_level (as on a
-- hypertable), statement-level otherwise. Tests run both forms on plain
-- PostgreSQL through it.
CREATE FUNCTION mcp_data_triggers(p_row_level BOOLEAN) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    v_server CONSTANT TEXT := $w$current_setting('mcp.writer', true) IS DISTINCT FROM 'server'$w$;
BEGIN
    DROP TRIGGER IF EXISTS timeseries_data_inserted ON timeseries_data;
    DROP TRIGGER IF EXISTS timeseries_data_deleted ON timeseries_data;
    DROP TRIGGER IF EXISTS timeseries_data_updated ON timeseries_data;
    IF p_row_level THEN
        EXECUTE format('CREATE TRIGGER timeseries_data_inserted AFTER INSERT ON timeseries_data
                        FOR EACH ROW WHEN (%s) EXECUTE FUNCTION mcp_row_touched()', v_server);
        EXECUTE format('CREATE TRIGGER timeseries_data_deleted AFTER DELETE ON timeseries_data
                        FOR EACH ROW WHEN (%s) EXECUTE FUNCTION mcp_row_touched()', v_server);
        EXECUTE format('CREATE TRIGGER timeseries_data_updated AFTER UPDATE OF series_name, time, value
                        ON timeseries_data FOR EACH ROW WHEN (%s) EXECUTE FUNCTION mcp_row_touched()',
                       v_server);
    ELSE
        -- The server's rows still fill the transition table (a copy per
        -- row, measured within noise of COPY); the function is not called.
        EXECUTE format('CREATE TRIGGER timeseries_data_inserted AFTER INSERT ON timeseries_data
                        REFERENCING NEW TABLE AS touched
                        FOR EACH STATEMENT WHEN (%s) EXECUTE FUNCTION mcp_rows_touched()', v_server);
        EXECUTE format('CREATE TRIGGER timeseries_data_deleted AFTER DELETE ON timeseries_data
                        REFERENCING OLD TABLE AS touched
                        FOR EACH STATEMENT WHEN (%s) EXECUTE FUNCTION mcp_rows_touched()', v_server);
        -- An UPDATE trigger with transition tables names no columns.
        EXECUTE format('CREATE TRIGGER timeseries_data_updated AFTER UPDATE ON timeseries_data
                        REFERENCING OLD TABLE AS touched_before NEW TABLE AS touched
                        FOR EACH STATEMENT WHEN (%s) EXECUTE FUNCTION mcp_rows_touched()', v_server);
    END IF;
END
$$;

-- TimescaleDB marks a hypertable's root with its insert blocker.
SELECT mcp_data_triggers(EXISTS (
    SELECT 1 FROM pg_trigger
     WHERE tgrelid = 'timeseries_data'::regclass AND tgname = 'ts_insert_blocker'));
CREATE TRIGGER timeseries_data_emptied AFTER TRUNCATE ON timeseries_data
    FOR EACH STATEMENT EXECUTE FUNCTION mcp_data_emptied();

-- The server's writes begin here: they mark their transaction as the
-- server's, so the trigger above skips their rows.
CREATE OR REPLACE FUNCTION mcp_lock_for_write(p_series TEXT[], p_all BOOLEAN)
RETURNS TABLE (series_name TEXT, folded_to TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('mcp.writer', 'server', true);
    PERFORM count(pg_advisory_xact_lock_shared(hashtext('mcp_fold'), q.s))
       FROM (SELECT DISTINCT a.s FROM (
               SELECT mcp_series_stripe(n) AS s FROM unnest(p_series) AS n
               UNION ALL SELECT g FROM generate_series(0, 63) AS g WHERE p_all) a
             ORDER BY a.s) q;
    RETURN QUERY SELECT c.series_name, c.folded_to FROM timeseries_series c
                  WHERE c.series_name = ANY(p_series) AND c.folded_to > '-infinity';
END
$$;

-- The fold now also clears what it replaces: after a SQL DELETE, an hour or
-- a day may have no point left, and no recomputation would overwrite it.
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
