//! Correlation of aligned series: Pearson, Spearman (Pearson of the ranks,
//! ties at their mean rank), and the lag of largest |Pearson|. Pure.

use std::cmp::Ordering;
use std::collections::HashMap;

/// Pearson's r of paired values; none with fewer than 3 pairs or no spread.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n < 3 {
        return None;
    }
    let (mx, my) = (mean(&x[..n]), mean(&y[..n]));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (dx, dy) = (x[i] - mx, y[i] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    (sxx > 0.0 && syy > 0.0).then(|| (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman's ρ: Pearson's r of the ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    pearson(&ranks(x), &ranks(y))
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// 1-based ranks, ties sharing their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].partial_cmp(&v[b]).unwrap_or(Ordering::Equal));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

/// The best alignment of `other` against `reference` (bucket index →
/// value), shifting `other` by −max_lag..=max_lag buckets: a positive lag
/// means `other` follows `reference` by that many buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Aligned {
    pub pearson: f64,
    pub spearman: Option<f64>,
    pub lag: i64,
    pub samples: usize,
}

pub fn best_lag(
    reference: &HashMap<i64, f64>,
    other: &HashMap<i64, f64>,
    max_lag: i64,
) -> Option<Aligned> {
    let mut best: Option<Aligned> = None;
    // Lag 0 first, then outwards: a tie keeps the smallest shift.
    let lags = std::iter::once(0).chain((1..=max_lag).flat_map(|l| [l, -l]));
    for lag in lags {
        let mut keys: Vec<i64> = reference
            .keys()
            .copied()
            .filter(|k| other.contains_key(&(k + lag)))
            .collect();
        keys.sort_unstable();
        let x: Vec<f64> = keys.iter().map(|k| reference[k]).collect();
        let y: Vec<f64> = keys.iter().map(|k| other[&(k + lag)]).collect();
        let Some(r) = pearson(&x, &y) else { continue };
        if best
            .as_ref()
            .is_none_or(|b| r.abs() > b.pearson.abs() + 1e-12)
        {
            best = Some(Aligned {
                pearson: r,
                spearman: spearman(&x, &y),
                lag,
                samples: keys.len(),
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_and_spearman_on_known_values() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((pearson(&x, &[2.0, 4.0, 6.0, 8.0, 10.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((pearson(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        // Monotonic but not linear: Spearman 1, Pearson below it.
        let y = [1.0, 4.0, 9.0, 16.0, 100.0];
        assert!((spearman(&x, &y).unwrap() - 1.0).abs() < 1e-12);
        assert!(pearson(&x, &y).unwrap() < 0.95);
        assert_eq!(pearson(&x, &[3.0; 5]), None, "no spread");
        assert_eq!(pearson(&[1.0, 2.0], &[1.0, 2.0]), None, "too few");
        assert_eq!(ranks(&[10.0, 20.0, 10.0]), [1.5, 3.0, 1.5]);
    }

    #[test]
    fn the_lag_that_aligns_best_is_found() {
        let wave = |k: i64| ((k as f64) * 0.7).sin() + (k as f64 * 0.13).cos();
        let reference: HashMap<i64, f64> = (0..48).map(|k| (k, wave(k))).collect();
        // `other` repeats `reference` three buckets later.
        let other: HashMap<i64, f64> = (0..48).map(|k| (k, wave(k - 3))).collect();
        let a = best_lag(&reference, &other, 5).unwrap();
        assert_eq!(a.lag, 3);
        assert!((a.pearson - 1.0).abs() < 1e-12);
        assert_eq!(a.samples, 45);
        assert_eq!(best_lag(&reference, &other, 0).unwrap().lag, 0);
    }
}
