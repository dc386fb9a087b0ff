//! Segments: slice I of N of one plan, so that N soak processes together run exactly the
//! plan one process would (users, probes and the connect-rate cap divided; user numbers,
//! ids, CSV rows and rooms stay those of the one big run).

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::profile::resolve::{RunConfig, Target, TargetProcess};

/// Which slice of the plan this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// 0-based.
    pub index: u32,
    /// Segments in all (1: the whole plan).
    pub count: u32,
}

/// Most segments one plan is cut into.
pub const MAX_SEGMENTS: u32 = 1024;

impl Segment {
    /// The whole plan in one process.
    pub const WHOLE: Segment = Segment { index: 0, count: 1 };

    /// `I/N`, e.g. `0/4` … `3/4`.
    pub fn parse(text: &str) -> Result<Segment, String> {
        let bad = || format!("`{text}`: expected I/N with 0 <= I < N <= {MAX_SEGMENTS}, e.g. 0/4");
        let (i, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let index = i.trim().parse::<u32>().map_err(|_| bad())?;
        let count = n.trim().parse::<u32>().map_err(|_| bad())?;
        Segment::new(index, count).ok_or_else(bad)
    }

    /// Segment `index` of `count`, when that is one.
    pub fn new(index: u32, count: u32) -> Option<Segment> {
        ((1..=MAX_SEGMENTS).contains(&count) && index < count).then_some(Segment { index, count })
    }

    /// Whether this is the whole plan.
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// Whether user `user` (its number in the whole plan) runs here. Users are dealt out
    /// round-robin, so each segment ramps over the whole ramp; with rooms, whole rooms
    /// (`room_size` users each) are dealt out, so a room's fan-out is seen by one process.
    pub fn owns_user(self, user: u32, room_size: u32) -> bool {
        let unit = if room_size > 1 {
            user / room_size
        } else {
            user
        };
        unit % self.count == self.index
    }

    /// Whether probe connection `k` runs here.
    pub fn owns_probe(self, k: u32) -> bool {
        k % self.count == self.index
    }

    /// This segment's share of a rate the whole plan has (the connect-rate cap).
    pub fn share(self, per_second: f64) -> f64 {
        per_second / f64::from(self.count)
    }

    /// `seg1of4`, for folder names.
    pub fn label(self) -> String {
        format!("seg{}of{}", self.index, self.count)
    }
}

/// When the run starts: `--start-at RFC3339` or `+DUR` from now.
pub fn start_at(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let text = text.trim();
    if let Some(after) = text.strip_prefix('+') {
        let d = humantime::parse_duration(after)
            .map_err(|e| format!("`{text}`: +DURATION expected (+30s, +2m): {e}"))?;
        return Ok(now + d);
    }
    humantime::parse_rfc3339_weak(text).map_err(|e| {
        format!("`{text}`: an RFC 3339 time (2026-12-01T02:00:00Z) or +DURATION expected: {e}")
    })
}

/// How to meet the shared start: wait this long, or (when it has passed) join the plan
/// this far into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meet {
    /// The start is ahead: sleep until it.
    Wait(Duration),
    /// The start has passed: the plan is already this far along.
    Late(Duration),
}

/// How `now` meets the shared start `at`.
pub fn meet(at: SystemTime, now: SystemTime) -> Meet {
    match at.duration_since(now) {
        Ok(ahead) => Meet::Wait(ahead),
        Err(passed) => Meet::Late(passed.duration()),
    }
}

/// The segment the flags name: `--segment I/N`, or `--segments N` with the index from
/// `JOB_COMPLETION_INDEX` (`index`, as the environment has it); the whole plan otherwise.
pub fn chosen(
    segment: Option<Segment>,
    segments: Option<u32>,
    index: Option<&str>,
) -> Result<Segment, String> {
    match (segment, segments) {
        (Some(s), _) => Ok(s),
        (None, Some(n)) => {
            let text = index.ok_or_else(|| {
                format!("--segments {n} takes its index from JOB_COMPLETION_INDEX (set by Kubernetes Indexed Jobs), which is not set; give --segment I/{n} instead")
            })?;
            let i = text
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("JOB_COMPLETION_INDEX is `{text}`, not a segment index"))?;
            Segment::new(i, n).ok_or_else(|| {
                format!("segment {i} of --segments {n}: expected 1 <= N <= {MAX_SEGMENTS} and an index below N")
            })
        }
        (None, None) => Ok(Segment::WHOLE),
    }
}

/// The run config of segment `segment`: its share of the connect-rate cap, and no target
/// sampling unless it is the segment `sampler` (the plan's timing, baseline and cool-down
/// included, stays the whole plan's, so every segment keeps the same clock).
pub fn apply(config: &mut RunConfig, segment: Segment, sampler: u32) -> Result<(), String> {
    if segment.is_whole() {
        return Ok(());
    }
    if sampler >= segment.count {
        return Err(format!(
            "--sample-target {sampler}: there are only {} segments (0 to {})",
            segment.count,
            segment.count - 1
        ));
    }
    if !matches!(config.target, Target::Url(_)) {
        return Err("segments need --url: each would otherwise start a demo target or mock of its own, and their numbers would not be one run's".into());
    }
    if matches!(config.process.target, TargetProcess::Cmd(_)) {
        return Err("segments cannot start the target (--target-cmd): start it once, then point every segment at it with --url and --target-pid/--target-name in the sampling segment".into());
    }
    config.segment = segment;
    config.connect_rate.per_second = segment.share(config.connect_rate.per_second);
    if segment.index != sampler {
        config.process.target = TargetProcess::None;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
