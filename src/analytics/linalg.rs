//! Least squares for small systems (AR(p) with p ≤ 20).
//!
//! Solved by SVD of the design matrix itself (nalgebra), never through the
//! normal equations `XᵀX β = Xᵀy`: forming `XᵀX` squares the condition
//! number, and a smooth series' lag columns are nearly collinear already.

use nalgebra::{DMatrix, DVector};

/// Singular values below this fraction of the largest count as zero (the
/// usual `rcond`: rank deficiency, not mere ill-conditioning, is refused).
const RCOND: f64 = 1e-12;

/// Ordinary least squares `y ≈ X β`; `None` when `X` is rank deficient
/// (constant or collinear columns), or the shapes disagree.
pub fn least_squares(rows: &[Vec<f64>], y: &[f64]) -> Option<Vec<f64>> {
    let k = rows.first()?.len();
    if k == 0 || rows.len() < k || rows.len() != y.len() || rows.iter().any(|r| r.len() != k) {
        return None;
    }
    let x = DMatrix::from_fn(rows.len(), k, |i, j| rows[i][j]);
    let svd = x.svd(true, true);
    let largest = svd.singular_values.max();
    if largest.is_nan() || largest <= 0.0 || svd.singular_values.min() <= largest * RCOND {
        return None;
    }
    let beta = svd
        .solve(&DVector::from_column_slice(y), largest * RCOND)
        .ok()?;
    beta.iter()
        .all(|b| b.is_finite())
        .then(|| beta.as_slice().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_recovers_a_plane_and_refuses_collinear_columns() {
        let rows: Vec<Vec<f64>> = (0..20)
            .map(|i| vec![1.0, i as f64, (i * i % 7) as f64])
            .collect();
        let y: Vec<f64> = rows.iter().map(|r| 2.0 + 0.5 * r[1] - 3.0 * r[2]).collect();
        let b = least_squares(&rows, &y).unwrap();
        for (got, want) in b.iter().zip([2.0, 0.5, -3.0]) {
            assert!((got - want).abs() < 1e-9, "{b:?}");
        }
        let collinear: Vec<Vec<f64>> = (0..10).map(|i| vec![1.0, 2.0, i as f64]).collect();
        assert!(least_squares(&collinear, &[1.0; 10]).is_none());
        assert!(least_squares(&[], &[]).is_none());
        assert!(
            least_squares(&rows[..2], &y[..2]).is_none(),
            "underdetermined"
        );
    }

    /// The solve this module replaced: normal equations by Gaussian
    /// elimination with partial pivoting, kept as the reference that fails.
    #[allow(clippy::needless_range_loop)]
    fn normal_equations(rows: &[Vec<f64>], y: &[f64]) -> Option<Vec<f64>> {
        let k = rows.first()?.len();
        let mut a = vec![vec![0.0; k]; k];
        let mut b = vec![0.0; k];
        for (row, &target) in rows.iter().zip(y) {
            for i in 0..k {
                b[i] += row[i] * target;
                for j in 0..k {
                    a[i][j] += row[i] * row[j];
                }
            }
        }
        let scale = a.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        for col in 0..k {
            let pivot = (col..k).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
            if a[pivot][col].abs() <= scale * 1e-12 {
                return None;
            }
            a.swap(col, pivot);
            b.swap(col, pivot);
            for row in col + 1..k {
                let f = a[row][col] / a[col][col];
                for c in col..k {
                    a[row][c] -= f * a[col][c];
                }
                b[row] -= f * b[col];
            }
        }
        let mut x = vec![0.0; k];
        for row in (0..k).rev() {
            let tail: f64 = (row + 1..k).map(|c| a[row][c] * x[c]).sum();
            x[row] = (b[row] - tail) / a[row][row];
        }
        Some(x)
    }

    /// An AR fit on a smooth series: three slow sinusoids plus a level obey
    /// an exact order-6 recurrence, so an AR(6) fit with intercept must
    /// predict the continuation almost exactly. The lag columns are nearly
    /// collinear (condition number ~1e7); squared, that is past what f64
    /// holds.
    #[test]
    fn ill_conditioned_ar_fit_keeps_its_digits() {
        let f = |t: f64| 5.0 + (0.02 * t).sin() + 0.5 * (0.05 * t).cos() + 0.2 * (0.11 * t).sin();
        let p = 6;
        let ys: Vec<f64> = (0..400).map(|t| f(t as f64)).collect();
        let (rows, targets) = crate::analytics::forecast::ar_design(&ys, p);
        // Forecast 50 steps with the fitted recurrence; the error against
        // the true continuation measures the digits the solve kept.
        let forecast_error = |beta: &[f64]| {
            let mut history = ys.clone();
            let mut worst = 0.0f64;
            for t in ys.len()..ys.len() + 50 {
                let next = beta[0] + (1..=p).map(|k| beta[k] * history[t - k]).sum::<f64>();
                worst = worst.max((next - f(t as f64)).abs());
                history.push(next);
            }
            worst
        };
        let svd = least_squares(&rows, targets).expect("full rank");
        let svd_error = forecast_error(&svd);
        assert!(svd_error < 1e-5, "SVD solve: forecast error {svd_error:e}");
        let old_error =
            normal_equations(&rows, targets).map_or(f64::INFINITY, |b| forecast_error(&b));
        assert!(
            old_error > 1e3 * svd_error,
            "the normal equations were expected to lose digits here: {old_error:e} vs {svd_error:e}"
        );
    }
}
