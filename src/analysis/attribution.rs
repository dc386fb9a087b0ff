//! What a leak is made of: the hold's block minima regressed on the run's cumulative
//! messages, connections opened and connections closed, and the one cause that explains the
//! growth best — "≈ 10.3 KiB retained per message" — or the plain statement that no single
//! cause does.
//!
//! Criterion (stated in the reason and the README): each cause whose count changes over the
//! blocks gets a least-squares line through the block minima (MB against the count). The
//! best is the positive line with the smallest residual; it is claimed when it explains at
//! least [`MIN_R2`] of the variance and every other positive line leaves at least
//! [`SEPARATION`] times its residual. Connections opened and closed differ by the users
//! connected, which a hold keeps steady, so whenever closed connections explain the growth
//! too (R² ≥ [`MIN_R2`]) they are one cause, named per *closed* connection: memory a
//! connection holds while open is not a leak; memory it keeps after closing is.

use serde::Serialize;

use crate::analysis::leak::block_minima_at;

/// Least share of the variance of the block minima the claimed cause must explain.
pub const MIN_R2: f64 = 0.8;
/// How many times the best line's residual every other cause's must be, to be told apart.
pub const SEPARATION: f64 = 2.0;

/// The run's cumulative work at one reading.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Work {
    /// Messages sent.
    pub messages: u64,
    /// Connections established (first connects and reconnects).
    pub opened: u64,
    /// Connections ended (by either side).
    pub closed: u64,
}

/// A cause: its name in `summary.json`, how a sentence says it, and its count.
type Cause = (&'static str, &'static str, fn(&Work) -> u64);

/// The causes, in the order they are fitted.
const CAUSES: [Cause; 3] = [
    ("message", "message", |w| w.messages),
    ("opened_connection", "connection opened", |w| w.opened),
    ("closed_connection", "closed connection", |w| w.closed),
];

/// One cause's line through the block minima.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fit {
    /// `message`, `opened_connection` or `closed_connection`.
    pub cause: &'static str,
    /// The slope: KiB retained per unit of the cause.
    pub kib_per_unit: f64,
    /// Its 95 % band, KiB.
    pub kib_ci: [f64; 2],
    /// Share of the variance of the block minima the line explains.
    pub r2: f64,
}

/// The attribution of a leak.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribution {
    /// The cause claimed (`message`, `opened_connection`, `closed_connection`), or `None`.
    pub cause: Option<&'static str>,
    /// KiB retained per unit of the claimed cause.
    pub kib_per_unit: Option<f64>,
    /// The claimed line's R².
    pub r2: Option<f64>,
    /// Why, in a sentence ("≈ 10.3 KiB retained per message (R² 0.99) …").
    pub reason: String,
    /// Every cause that could be fitted (its count changed during the hold).
    pub fits: Vec<Fit>,
}

impl Attribution {
    /// KiB retained per unit of `cause`: the claimed figure, 0 when another cause is
    /// claimed, and when none is, this cause's own line (as if all the growth were its).
    pub fn kib_per(&self, cause: &str) -> f64 {
        match (self.cause, self.kib_per_unit) {
            (Some(c), Some(kib)) if c == cause => kib,
            (Some(_), _) => 0.0,
            (None, _) => self
                .fits
                .iter()
                .find(|f| f.cause == cause)
                .map_or(0.0, |f| f.kib_per_unit.max(0.0)),
        }
    }
}

