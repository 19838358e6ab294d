// @generated automatically by Diesel CLI.

diesel::table! {
    analysis_results (id) {
        id -> Int8,
        analysis_type -> Text,
        series_name -> Text,
        parameters -> Jsonb,
        result -> Nullable<Jsonb>,
        status -> Text,
        error -> Nullable<Text>,
        started_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        duration_ms -> Nullable<Float8>,
    }
}

diesel::table! {
    mcp_request_logs (id) {
        id -> Int8,
        session_id -> Nullable<Text>,
        request_id -> Nullable<Text>,
        method -> Text,
        tool_name -> Nullable<Text>,
        params -> Nullable<Jsonb>,
        status -> Text,
        error_code -> Nullable<Int4>,
        error_message -> Nullable<Text>,
        duration_ms -> Float8,
        client_name -> Nullable<Text>,
        created_at -> Timestamptz,
        auth_subject -> Nullable<Text>,
        auth_client_id -> Nullable<Text>,
    }
}

diesel::table! {
    mcp_tasks (task_id) {
        task_id -> Text,
        tool_name -> Text,
        status -> Text,
        status_message -> Nullable<Text>,
        result -> Nullable<Jsonb>,
        error -> Nullable<Jsonb>,
        input_requests -> Nullable<Jsonb>,
        input_responses -> Jsonb,
        cancel_requested -> Bool,
        owner -> Text,
        heartbeat_at -> Timestamptz,
        ttl_ms -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    model_training_logs (id) {
        id -> Int8,
        model_name -> Text,
        model_type -> Text,
        series_name -> Text,
        parameters -> Jsonb,
        model -> Nullable<Jsonb>,
        training_points -> Nullable<Int4>,
        holdout_points -> Nullable<Int4>,
        mae -> Nullable<Float8>,
        rmse -> Nullable<Float8>,
        mape -> Nullable<Float8>,
        status -> Text,
        error -> Nullable<Text>,
        started_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        duration_ms -> Nullable<Float8>,
    }
}

diesel::table! {
    performance_metrics (id) {
        id -> Int8,
        metric_name -> Text,
        value -> Float8,
        unit -> Nullable<Text>,
        labels -> Jsonb,
        recorded_at -> Timestamptz,
    }
}

diesel::table! {
    statistics_data (id) {
        id -> Int8,
        series_name -> Text,
        window_start -> Nullable<Timestamptz>,
        window_end -> Nullable<Timestamptz>,
        count -> Int8,
        mean -> Nullable<Float8>,
        stddev -> Nullable<Float8>,
        min_value -> Nullable<Float8>,
        max_value -> Nullable<Float8>,
        p50 -> Nullable<Float8>,
        p95 -> Nullable<Float8>,
        p99 -> Nullable<Float8>,
        computed_at -> Timestamptz,
    }
}

diesel::table! {
    timeseries_data (series_name, time) {
        series_name -> Text,
        time -> Timestamptz,
        value -> Float8,
        tags -> Jsonb,
        ingested_at -> Timestamptz,
    }
}

diesel::table! {
    timeseries_invalidations (series_name) {
        series_name -> Text,
        since -> Timestamptz,
        logged_at -> Timestamptz,
    }
}

diesel::table! {
    timeseries_label_changes (id) {
        id -> Int8,
        name -> Text,
        value -> Nullable<Text>,
        delta -> Int8,
    }
}

diesel::table! {
    timeseries_label_names (name) {
        name -> Text,
        series -> Int8,
    }
}

diesel::table! {
    timeseries_label_values (name, value) {
        name -> Text,
        value -> Text,
        series -> Int8,
    }
}

diesel::table! {
    timeseries_metrics (metric) {
        metric -> Text,
        kind -> Text,
        help -> Text,
        unit -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    timeseries_rollups (series_name, bucket) {
        series_name -> Text,
        bucket -> Timestamptz,
        count -> Int8,
        sum -> Float8,
        m2 -> Float8,
        min_value -> Float8,
        max_value -> Float8,
        first_time -> Timestamptz,
        first_value -> Float8,
        last_time -> Timestamptz,
        last_value -> Float8,
        mean_t -> Float8,
        sxx -> Float8,
        sxy -> Float8,
        sketch_keys -> Array<Nullable<Int4>>,
        sketch_counts -> Array<Nullable<Int4>>,
        increase -> Float8,
    }
}

diesel::table! {
    timeseries_rollups_daily (series_name, bucket) {
        series_name -> Text,
        bucket -> Timestamptz,
        count -> Int8,
        sum -> Float8,
        m2 -> Float8,
        min_value -> Float8,
        max_value -> Float8,
        first_time -> Timestamptz,
        first_value -> Float8,
        last_time -> Timestamptz,
        last_value -> Float8,
        mean_t -> Float8,
        sxx -> Float8,
        sxy -> Float8,
        sketch_keys -> Array<Nullable<Int4>>,
        sketch_counts -> Array<Nullable<Int4>>,
        increase -> Float8,
    }
}

diesel::table! {
    timeseries_series (series_name) {
        series_name -> Text,
        metric -> Text,
        tags -> Jsonb,
        folded_to -> Timestamptz,
        created_at -> Timestamptz,
        sql_writes -> Int8,
        raw_from -> Timestamptz,
        hours_from -> Timestamptz,
        days_from -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    analysis_results,
    mcp_request_logs,
    mcp_tasks,
    model_training_logs,
    performance_metrics,
    statistics_data,
    timeseries_data,
    timeseries_invalidations,
    timeseries_label_changes,
    timeseries_label_names,
    timeseries_label_values,
    timeseries_metrics,
    timeseries_rollups,
    timeseries_rollups_daily,
    timeseries_series,
);
