//! The statistics behind the memory verdict: Theil–Sen slope with Sen's band, Mann–Kendall
//! with the Hamed & Rao autocorrelation correction, and a t-test on block-to-block steps.

/// Theil–Sen slope with Sen's 95 % band: (slope, low, high). `inflation` scales the
/// variance of Mann–Kendall's S behind the band (1 for independent readings).
pub fn theil_sen(points: &[(f64, f64)], inflation: f64) -> (f64, f64, f64) {
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.0 != a.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    if slopes.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    slopes.sort_by(f64::total_cmp);
    let n = points.len() as f64;
    let m = slopes.len() as f64;
    let c = 1.96 * (inflation * n * (n - 1.0) * (2.0 * n + 5.0) / 18.0).sqrt();
    let lo = (((m - c) / 2.0).floor().max(0.0) as usize).min(slopes.len() - 1);
    let hi = (((m + c) / 2.0).ceil() as usize).min(slopes.len() - 1);
    (median_sorted(&slopes), slopes[lo], slopes[hi])
}

/// One-sided p-value that the block-to-block steps grow on average (a t-test on the first
/// differences). Under a random walk with no drift the steps average zero however far the
/// walk wandered, so this is what keeps a wandering series from being called a leak; a
/// leak adds the same growth to every step.
pub fn growth_of_steps_p(points: &[(f64, f64)]) -> f64 {
    let steps: Vec<f64> = points.windows(2).map(|w| w[1].1 - w[0].1).collect();
    if steps.len() < 3 {
        return 1.0;
    }
    let k = steps.len() as f64;
    let mean = steps.iter().sum::<f64>() / k;
    let var = steps.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (k - 1.0);
    if var <= 0.0 {
        return if mean > 0.0 { 0.0 } else { 1.0 };
    }
    1.0 - normal_cdf(mean / (var / k).sqrt())
}

/// Two-sided p-value of Mann–Kendall's trend test, with the variance of S corrected for
/// autocorrelation of the series detrended by `slope` (Hamed & Rao, 1998); and the factor
/// by which that correction inflated the variance.
pub fn mann_kendall(points: &[(f64, f64)], slope: f64) -> (f64, f64) {
    let n = points.len();
    if n < 3 {
        return (1.0, 1.0);
    }
    let mut s = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            s += (points[j].1 - points[i].1).signum();
        }
    }
    let nf = n as f64;
    let mut var = nf * (nf - 1.0) * (2.0 * nf + 5.0) / 18.0;
    let mut inflation = 1.0;
    // Ranks of the detrended series, and their significant autocorrelations.
    let detrended: Vec<f64> = points.iter().map(|(t, v)| v - slope * t).collect();
    let ranks = ranks(&detrended);
    let mean = ranks.iter().sum::<f64>() / nf;
    let denom: f64 = ranks.iter().map(|r| (r - mean).powi(2)).sum();
    if denom > 0.0 {
        let bound = 1.96 / nf.sqrt();
        let mut sum = 0.0;
        for k in 1..n - 2 {
            let rho = (0..n - k)
                .map(|i| (ranks[i] - mean) * (ranks[i + k] - mean))
                .sum::<f64>()
                / denom;
            if rho.abs() > bound {
                let nk = (n - k) as f64;
                sum += nk * (nk - 1.0) * (nk - 2.0) * rho;
            }
        }
        let factor = 1.0 + 2.0 / (nf * (nf - 1.0) * (nf - 2.0)) * sum;
        inflation = factor.max(1.0);
        var *= inflation;
    }
    let z = if s > 0.0 {
        (s - 1.0) / var.sqrt()
    } else if s < 0.0 {
        (s + 1.0) / var.sqrt()
    } else {
        0.0
    };
    (2.0 * (1.0 - normal_cdf(z.abs())), inflation)
}

fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    for (rank, &i) in order.iter().enumerate() {
        ranks[i] = rank as f64 + 1.0;
    }
    ranks
}

/// Standard normal CDF (Abramowitz & Stegun 7.1.26, error below 1.5e-7).
pub(super) fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

pub(super) fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(median_sorted(&v))
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