/// The attribution of growth in `hold` (seconds, MB) given the run's cumulative `work` at
/// each of those readings (same length).
pub fn attribute(hold: &[(f64, f64)], work: &[Work]) -> Attribution {
    let (blocks, _) = block_minima_at(hold);
    let y: Vec<f64> = blocks.iter().map(|b| b.1).collect();
    let mut fits: Vec<(Fit, f64)> = Vec::new();
    for (cause, _, count) in CAUSES {
        let x: Vec<f64> = blocks
            .iter()
            .map(|b| work.get(b.2).map_or(0.0, |w| count(w) as f64))
            .collect();
        if let Some(line) = Line::fit(&x, &y) {
            let kib = |mb: f64| round(mb * 1e6 / 1024.0);
            let fit = Fit {
                cause,
                kib_per_unit: kib(line.slope),
                kib_ci: [
                    kib(line.slope - line.half_band),
                    kib(line.slope + line.half_band),
                ],
                r2: round(line.r2),
            };
            fits.push((fit, line.residual));
        }
    }
    let (cause, reason) = choose(&fits);
    let claimed = cause.and_then(|c| fits.iter().find(|(f, _)| f.cause == c));
    Attribution {
        cause,
        kib_per_unit: claimed.map(|(f, _)| f.kib_per_unit),
        r2: claimed.map(|(f, _)| f.r2),
        reason,
        fits: fits.into_iter().map(|(f, _)| f).collect(),
    }
}

/// The cause claimed under the criterion of the module doc, and why.
fn choose(fits: &[(Fit, f64)]) -> (Option<&'static str>, String) {
    let rising: Vec<&(Fit, f64)> = fits.iter().filter(|(f, _)| f.kib_per_unit > 0.0).collect();
    let Some(best) = rising.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)) else {
        let why = if fits.is_empty() {
            "no cause to weigh: messages and connections were steady through the hold, so the growth is by time (timers, caches, logs)"
        } else {
            "no cause rose with the memory: it grew while what changed (messages, connections) did not explain it"
        };
        return (None, why.into());
    };
    if best.0.r2 < MIN_R2 {
        return (
            None,
            format!(
                "no single cause explains the growth: the best, per {}, explains {:.0} % of it (R² {:.2}; {:.0} % is needed)",
                label(best.0.cause),
                best.0.r2 * 100.0,
                best.0.r2,
                MIN_R2 * 100.0
            ),
        );
    }
    let close: Vec<&'static str> = rising
        .iter()
        .filter(|(f, residual)| f.cause != best.0.cause && *residual < SEPARATION * best.1)
        .map(|(f, _)| f.cause)
        .collect();
    let connection = |c: &str| c.ends_with("_connection");
    let mixed =
        !close.is_empty() && (!connection(best.0.cause) || close.iter().any(|c| !connection(c)));
    // Opened and closed connections differ by the users connected: when closed ones explain
    // the growth too, that is the leak (memory an open connection holds is not one).
    let closed_fits = rising
        .iter()
        .any(|(f, _)| f.cause == "closed_connection" && f.r2 >= MIN_R2);
    let claimed = if !mixed && connection(best.0.cause) && closed_fits {
        "closed_connection"
    } else if !mixed {
        best.0.cause
    } else {
        let mut together: Vec<&str> = close.iter().map(|c| label(c)).collect();
        together.insert(0, label(best.0.cause));
        return (
            None,
            format!(
                "no single cause: the growth fits {} about as well (residuals within {SEPARATION}×), because they grew together in this run; the leak-hunt profile separates them",
                together.join(" and ")
            ),
        );
    };
    let Some((fit, _)) = fits.iter().find(|(f, _)| f.cause == claimed) else {
        return (None, String::new());
    };
    let runner_up = rising
        .iter()
        .filter(|(f, _)| !connection(f.cause) || !connection(claimed))
        .filter(|(f, _)| f.cause != claimed)
        .map(|(f, residual)| (f.cause, residual / best.1.max(f64::MIN_POSITIVE)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let against = match runner_up {
        Some((other, ratio)) => format!(
            "; per {} leaves {} the residual",
            label(other),
            if ratio > 1000.0 {
                "over 1000×".to_string()
            } else {
                format!("{ratio:.0}×")
            }
        ),
        None => String::from("; nothing else changed during the hold"),
    };
    let merged = if claimed == "closed_connection" && best.0.cause != claimed || !close.is_empty() {
        "; connections opened moved with them (the users stayed connected), so they are one cause"
    } else {
        ""
    };
    let against = match runner_up {
        Some(_) => format!("{merged}{against}"),
        None if !merged.is_empty() => merged.to_string(),
        None => against,
    };
    (
        Some(claimed),
        format!(
            "≈ {} retained per {} (R² {:.2}{against})",
            show_kib(fit.kib_per_unit),
            label(claimed),
            fit.r2
        ),
    )
}

/// How a cause reads in a sentence.
fn label(cause: &str) -> &'static str {
    CAUSES
        .iter()
        .find(|(c, _, _)| *c == cause)
        .map_or("cause", |(_, l, _)| l)
}

