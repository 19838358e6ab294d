//! Property tests (proptest, bounded for CI): argument parsing and the
//! analytics functions never panic, whatever they are given, and keep their
//! promises where the input is valid.

use mcp_server::analytics::linalg::least_squares;
use mcp_server::analytics::{FittedModel, ModelKind, ModelParams, evaluate, fit};
use mcp_server::domain::{Bounded, Bucket, Series, Window};
use proptest::prelude::*;
use serde_json::json;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn series_names_parse_or_refuse_without_panicking(name in any::<String>()) {
        if let Ok(s) = Series::parse(&name) {
            prop_assert_eq!(s.as_str(), name.as_str());
            prop_assert!(!name.is_empty() && name.len() <= 200);
        }
    }

    #[test]
    fn buckets_parse_within_their_bounds(text in "[0-9]{0,20}[smhdwy]?[a-z]{0,2}") {
        if let Ok(b) = Bucket::parse(&text) {
            prop_assert!((1..=366 * 86_400).contains(&b.seconds()));
            // What it prints, it parses back to the same width.
            prop_assert_eq!(Bucket::parse(&String::from(b)).unwrap(), b);
        }
    }

    #[test]
    fn windows_are_ordered_once_parsed(start in any::<i64>(), end in any::<i64>(), junk in any::<String>()) {
        let t = |s: i64| chrono::DateTime::from_timestamp(s % 250_000_000_000, 0).map(|t| t.to_rfc3339());
        let value = json!({ "start": t(start), "end": t(end) });
        if let Ok(w) = serde_json::from_value::<Window>(value)
            && let (Some(s), Some(e)) = (w.start, w.end)
        {
            prop_assert!(s < e);
        }
        let _ = serde_json::from_value::<Window>(json!({ "start": junk }));
    }

    #[test]
    fn bounded_integers_hold_their_bounds(n in any::<i64>()) {
        match serde_json::from_value::<Bounded<1, 10_000, 1000>>(json!(n)) {
            Ok(b) => prop_assert!((1..=10_000).contains(&b.get())),
            Err(_) => prop_assert!(!(1..=10_000).contains(&n)),
        }
    }

    #[test]
    fn fitting_and_forecasting_never_panic(
        ys in prop::collection::vec(prop_oneof![-1e12f64..1e12, Just(0.0), Just(f64::NAN), Just(1e300)], 0..60),
        kind in prop_oneof![Just(ModelKind::Linear), Just(ModelKind::Holt), Just(ModelKind::Ar)],
        holdout in 0usize..70,
        horizon in 0usize..200,
        p in 1u32..=20,
    ) {
        let params: ModelParams = serde_json::from_value(json!({ "p": p })).unwrap();
        if let Ok(model) = fit(kind, &ys, &params) {
            let _ = model.forecast(horizon);
        }
        if let Ok((model, _)) = evaluate(kind, &ys, holdout, &params) {
            prop_assert!(holdout >= 1 && holdout < ys.len(), "evaluate accepted holdout {} of {}", holdout, ys.len());
            prop_assert_eq!(model.forecast(horizon).len(), horizon);
        }
    }

    #[test]
    fn a_fitted_line_forecasts_the_line(a in -1e6f64..1e6, b in -1e3f64..1e3, n in 3usize..200) {
        let ys: Vec<f64> = (0..n).map(|t| a + b * t as f64).collect();
        let model = fit(ModelKind::Linear, &ys, &ModelParams::default()).unwrap();
        let FittedModel::Linear { slope, .. } = model else {
            panic!("a linear model");
        };
        let tolerance = 1e-6 * (1.0 + b.abs() + a.abs());
        prop_assert!((slope - b).abs() <= tolerance);
        let next = model.forecast(1)[0];
        let want = a + b * n as f64;
        prop_assert!((next - want).abs() <= tolerance * (1.0 + n as f64), "{} vs {}", next, want);
    }

    #[test]
    fn least_squares_never_panics(
        rows in prop::collection::vec(prop::collection::vec(-1e6f64..1e6, 0..5), 0..20),
        y in prop::collection::vec(-1e6f64..1e6, 0..20),
    ) {
        if let Some(beta) = least_squares(&rows, &y) {
            prop_assert!(beta.iter().all(|b| b.is_finite()));
        }
    }
}
