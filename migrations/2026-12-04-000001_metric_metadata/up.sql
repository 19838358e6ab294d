-- What each metric is: the kind, help and unit Prometheus sends as metadata
-- (remote write 1.0's WriteRequest.metadata, keyed by metric family: `x` for
-- the series x_bucket, x_sum and x_count of a histogram). Metrics without a
-- row get their kind from naming conventions when read (src/domain/metric_kind.rs).
-- A plain table on PostgreSQL and on TimescaleDB alike.
CREATE TABLE timeseries_metrics (
    metric     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    help       TEXT NOT NULL DEFAULT '',
    unit       TEXT NOT NULL DEFAULT '',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT timeseries_metrics_pkey PRIMARY KEY (metric),
    CONSTRAINT timeseries_metrics_kind_check
        CHECK (kind IN ('counter', 'gauge', 'histogram', 'summary', 'unknown'))
);