/// KiB as people read it: `10.3 KiB`, `300 KiB`, `1.2 MiB`.
pub fn show_kib(kib: f64) -> String {
    if kib >= 1024.0 {
        format!("{:.1} MiB", kib / 1024.0)
    } else if kib >= 100.0 {
        format!("{kib:.0} KiB")
    } else if kib >= 1.0 {
        format!("{kib:.1} KiB")
    } else {
        format!("{:.0} bytes", kib * 1024.0)
    }
}

/// A least-squares line.
struct Line {
    slope: f64,
    /// Half the 95 % band of the slope.
    half_band: f64,
    r2: f64,
    /// Residual sum of squares.
    residual: f64,
}

impl Line {
    /// The line of `y` on `x`; `None` when `x` takes fewer than three values (nothing to
    /// fit) or `y` does not vary.
    fn fit(x: &[f64], y: &[f64]) -> Option<Line> {
        let n = x.len().min(y.len());
        let mut distinct: Vec<f64> = x[..n].to_vec();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        if distinct.len() < 3 {
            return None;
        }
        let nf = n as f64;
        let mx = x[..n].iter().sum::<f64>() / nf;
        let my = y[..n].iter().sum::<f64>() / nf;
        let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
        for (xi, yi) in x.iter().zip(y) {
            sxx += (xi - mx) * (xi - mx);
            sxy += (xi - mx) * (yi - my);
            syy += (yi - my) * (yi - my);
        }
        if sxx <= 0.0 || syy <= 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        let residual = (syy - slope * sxy).max(0.0);
        let se = (residual / (nf - 2.0) / sxx).sqrt();
        Some(Line {
            slope,
            half_band: t975(n - 2) * se,
            r2: (1.0 - residual / syy).clamp(0.0, 1.0),
            residual,
        })
    }
}

