DROP TABLE mcp_request_logs;
DROP TABLE performance_metrics;
DROP TABLE model_training_logs;
DROP TABLE analysis_results;
DROP TABLE statistics_data;
DROP TABLE timeseries_data;
