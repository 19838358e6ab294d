DROP TABLE IF EXISTS timeseries_metrics;