/// Student's t, 97.5 % quantile, for `dof` degrees of freedom (1.96 past 30).
fn t975(dof: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.71, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    TABLE.get(dof.max(1) - 1).copied().unwrap_or(1.96)
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 60 readings a second apart (2 a block) with MB = 100 + `mb(i)` and work `work(i)`.
    fn run(mb: impl Fn(u64) -> f64, work: impl Fn(u64) -> Work) -> Attribution {
        let hold: Vec<(f64, f64)> = (0..60u64).map(|i| (i as f64, 100.0 + mb(i))).collect();
        let work: Vec<Work> = (0..60u64).map(work).collect();
        attribute(&hold, &work)
    }

    /// A small deterministic wobble (±0.05 MB), like a sawtooth heap.
    fn wobble(i: u64) -> f64 {
        ((i * 7919) % 11) as f64 / 100.0 - 0.05
    }

    #[test]
    fn growth_with_messages_and_steady_connections_is_per_message() {
        // 100 messages a second, 10 KiB each kept; 10 connections opened once, none closed.
        let a = run(
            |i| i as f64 * 100.0 * 10.0 * 1024.0 / 1e6 + wobble(i),
            |i| Work {
                messages: i * 100,
                opened: 10,
                closed: 0,
            },
        );
        assert_eq!(a.cause, Some("message"), "{a:?}");
        let kib = a.kib_per_unit.unwrap();
        assert!((kib - 10.0).abs() < 0.5, "{kib}");
        assert!(
            a.reason.starts_with("≈ 10.0 KiB retained per message"),
            "{}",
            a.reason
        );
        assert_eq!(a.kib_per("message"), kib);
        assert_eq!(a.kib_per("closed_connection"), 0.0);
    }

    #[test]
    fn churn_without_messages_is_per_closed_connection_even_as_opened_moves_with_it() {
        // 5 connections closed (and 5 opened) a second, 300 KiB kept by each closed one.
        let a = run(
            |i| i as f64 * 5.0 * 300.0 * 1024.0 / 1e6 + wobble(i),
            |i| Work {
                messages: 0,
                opened: 10 + i * 5,
                closed: i * 5,
            },
        );
        assert_eq!(a.cause, Some("closed_connection"), "{a:?}");
        assert!((a.kib_per_unit.unwrap() - 300.0).abs() < 10.0, "{a:?}");
        assert_eq!(a.fits.len(), 2, "messages did not change: not fitted");
    }

    #[test]
    fn opened_fitting_a_shade_better_than_closed_is_still_per_closed_connection() {
        // Memory follows connections opened exactly; closed ones lag by a connection now
        // and then (a close counted a moment late), so opened leaves less residual.
        let a = run(
            |i| (10 + i * 5) as f64 * 100.0 * 1024.0 / 1e6,
            |i| Work {
                messages: 0,
                opened: 10 + i * 5,
                closed: (i * 5).saturating_sub(i % 3),
            },
        );
        let band = |cause: &str| {
            let f = a.fits.iter().find(|f| f.cause == cause).unwrap();
            f.kib_ci[1] - f.kib_ci[0]
        };
        assert!(
            band("opened_connection") < band("closed_connection"),
            "{a:?}"
        );
        assert_eq!(a.cause, Some("closed_connection"), "{a:?}");
        assert!(a.reason.contains("one cause"), "{}", a.reason);
    }

    #[test]
    fn alternating_talk_and_churn_separates_the_causes() {
        // 10 s of messages, then 10 s of churn, and so on; the leak follows the messages.
        let talking = |i: u64| (i / 10).is_multiple_of(2);
        let work = |i: u64| {
            let (mut m, mut c) = (0, 0);
            for j in 0..i {
                if talking(j) {
                    m += 100;
                } else {
                    c += 5;
                }
            }
            Work {
                messages: m,
                opened: 10 + c,
                closed: c,
            }
        };
        let a = run(|i| work(i).messages as f64 * 0.01 + wobble(i), work);
        assert_eq!(a.cause, Some("message"), "{a:?}");
        let b = run(|i| work(i).closed as f64 * 0.3 + wobble(i), work);
        assert_eq!(b.cause, Some("closed_connection"), "{b:?}");
    }

    #[test]
    fn messages_and_churn_growing_together_are_not_told_apart() {
        let a = run(
            |i| i as f64 * 0.5 + wobble(i),
            |i| Work {
                messages: i * 100,
                opened: 10 + i * 5,
                closed: i * 5,
            },
        );
        assert_eq!(a.cause, None, "{a:?}");
        assert!(a.reason.contains("grew together"), "{}", a.reason);
        // Unclaimed: each cause's own line, as if all the growth were its.
        let as_if = a.fits.iter().find(|f| f.cause == "message").unwrap();
        assert_eq!(a.kib_per("message"), as_if.kib_per_unit);
    }

    #[test]
    fn growth_by_time_alone_names_no_cause() {
        let a = run(
            |i| i as f64 * 0.5,
            |_| Work {
                messages: 0,
                opened: 10,
                closed: 0,
            },
        );
        assert_eq!(a.cause, None);
        assert!(a.fits.is_empty());
        assert!(a.reason.contains("by time"), "{}", a.reason);
    }

    #[test]
    fn a_poor_fit_is_not_claimed() {
        // Memory jumps around; messages grow steadily.
        let a = run(
            |i| ((i * 7919) % 13) as f64,
            |i| Work {
                messages: i * 100,
                opened: 10,
                closed: 0,
            },
        );
        assert_eq!(a.cause, None, "{a:?}");
    }

    #[test]
    fn kib_reads_well() {
        assert_eq!(show_kib(10.33), "10.3 KiB");
        assert_eq!(show_kib(300.2), "300 KiB");
        assert_eq!(show_kib(2048.0), "2.0 MiB");
        assert_eq!(show_kib(0.5), "512 bytes");
    }
}
