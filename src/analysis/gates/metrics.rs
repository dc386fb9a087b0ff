//! The metrics a gate may name: each one's kind of value and where it is in `summary.json`.

/// A metric: its name, what it measures, the kind of value, and where it is in the summary.
pub(super) struct Metric {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    /// Pointer in the summary (for `phase=hold`, `/run/` becomes `/hold/`).
    pub(super) pointer: &'static str,
    /// Pointer inside a `messages[]` entry for `message=NAME`, when it makes sense.
    pub(super) per_message: Option<&'static str>,
    /// Only grows during a run (a count, the run's maximum): once past an upper bound, the
    /// gate can never pass again, so `--abort-on-fail` may end the run at once.
    pub(super) grows: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Milliseconds (units ms, s, m, h).
    Millis,
    /// A ratio 0..1 (unit %).
    Ratio,
    /// A plain count or number (unit MB allowed for memory figures).
    Number,
    /// A verdict word.
    Verdict,
}

pub(super) const METRICS: &[Metric] = &[
    lat("p50", "/latency_ms/run/p50", "/latency_ms/p50"),
    lat("p90", "/latency_ms/run/p90", "/latency_ms/p90"),
    lat("p95", "/latency_ms/run/p95", "/latency_ms/p95"),
    lat("p99", "/latency_ms/run/p99", "/latency_ms/p99"),
    lat("p99_9", "/latency_ms/run/p99_9", "/latency_ms/p99_9"),
    lat("max", "/latency_ms/run/max", "/latency_ms/max"),
    lat("mean", "/latency_ms/run/mean", "/latency_ms/mean"),
    lat("ttlf_p50", "/latency_ms/run/p50", "/latency_ms/p50"),
    lat("ttlf_p95", "/latency_ms/run/p95", "/latency_ms/p95"),
    lat("ttlf_p99", "/latency_ms/run/p99", "/latency_ms/p99"),
    lat("ttff_p50", "/ttff_ms/run/p50", "/ttff_ms/p50"),
    lat("ttff_p95", "/ttff_ms/run/p95", "/ttff_ms/p95"),
    lat("ttff_p99", "/ttff_ms/run/p99", "/ttff_ms/p99"),
    Metric {
        name: "connect_p99",
        kind: Kind::Millis,
        pointer: "/connect_time_ms/p99",
        grows: false,
        per_message: None,
    },
    fanout("fanout_p50", "/fanout/fanout_ms/p50"),
    fanout("fanout_p95", "/fanout/fanout_ms/p95"),
    fanout("fanout_p99", "/fanout/fanout_ms/p99"),
    fanout("first_member_p99", "/fanout/first_member_ms/p99"),
    fanout("last_member_p50", "/fanout/last_member_ms/p50"),
    fanout("last_member_p95", "/fanout/last_member_ms/p95"),
    fanout("last_member_p99", "/fanout/last_member_ms/p99"),
    Metric {
        name: "reach",
        kind: Kind::Ratio,
        pointer: "/fanout/reach",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "lost",
        kind: Kind::Number,
        pointer: "/fanout/lost",
        grows: true,
        per_message: None,
    },
    Metric {
        name: "join_p99",
        kind: Kind::Millis,
        pointer: "/join_time_ms/p99",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "join_failed",
        kind: Kind::Number,
        pointer: "/errors/join_failed",
        grows: true,
        per_message: None,
    },
    Metric {
        name: "heartbeat_late_p99",
        kind: Kind::Millis,
        pointer: "/socketio/heartbeat_late_ms/p99",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "probe_p99",
        kind: Kind::Millis,
        pointer: "/probes/rtt_ms/p99",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "error_rate",
        kind: Kind::Ratio,
        pointer: "/totals/error_ratio",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "connect_success",
        kind: Kind::Ratio,
        pointer: "/connects/success_ratio",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "errors",
        kind: Kind::Number,
        pointer: "/totals/errors",
        grows: true,
        per_message: None,
    },
    Metric {
        name: "timeouts",
        kind: Kind::Number,
        pointer: "/errors/timeout",
        grows: true,
        per_message: Some("/timeouts"),
    },
    Metric {
        name: "received",
        kind: Kind::Number,
        pointer: "/totals/received",
        grows: true,
        per_message: Some("/received"),
    },
    Metric {
        name: "stalls",
        kind: Kind::Number,
        pointer: "/stalls/count",
        grows: true,
        per_message: None,
    },
    Metric {
        name: "stall_longest",
        kind: Kind::Millis,
        pointer: "/stalls/longest_ms",
        grows: true,
        per_message: None,
    },
    Metric {
        name: "tester_bound",
        kind: Kind::Ratio,
        pointer: "/tester/tester_bound_ratio",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "memory",
        kind: Kind::Verdict,
        pointer: "/memory/verdict",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "leak",
        kind: Kind::Verdict,
        pointer: "/memory/verdict",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "slope_mb_h",
        kind: Kind::Number,
        pointer: "/memory/slope_mb_per_hour",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "leak_per_message_kb",
        kind: Kind::Number,
        pointer: "/memory/leak_per_message_kb",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "leak_per_connection_kb",
        kind: Kind::Number,
        pointer: "/memory/leak_per_connection_kb",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "retained_mb",
        kind: Kind::Number,
        pointer: "/memory/retained_mb",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "fd_growth",
        kind: Kind::Number,
        pointer: "/memory/fd_growth",
        grows: false,
        per_message: None,
    },
    Metric {
        name: "thread_growth",
        kind: Kind::Number,
        pointer: "/memory/thread_growth",
        grows: false,
        per_message: None,
    },
];

/// A fan-out latency (one histogram for the run: no per-message scope).
const fn fanout(name: &'static str, pointer: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Millis,
        pointer,
        grows: false,
        per_message: None,
    }
}

const fn lat(name: &'static str, pointer: &'static str, per_message: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Millis,
        pointer,
        // The run's maximum only grows; percentiles and means move both ways.
        grows: matches!(name.as_bytes(), b"max"),
        per_message: Some(per_message),
    }
}
