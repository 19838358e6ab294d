-- The label index: how many series carry each label name and each label
-- value, so list_labels and label_values over the whole catalog read a few
-- rows per label instead of every series' tags.
--
-- Triggers on the catalog append each change to timeseries_label_changes
-- and never update a count: a count row updated by every write that
-- registers a series would be a hot row that concurrent collectors wait on
-- (every new series of a job touches `job`). The server's background worker
-- moves the changes into the counts (mcp_labels_settle); readers add the
-- changes not yet moved, so counts are exact at any moment.
CREATE TABLE timeseries_label_names (
    name   TEXT PRIMARY KEY,
    series BIGINT NOT NULL
);

-- `__name__`'s values are the metrics (of series written by name too).
-- Only string values are counted, as label_values lists them.
CREATE TABLE timeseries_label_values (
    name   TEXT NOT NULL,
    value  TEXT NOT NULL,
    series BIGINT NOT NULL,
    CONSTRAINT timeseries_label_values_pkey PRIMARY KEY (name, value)
);
-- The settle's cleanup of values no series carries any more.
CREATE INDEX timeseries_label_values_gone_idx ON timeseries_label_values (name) WHERE series <= 0;

-- One row per label of a series added (+1) or removed (-1), summed per
-- statement. `value` is NULL for a value that is not a string (the MCP
-- tool's tags are any JSON object): the name counts, the value does not.
CREATE TABLE timeseries_label_changes (
    id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name  TEXT NOT NULL,
    value TEXT,
    delta BIGINT NOT NULL
);
CREATE INDEX timeseries_label_changes_name_idx ON timeseries_label_changes (name);

-- A series' labels as the index counts them: its metric as `__name__`, and
-- each tag but a `__name__` tag (the metric column holds it).
CREATE FUNCTION mcp_labels_of(p_metric TEXT, p_tags JSONB)
RETURNS TABLE (name TEXT, value TEXT)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '__name__', p_metric
    UNION ALL
    SELECT e.k, CASE WHEN jsonb_typeof(e.v) = 'string' THEN e.v #>> '{}' END
      FROM jsonb_each(CASE WHEN jsonb_typeof(p_tags) = 'object' THEN p_tags ELSE '{}' END) AS e(k, v)
     WHERE e.k <> '__name__'
$$;

-- Series added (+1 a label) or removed (-1): both triggers name their
-- transition table `touched`.
CREATE FUNCTION mcp_labels_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO timeseries_label_changes (name, value, delta)
    SELECT l.name, l.value, CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END * count(*)
      FROM touched t, mcp_labels_of(t.metric, t.tags) l GROUP BY 1, 2;
    RETURN NULL;
END
$$;

CREATE FUNCTION mcp_labels_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO timeseries_label_changes (name, value, delta)
    SELECT c.name, c.value, sum(c.d) FROM (
        SELECT o.name, o.value, -1 AS d FROM mcp_labels_of(OLD.metric, OLD.tags) o
        UNION ALL
        SELECT n.name, n.value, 1 FROM mcp_labels_of(NEW.metric, NEW.tags) n) c
     GROUP BY 1, 2 HAVING sum(c.d) <> 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION mcp_labels_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM timeseries_label_changes;
    DELETE FROM timeseries_label_values;
    DELETE FROM timeseries_label_names;
    RETURN NULL;
END
$$;

-- Statement triggers for inserts and deletes (a registration of 100,000
-- series is one INSERT). Transition tables cannot go with a column list,
-- so a tag change is a row trigger, on the columns it counts: the fold's
-- updates of folded_to do not fire it.
CREATE TRIGGER timeseries_series_labels_added AFTER INSERT ON timeseries_series
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION mcp_labels_counted();
CREATE TRIGGER timeseries_series_labels_removed AFTER DELETE ON timeseries_series
    REFERENCING OLD TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION mcp_labels_counted();
CREATE TRIGGER timeseries_series_labels_changed AFTER UPDATE OF metric, tags ON timeseries_series
    FOR EACH ROW WHEN (OLD.metric IS DISTINCT FROM NEW.metric OR OLD.tags IS DISTINCT FROM NEW.tags)
    EXECUTE FUNCTION mcp_labels_changed();
CREATE TRIGGER timeseries_series_labels_emptied AFTER TRUNCATE ON timeseries_series
    FOR EACH STATEMENT EXECUTE FUNCTION mcp_labels_emptied();

-- Moves the changes into the counts, in key order (two replicas settling
-- at once wait on each other's rows, never deadlock; a change row is moved
-- by one of them). Returns how many change rows it moved.
CREATE FUNCTION mcp_labels_settle() RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    v_moved BIGINT;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM timeseries_label_changes) THEN
        RETURN 0;
    END IF;
    WITH d AS (DELETE FROM timeseries_label_changes RETURNING name, value, delta),
    v AS (INSERT INTO timeseries_label_values AS c (name, value, series)
          SELECT d.name, d.value, sum(d.delta) FROM d WHERE d.value IS NOT NULL
           GROUP BY 1, 2 ORDER BY 1, 2
          ON CONFLICT (name, value) DO UPDATE SET series = c.series + EXCLUDED.series),
    n AS (INSERT INTO timeseries_label_names AS c (name, series)
          SELECT d.name, sum(d.delta) FROM d WHERE d.name <> '__name__'
           GROUP BY 1 ORDER BY 1
          ON CONFLICT (name) DO UPDATE SET series = c.series + EXCLUDED.series)
    SELECT count(*) INTO v_moved FROM d;
    DELETE FROM timeseries_label_values WHERE series <= 0;
    DELETE FROM timeseries_label_names WHERE series <= 0;
    RETURN v_moved;
END
$$;

-- The series catalogued so far.
INSERT INTO timeseries_label_changes (name, value, delta)
SELECT l.name, l.value, count(*) FROM timeseries_series s, mcp_labels_of(s.metric, s.tags) l GROUP BY 1, 2;
SELECT mcp_labels_settle();
