//! `/metrics`: the run so far as OpenMetrics text (prometheus-client's encoder over soak's
//! own plain data), with fixed histogram buckets so several soak processes add up.

use std::fmt;

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::metrics::ErrorKind;
use crate::metrics::snapshot::{Counters, IntervalSnapshot, MsgCounters, RunTotals, Tagged};
use crate::plan::Phase;
use crate::sampler::Reading;

/// Upper bounds of every histogram's buckets, seconds (then `+Inf`). The same in every
/// soak process, so `sum by (le)` over segments is exact; steps of 1.5–2× from 100 µs to
/// 2 minutes, so a quantile is known to within its bucket.
pub const BOUNDS: [f64; 31] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0,
    120.0,
];

/// One histogram as fixed buckets: counts per bucket (not cumulative), their sum in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// Values in each bucket of [`BOUNDS`] (the last entry is above the last bound).
    counts: [u64; BOUNDS.len() + 1],
    /// Sum of the values, s.
    sum: f64,
}

impl Buckets {
    /// Adds an HdrHistogram of µs: each recorded value goes to the bucket of its highest
    /// equivalent value (the value soak's percentiles report).
    pub fn add(&mut self, h: &Histogram<u64>) {
        for v in h.iter_recorded() {
            let n = v.count_at_value();
            let secs = v.value_iterated_to() as f64 / 1e6;
            let i = BOUNDS.partition_point(|b| *b < secs);
            self.counts[i] += n;
            self.sum += h.median_equivalent(v.value_iterated_to()) as f64 / 1e6 * n as f64;
        }
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(upper bound, count in that bucket alone)` for each bound, then `+Inf`: what
    /// prometheus-client's encoder takes (it writes them cumulative).
    pub fn per_bucket(&self) -> Vec<(f64, u64)> {
        BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts)
            .collect()
    }
}

/// One scenario message's figures.
#[derive(Debug, Clone, Default)]
struct Message {
    name: String,
    counters: MsgCounters,
    latency: Buckets,
    ttff: Buckets,
}

/// Everything `/metrics` says: counters and histograms added up interval by interval,
/// gauges as of the newest interval.
#[derive(Debug, Clone)]
pub struct Metrics {
    phase: Option<Phase>,
    ended: bool,
    elapsed_s: f64,
    planned_s: f64,
    intervals: u64,
    active_users: u64,
    open_connections: u64,
    counters: Counters,
    messages: Vec<Message>,
    fanout: Buckets,
    connect: Buckets,
    probe: Buckets,
    stalls: usize,
    stall_seconds: f64,
    tester_bound_s: f64,
    target: Option<Reading>,
    tester: Option<Reading>,
    slope_bytes_per_second: Option<f64>,
    leak_verdict: Option<&'static str>,
    lag_max_s: f64,
    dropped_samples: u64,
}

/// The phases the `soak_phase` gauge names (one is 1, the others 0).
const PHASES: [Phase; 6] = [
    Phase::Baseline,
    Phase::RampUp,
    Phase::Hold,
    Phase::RampDown,
    Phase::CoolDown,
    Phase::Done,
];

impl Metrics {
    /// Nothing measured yet, for a plan `planned_s` long with these scenario messages.
    pub fn new(planned_s: f64, messages: &[String]) -> Metrics {
        Metrics {
            phase: None,
            ended: false,
            elapsed_s: 0.0,
            planned_s,
            intervals: 0,
            active_users: 0,
            open_connections: 0,
            counters: Counters::default(),
            messages: messages
                .iter()
                .map(|name| Message {
                    name: name.clone(),
                    ..Message::default()
                })
                .collect(),
            fanout: Buckets::default(),
            connect: Buckets::default(),
            probe: Buckets::default(),
            stalls: 0,
            stall_seconds: 0.0,
            tester_bound_s: 0.0,
            target: None,
            tester: None,
            slope_bytes_per_second: None,
            leak_verdict: None,
            lag_max_s: 0.0,
            dropped_samples: 0,
        }
    }

    /// Adds one interval, and takes the run's gauges from its totals.
    pub fn add(&mut self, s: &IntervalSnapshot, t: &RunTotals) {
        self.intervals += 1;
        self.phase = Some(s.phase);
        self.elapsed_s = t.elapsed.as_secs_f64();
        self.active_users = s.active_users;
        self.open_connections = s.open_connections;
        self.counters += s.counters;
        for (m, stats) in self.messages.iter_mut().zip(&s.messages) {
            m.counters += stats.counters;
        }
        for Tagged { tag, histogram } in s.histograms.iter().chain(&s.timing) {
            let into = match tag.as_str() {
                "fanout" => Some(&mut self.fanout),
                "connect" => Some(&mut self.connect),
                "probe" => Some(&mut self.probe),
                _ => tag.rsplit_once('.').and_then(|(name, kind)| {
                    let m = self.messages.iter_mut().find(|m| m.name == name)?;
                    match kind {
                        "ttlf" => Some(&mut m.latency),
                        "ttff" => Some(&mut m.ttff),
                        _ => None,
                    }
                }),
            };
            if let Some(b) = into {
                b.add(histogram);
            }
        }
        self.stalls = t.stalls.iter().filter(|s| !s.tester_bound).count();
        self.stall_seconds = t
            .stalls
            .iter()
            .filter(|s| !s.tester_bound)
            .fold(0.0, |sum, s| sum + s.length_ms / 1000.0);
        self.tester_bound_s = t.tester_bound.as_secs_f64();
        if let Some(row) = s.readings.last() {
            self.target = row.target.or(self.target);
            self.tester = Some(row.tester);
        }
        if let Some(m) = &t.memory {
            self.slope_bytes_per_second = m.verdict.slope_mb_per_hour.map(|mb| mb * 1e6 / 3600.0);
            self.leak_verdict = Some(m.verdict.verdict);
        }
        self.lag_max_s = s.lag_max_ms / 1000.0;
        self.dropped_samples = t.dropped_samples;
    }

    /// The run has ended: the phase gauge says `ended`.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// The OpenMetrics text, with `profile` and `segment` labels on every sample.
    pub fn render(&self, profile: &str, segment: &str) -> String {
        let labels = [
            (String::from("profile"), profile.to_owned()),
            (String::from("segment"), segment.to_owned()),
        ];
        let mut registry = Registry::with_prefix_and_labels(
            "soak",
            labels.into_iter().map(|(k, v)| (k.into(), v.into())),
        );
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail, and no value here is out of range.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// Writes one unlabelled metric.
fn one<M: prometheus_client::encoding::EncodeMetric>(
    e: &mut DescriptorEncoder,
    (name, help, unit): (&str, &str, Option<&Unit>),
    metric: &M,
) -> fmt::Result {
    metric.encode(e.encode_descriptor(name, help, unit, metric.metric_type())?)
}

/// Writes a counter family with one label.
fn counters_by<'a>(
    e: &mut DescriptorEncoder,
    (name, help, label): (&str, &str, &str),
    values: impl Iterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let set = [(label, value)];
        ConstCounter::new(n).encode(family.encode_family(&set)?)?;
    }
    Ok(())
}

/// Writes a histogram family; `label` names each member, or `None` for one unlabelled.
fn histograms<'a>(
    e: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    label: Option<&str>,
    members: impl Iterator<Item = (&'a str, &'a Buckets)>,
) -> fmt::Result {
    let mut family =
        e.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (value, b) in members {
        let buckets = b.per_bucket();
        match label {
            Some(key) => {
                let set = [(key, value)];
                family.encode_family(&set)?.encode_histogram::<NoLabelSet>(
                    b.sum,
                    b.count(),
                    &buckets,
                    None,
                )?;
            }
            None => family.encode_histogram::<NoLabelSet>(b.sum, b.count(), &buckets, None)?,
        }
    }
    Ok(())
}

impl Collector for Metrics {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let c = &self.counters;
        let mut phase = e.encode_descriptor(
            "phase",
            "The run's phase: 1 for the current one (ended once the run is over).",
            None,
            MetricType::Gauge,
        )?;
        let now = if self.ended {
            "ended"
        } else {
            self.phase.map_or("starting", Phase::label)
        };
        for name in ["starting"]
            .into_iter()
            .chain(PHASES.iter().map(|p| p.label()))
            .chain(["ended"])
        {
            let set = [("phase", name)];
            ConstGauge::new(i64::from(name == now)).encode(phase.encode_family(&set)?)?;
        }
        let gauges: [(&str, &str, Option<&Unit>, f64); 6] = [
            (
                "elapsed",
                "Time since the run's start.",
                Some(&Unit::Seconds),
                self.elapsed_s,
            ),
            (
                "planned",
                "The plan's length.",
                Some(&Unit::Seconds),
                self.planned_s,
            ),
            (
                "active_users",
                "Users running.",
                None,
                self.active_users as f64,
            ),
            (
                "open_connections",
                "Connections open.",
                None,
                self.open_connections as f64,
            ),
            (
                "tester_lag_max",
                "soak's own worst timer lag in the last interval.",
                Some(&Unit::Seconds),
                self.lag_max_s,
            ),
            (
                "stalls",
                "Event-loop stalls of the target found so far (not those while soak itself was late).",
                None,
                self.stalls as f64,
            ),
        ];
        for (name, help, unit, v) in gauges {
            one(&mut e, (name, help, unit), &ConstGauge::new(v))?;
        }
        one(
            &mut e,
            (
                "stall_length",
                "The stalls' summed length.",
                Some(&Unit::Seconds),
            ),
            &ConstGauge::new(self.stall_seconds),
        )?;
        one(
            &mut e,
            (
                "tester_bound",
                "How long soak itself was late (its timers lagged).",
                Some(&Unit::Seconds),
            ),
            &ConstGauge::new(self.tester_bound_s),
        )?;
        let counts: [(&str, &str, u64); 9] = [
            ("intervals", "Intervals closed.", self.intervals),
            (
                "late_replies",
                "Replies after their request had timed out.",
                c.late,
            ),
            (
                "connect_attempts",
                "Connection attempts.",
                c.connect_attempts,
            ),
            ("connects", "Connections established.", c.connects),
            ("disconnects", "Connections ended.", c.disconnects),
            (
                "reconnects",
                "Connections of users connected before.",
                c.reconnects,
            ),
            (
                "pushes",
                "Frames the server pushed (matching a push rule).",
                c.push_total(),
            ),
            (
                "fanout_expected",
                "Room copies expected.",
                c.fanout.expected,
            ),
            (
                "dropped_samples",
                "Samples the aggregator never saw (its channel was full).",
                self.dropped_samples,
            ),
        ];
        for (name, help, n) in counts {
            one(&mut e, (name, help, None), &ConstCounter::new(n))?;
        }
        one(
            &mut e,
            ("fanout_delivered", "Room copies delivered in time.", None),
            &ConstCounter::new(c.fanout.delivered),
        )?;
        counters_by(
            &mut e,
            (
                "errors",
                "Errors by kind (as in summary.json's errors).",
                "kind",
            ),
            ErrorKind::ALL
                .iter()
                .map(|k| (k.label(), c.errors[k.index()])),
        )?;
        let names = || self.messages.iter().map(|m| m.name.as_str());
        for (name, help, pick) in [
            (
                "messages_sent",
                "Messages written, per scenario message.",
                0,
            ),
            (
                "replies_received",
                "Complete replies, per scenario message.",
                1,
            ),
            (
                "reply_timeouts",
                "Replies not complete in time, per scenario message.",
                2,
            ),
        ] {
            counters_by(
                &mut e,
                (name, help, "message"),
                names().zip(&self.messages).map(|(n, m)| {
                    let v = [m.counters.sent, m.counters.received, m.counters.timeouts];
                    (n, v[pick])
                }),
            )?;
        }
        histograms(
            &mut e,
            (
                "latency",
                "Time to the complete reply, from the intended send.",
            ),
            Some("message"),
            self.messages.iter().map(|m| (m.name.as_str(), &m.latency)),
        )?;
        histograms(
            &mut e,
            ("ttff", "Time to the first frame of a streamed reply."),
            Some("message"),
            self.messages.iter().map(|m| (m.name.as_str(), &m.ttff)),
        )?;
        for (name, help, b) in [
            (
                "fanout_latency",
                "Room copies: intended send to each member's copy.",
                &self.fanout,
            ),
            (
                "connect",
                "TCP connect and WebSocket handshake.",
                &self.connect,
            ),
            (
                "probe_rtt",
                "Probe round trips, from their intended sends.",
                &self.probe,
            ),
        ] {
            histograms(&mut e, (name, help), None, [("", b)].into_iter())?;
        }
        for (who, reading) in [("target", self.target), ("tester", self.tester)] {
            let Some(r) = reading else { continue };
            one(
                &mut e,
                (
                    &format!("{who}_resident_memory"),
                    "Resident memory (the target's whole process tree; soak itself).",
                    Some(&Unit::Bytes),
                ),
                &ConstGauge::new(r.rss_bytes as f64),
            )?;
            one(
                &mut e,
                (
                    &format!("{who}_cpu_usage_ratio"),
                    "CPU use, in cores (1 = one core busy).",
                    None,
                ),
                &ConstGauge::new(f64::from(r.cpu_pct) / 100.0),
            )?;
            one(
                &mut e,
                (&format!("{who}_open_fds"), "Open file descriptors.", None),
                &ConstGauge::new(f64::from(r.fds)),
            )?;
        }
        if let Some(slope) = self.slope_bytes_per_second {
            one(
                &mut e,
                (
                    "target_memory_slope_bytes_per_second",
                    "The target's fitted memory slope over the hold so far (Theil-Sen); ×3600 for bytes per hour.",
                    None,
                ),
                &ConstGauge::new(slope),
            )?;
        }
        if let Some(verdict) = self.leak_verdict {
            let mut v = e.encode_descriptor(
                "target_memory_verdict",
                "The provisional memory verdict: 1 for the current one.",
                None,
                MetricType::Gauge,
            )?;
            for name in crate::analysis::gates::VERDICTS {
                let set = [("verdict", name)];
                ConstGauge::new(i64::from(name == verdict)).encode(v.encode_family(&set)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::snapshot::new_histogram;

    #[test]
    fn buckets_are_cumulative_and_hold_every_value() {
        let mut h = new_histogram();
        for us in [50, 900, 1_000, 1_001, 4_000, 250_000_000] {
            h.record(us).unwrap();
        }
        let mut b = Buckets::default();
        b.add(&h);
        b.add(&h);
        let mut m = Metrics::new(1.0, &[]);
        m.connect = b.clone();
        let text = m.render("p", "s");
        // The written buckets, as Prometheus reads them.
        let c: Vec<(f64, u64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("soak_connect_seconds_bucket{"))
            .map(|l| {
                let le = l.split(",le=\"").nth(1).unwrap().split('"').next().unwrap();
                let n = l.rsplit(' ').next().unwrap().parse().unwrap();
                (
                    if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    },
                    n,
                )
            })
            .collect();
        assert_eq!(c.len(), BOUNDS.len() + 1);
        assert!(c.windows(2).all(|w| w[0].1 <= w[1].1), "{c:?}");
        assert!(
            text.contains("soak_connect_seconds_count{profile=\"p\",segment=\"s\"} 12"),
            "{text}"
        );
        let at = |bound: f64| c.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(at(0.0001), 2, "50 µs twice");
        assert_eq!(at(0.001), 6, "900 and 1,000 µs are ≤ 1 ms");
        assert_eq!(at(0.002), 8, "1,001 µs is above 1 ms");
        assert_eq!(at(120.0), 10, "250 s is above the last bound");
        assert_eq!(c.last().unwrap(), &(f64::INFINITY, 12));
        assert_eq!(b.count(), 12);
        assert!((b.sum - 2.0 * 250.006_951).abs() < 0.5, "{}", b.sum);
    }

    #[test]
    fn the_text_names_follow_prometheus_conventions() {
        let mut m = Metrics::new(60.0, &[String::from("chat \"x\"")]);
        let totals = RunTotals {
            elapsed: std::time::Duration::from_secs(3),
            ..Default::default()
        };
        let mut h = new_histogram();
        h.record(2_000).unwrap();
        let mut s = IntervalSnapshot::empty(std::time::Duration::from_secs(3));
        s.messages[0].counters.sent = 5;
        s.histograms.push(Tagged {
            tag: String::from("chat \"x\".ttlf"),
            histogram: h,
        });
        m.add(&s, &totals);
        let text = m.render("smoke", "seg1of1");
        assert!(text.ends_with("# EOF\n"), "{text}");
        for line in [
            "# TYPE soak_messages_sent counter",
            "soak_messages_sent_total{profile=\"smoke\",segment=\"seg1of1\",message=\"chat \\\"x\\\"\"} 5",
            "# UNIT soak_latency_seconds seconds",
            "soak_latency_seconds_bucket{",
            "message=\"chat \\\"x\\\"\"",
            "soak_phase{profile=\"smoke\",segment=\"seg1of1\",phase=\"hold\"} 1",
            "soak_errors_total{profile=\"smoke\",segment=\"seg1of1\",kind=\"timeout\"} 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        m.end();
        assert!(m.render("smoke", "seg1of1").contains("phase=\"ended\"} 1"));
    }

    /// The Grafana dashboard in the repository asks only for metrics soak serves (with
    /// every optional family present: a sampled target with a fitted slope).
    #[test]
    fn the_grafana_dashboard_queries_only_served_metrics() {
        let mut m = Metrics::new(60.0, &[String::from("message")]);
        m.target = Some(Reading::default());
        m.tester = Some(Reading::default());
        m.slope_bytes_per_second = Some(1.0);
        m.leak_verdict = Some("none");
        let text = m.render("smoke", "seg0of1");
        let served: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let json = include_str!("../../deploy/grafana/soak-dashboard.json");
        let dashboard: serde_json::Value = serde_json::from_str(json).unwrap();
        let mut asked = Vec::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("soak_") {
                        assert!(
                            served.contains(&word),
                            "the dashboard asks for {word}: {expr}"
                        );
                        asked.push(word.to_owned());
                    }
                }
            }
        }
        for family in [
            "soak_latency_seconds_bucket",
            "soak_errors_total",
            "soak_phase",
        ] {
            assert!(asked.iter().any(|a| a == family), "{family} is charted");
        }
        assert!(
            asked
                .iter()
                .any(|a| a.starts_with("soak_target_memory_slope"))
        );
        assert!(asked.iter().any(|a| a == "soak_stalls"));
    }
}
