//! `soak merge`: the run folders of one plan's segments into one ordinary run folder, by
//! adding their run data (histograms merged, never averaged; counters summed).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use serde_json::Value;

use crate::analysis::totals::{self, Basis};
use crate::error::{Outcome, SoakError, could_not_run, usage};
use crate::metrics::run_data::{RunData, file};
use crate::metrics::snapshot::{LatencyStats, new_histogram};
use crate::plan::Plan;
use crate::profile::resolve::RunConfig;
use crate::profile::{Loaded, ProfileSpec, resolve};
use crate::report::summary::{self, Status};

/// One segment's folder, read.
struct Part {
    dir: PathBuf,
    summary: Value,
    data: RunData,
    index: u32,
    count: u32,
}

impl Part {
    fn read(dir: &Path) -> Result<Part, SoakError> {
        let bad = |what: String| usage(format!("{}: {what}", dir.display()));
        let text =
            crate::files::read_text(&dir.join("summary.json"), crate::files::MAX_SUMMARY_BYTES)
                .map_err(|e| bad(format!("{e} (is this a soak run folder?)")))?;
        let summary: Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("summary.json: {e}")))?;
        let version = summary.pointer("/tool/version").and_then(Value::as_str);
        if version != Some(env!("CARGO_PKG_VERSION")) {
            return Err(bad(format!(
                "written by soak {}, this is soak {}: merge segments with the soak that ran them",
                version.unwrap_or("?"),
                env!("CARGO_PKG_VERSION")
            )));
        }
        let text =
            crate::files::read_text(&dir.join("run-data.json"), crate::files::MAX_SUMMARY_BYTES)
                .map_err(|e| bad(format!("{e} (a run that did not end writes none)")))?;
        let data = file::from_json(&text).map_err(|e| bad(format!("run-data.json: {e}")))?;
        let field = |name: &str| {
            summary
                .pointer(&format!("/run/segment/{name}"))
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        let (Some(index), Some(count)) = (field("index"), field("count")) else {
            return Err(bad("not a segment's folder (its summary has no run.segment; run segments with --segment I/N)".into()));
        };
        Ok(Part {
            dir: dir.to_path_buf(),
            summary,
            data,
            index,
            count,
        })
    }

    fn ended_early(&self) -> bool {
        self.summary.pointer("/run/status").and_then(Value::as_str) != Some("completed")
    }
}

/// `soak merge DIR... --out DIR`: checks the folders are exactly the segments of one plan,
/// adds them and writes one run folder; its gates decide the exit code.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Outcome, SoakError> {
    let mut parts = expand(dirs)?
        .iter()
        .map(|d| Part::read(d))
        .collect::<Result<Vec<_>, _>>()?;
    check(&mut parts)?;
    let data = added(&parts)?;
    let (name, config) = config_of(&parts[0])?;
    let started_at = parts
        .iter()
        .filter_map(|p| p.summary.pointer("/run/started_at").and_then(Value::as_str))
        .filter_map(|t| humantime::parse_rfc3339_weak(t).ok())
        .min()
        .unwrap_or_else(SystemTime::now);
    // Everything read and checked before the folder exists: a refusal writes nothing.
    let series = parts
        .iter()
        .map(|p| Series::read(p, started_at, config.interval))
        .collect::<Result<Vec<_>, _>>()?;
    let hlog = merged_hlog(&parts, &series)?;
    let timeseries = merged_timeseries(&series, &hlog)?;
    let dir = folder(out, &name, started_at)?;
    let v = merged_summary(&parts, &data, &config, (&dir, started_at))?;
    let fail =
        |e: std::io::Error| could_not_run(format!("cannot write into {}: {e}", dir.display()));
    write_hlog(&dir.join("latency.hlog"), started_at, &hlog).map_err(fail)?;
    fs::write(dir.join("timeseries.csv"), timeseries).map_err(fail)?;
    fs::write(dir.join("events.jsonl"), merged_events(&parts)).map_err(fail)?;
    if let Some(p) = sampler(&parts) {
        let _ = fs::copy(p.dir.join("memory.csv"), dir.join("memory.csv"));
    }
    fs::write(dir.join("run-data.json"), file::to_json(&data)).map_err(fail)?;
    let pretty = serde_json::to_vec_pretty(&v).map_err(|e| could_not_run(e.to_string()))?;
    fs::write(dir.join("summary.json"), pretty).map_err(fail)?;
    crate::report::write_reports(&dir, &v).map_err(fail)?;
    let result = v
        .pointer("/verdict/result")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    println!(
        "soak: merged {} segments into {} (verdict: {result})",
        parts.len(),
        dir.display()
    );
    Ok(if result == "fail" {
        Outcome::GateFailed
    } else {
        Outcome::Passed
    })
}

/// The segments' run data added, in index order; their stall rules must agree.
fn added(parts: &[Part]) -> Result<RunData, SoakError> {
    let first = &parts[0];
    let mut data = first.data.clone();
    for p in &parts[1..] {
        if p.data.bins.rule() != data.bins.rule() {
            return Err(usage(format!(
                "{}: its stall rule differs from {}'s",
                p.dir.display(),
                first.dir.display()
            )));
        }
        data += &p.data;
    }
    Ok(data)
}

/// The plan's profile name and run config, re-resolved from a segment's effective config.
fn config_of(first: &Part) -> Result<(String, RunConfig), SoakError> {
    let spec: ProfileSpec =
        serde_json::from_value(first.summary["config"].clone()).map_err(|e| {
            usage(format!(
                "{}: its config does not read back: {e}",
                first.dir.display()
            ))
        })?;
    let name = first
        .summary
        .pointer("/run/profile")
        .and_then(Value::as_str)
        .unwrap_or("merged")
        .to_string();
    let loaded = Loaded {
        name: name.clone(),
        source: format!("{} (summary.json config)", first.dir.display()),
        spec,
    };
    Ok((name, resolve::resolve(&loaded)?))
}

/// The segment that sampled the target, if one did.
fn sampler(parts: &[Part]) -> Option<&Part> {
    parts
        .iter()
        .find(|p| !p.data.target_readings.is_empty() || p.summary["memory"].is_object())
}

/// The merged run's `summary.json`: analysed from the added data as a live run's is,
/// gates judged on it, with the segments listed (and those that ended early named).
fn merged_summary(
    parts: &[Part],
    data: &RunData,
    config: &RunConfig,
    (dir, started_at): (&Path, SystemTime),
) -> Result<Value, SoakError> {
    let plan = Plan::build(config);
    let sampled = sampler(parts).is_some();
    let mut memory = crate::runner::memory_setup(config, plan);
    memory.target &= sampled;
    let basis = Basis {
        corrected: crate::runner::correction(config).is_some(),
        stall_rule: data.bins.rule(),
        memory,
    };
    let elapsed = parts
        .iter()
        .filter_map(|p| p.summary.pointer("/run/elapsed_s").and_then(Value::as_f64))
        .fold(0.0, f64::max);
    let totals = totals::totals(
        data,
        &basis,
        Duration::from_secs_f64(elapsed.max(0.0)),
        &mut Vec::new(),
    );
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = parts[0]
        .summary
        .pointer("/run/target")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut meta = crate::runner::meta_for_merge(config, (id, started_at), target, plan);
    if !sampled {
        meta.process = None;
    }
    let early = parts.iter().any(Part::ended_early);
    let status = if early {
        Status::Interrupted
    } else {
        Status::Completed
    };
    let mut s = summary::build(&meta, &totals, status, SystemTime::now());
    summary::apply_gates(&mut s, &meta.gates);
    let mut v = serde_json::to_value(&s).map_err(|e| could_not_run(e.to_string()))?;
    v["run"]["segments"] = parts
        .iter()
        .map(|p| {
            serde_json::json!({
                "index": p.index,
                "folder": p.dir.display().to_string(),
                "status": p.summary.pointer("/run/status").cloned().unwrap_or(Value::Null),
                "ended_early": p.ended_early(),
            })
        })
        .collect();
    if let Some(reasons) = v["verdict"]["reasons"].as_array_mut() {
        for p in parts.iter().filter(|p| p.ended_early()) {
            reasons.push(
                format!(
                    "segment {} ended early ({}): its data up to then is merged",
                    p.index,
                    p.dir.display()
                )
                .into(),
            );
        }
    }
    Ok(v)
}

/// The run folders given: each folder that is one (it has a `summary.json`), and the run
/// folders inside each that is not (a `--out` folder the segments wrote into; no shell in
/// the image expands a glob), in name order.
fn expand(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, SoakError> {
    let mut all = Vec::new();
    for d in dirs {
        if d.join("summary.json").is_file() {
            all.push(d.clone());
            continue;
        }
        let entries = fs::read_dir(d).map_err(|e| usage(format!("{}: {e}", d.display())))?;
        let mut inside: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .filter(|p| p.join("summary.json").is_file())
            .collect();
        if inside.is_empty() {
            return Err(usage(format!(
                "{}: neither a run folder nor a folder of run folders",
                d.display()
            )));
        }
        inside.sort();
        all.append(&mut inside);
    }
    Ok(all)
}

/// The folders must be the segments 0..N of one plan, each once.
fn check(parts: &mut [Part]) -> Result<(), SoakError> {
    let Some(first) = parts.first() else {
        return Err(usage("soak merge needs the segments' run folders"));
    };
    let count = first.count;
    for p in parts.iter() {
        if p.count != count {
            return Err(usage(format!(
                "{} is segment {} of {}, but {} is of {count}: not one plan's segments",
                p.dir.display(),
                p.index,
                p.count,
                first.dir.display()
            )));
        }
        if plan_of(&p.summary) != plan_of(&first.summary) {
            return Err(usage(format!(
                "{} ran another plan than {} (their profiles differ): not one plan's segments",
                p.dir.display(),
                first.dir.display()
            )));
        }
    }
    parts.sort_by_key(|p| p.index);
    for pair in parts.windows(2) {
        if pair[0].index == pair[1].index {
            return Err(usage(format!(
                "{} and {} are both segment {}/{count}",
                pair[0].dir.display(),
                pair[1].dir.display(),
                pair[0].index
            )));
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !parts.iter().any(|p| p.index == *i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(usage(format!(
            "segments {} of {count} are missing (given: {})",
            missing.join(", "),
            parts
                .iter()
                .map(|p| p.dir.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// What makes two segments one plan's: their effective profile, but where each wrote its
/// results (`output.dir`).
fn plan_of(summary: &Value) -> Value {
    let mut config = summary["config"].clone();
    if let Some(output) = config.get_mut("output").and_then(Value::as_object_mut) {
        output.remove("dir");
    }
    config
}

/// `<out>/<stamp>-<profile>-merged/`, new.
fn folder(out: &Path, profile: &str, started_at: SystemTime) -> Result<PathBuf, SoakError> {
    let stamp = humantime::format_rfc3339_seconds(started_at)
        .to_string()
        .replace(':', "-");
    let fail = |e: std::io::Error| {
        could_not_run(format!(
            "cannot create a run folder in {}: {e}",
            out.display()
        ))
    };
    fs::create_dir_all(out).map_err(fail)?;
    for n in 1..1000 {
        let name = if n == 1 {
            format!("{stamp}-{profile}-merged")
        } else {
            format!("{stamp}-{profile}-merged-{n}")
        };
        let path = out.join(name);
        match fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(fail(e)),
        }
    }
    Err(could_not_run(format!(
        "{}: too many merged folders of that start",
        out.display()
    )))
}

/// Interval histograms by tag and interval number (from the shared start), added over the
/// segments: `(tag, k) → (offset, length, histogram)`.
type Intervals = BTreeMap<(String, u64), (Duration, Duration, Histogram<u64>)>;

/// One segment's `timeseries.csv`: its header, its rows, and where its intervals fall on
/// the merged run's: interval `i` of this segment is interval `first + i` of the merge
/// (its start's whole intervals after the earliest start, then one per row: the rows'
/// own ends drift when a loaded machine delays the ticks, so counting rows keeps the
/// segments' intervals together where rounding their times would not).
struct Series {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Each row's end, s from this segment's start.
    ends: Vec<f64>,
    /// How long after the earliest start this segment started, and the merged interval
    /// its first row is.
    late: Duration,
    first: u64,
}

impl Series {
    fn read(p: &Part, base: SystemTime, every: Duration) -> Result<Series, SoakError> {
        let path = p.dir.join("timeseries.csv");
        let text =
            fs::read_to_string(&path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(String::from)
            .collect();
        let at = header.iter().position(|h| h == "elapsed_s");
        let rows: Vec<Vec<String>> = lines
            .map(|line| line.split(',').map(String::from).collect())
            .collect();
        let ends = rows
            .iter()
            .map(|r: &Vec<String>| {
                at.and_then(|i| r.get(i))
                    .and_then(|c| c.parse::<f64>().ok())
                    .unwrap_or(0.0)
            })
            .collect();
        let own = p
            .summary
            .pointer("/run/started_at")
            .and_then(Value::as_str)
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .unwrap_or(base);
        let late = own.duration_since(base).unwrap_or_default();
        let first = (late.as_secs_f64() / every.as_secs_f64().max(0.001)).round() as u64;
        Ok(Series {
            header,
            rows,
            ends,
            late,
            first,
        })
    }

    /// The merged interval an offset (s from this segment's start) falls in.
    fn interval_at(&self, secs: f64) -> u64 {
        // Interval i starts where row i - 1 ended (hlog and timeseries print ms).
        self.first + self.ends.partition_point(|e| *e <= secs + 0.0005) as u64
    }
}

fn merged_hlog(parts: &[Part], series: &[Series]) -> Result<Intervals, SoakError> {
    let mut merged = Intervals::new();
    for (p, series) in parts.iter().zip(series) {
        let path = p.dir.join("latency.hlog");
        let bytes = fs::read(&path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        let bad = |what: String| usage(format!("{}: {what}", path.display()));
        for entry in IntervalLogIterator::new(&bytes) {
            match entry.map_err(|e| bad(format!("not an interval log: {e:?}")))? {
                LogEntry::BaseTime(_) | LogEntry::StartTime(_) => {}
                LogEntry::Interval(ilh) => {
                    let tag = ilh
                        .tag()
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default();
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(ilh.encoded_histogram())
                        .map_err(|e| bad(format!("a histogram is not base64: {e}")))?;
                    let h: Histogram<u64> = Deserializer::new()
                        .deserialize(&mut raw.as_slice())
                        .map_err(|e| bad(format!("a histogram does not decode: {e:?}")))?;
                    let k = series.interval_at(ilh.start_timestamp().as_secs_f64());
                    // Its offset in the merged log: from the earliest start.
                    let offset = series.late + ilh.start_timestamp();
                    let slot = merged
                        .entry((tag, k))
                        .or_insert_with(|| (offset, ilh.duration(), new_histogram()));
                    slot.1 = slot.1.max(ilh.duration());
                    slot.2.add(&h).map_err(|e| bad(format!("{e:?}")))?;
                }
            }
        }
    }
    Ok(merged)
}

fn write_hlog(path: &Path, base: SystemTime, intervals: &Intervals) -> std::io::Result<()> {
    let mut out = Vec::new();
    crate::report::hlog::write_header(&mut out, base)?;
    let mut serializer = V2DeflateSerializer::new();
    let mut rows: Vec<_> = intervals.iter().collect();
    rows.sort_by_key(|((tag, k), _)| (*k, tag.clone()));
    for ((tag, _), (offset, length, h)) in rows {
        let mut writer =
            IntervalLogWriterBuilder::new().begin_log_with(&mut out, &mut serializer)?;
        writer
            .write_histogram(h, *offset, *length, Tag::new(tag))
            .map_err(|e| std::io::Error::other(format!("latency.hlog: {e}")))?;
    }
    fs::write(path, out)
}

/// One row per interval: counts and rates added over the segments, latency percentiles
/// from the merged interval histograms, the target's columns from the sampling segment,
/// and the tester's (probe p99 included) as the worst segment's.
fn merged_timeseries(series: &[Series], hlog: &Intervals) -> Result<String, SoakError> {
    // Only the sampling segment has the target's columns: the merged header is the widest,
    // and every segment's other columns must be the same.
    let header = series
        .iter()
        .map(|s| s.header.clone())
        .max_by_key(Vec::len)
        .unwrap_or_default();
    let own = |h: &[String]| -> Vec<String> {
        h.iter()
            .filter(|c| !c.starts_with("target_"))
            .cloned()
            .collect()
    };
    let mut rows: BTreeMap<u64, Vec<Vec<String>>> = BTreeMap::new();
    for s in series {
        if own(&s.header) != own(&header) {
            return Err(usage(
                "the segments' timeseries.csv columns differ: not one plan's segments",
            ));
        }
        // Each row laid out as the merged header, empty where this segment has no column.
        let at: Vec<Option<usize>> = header
            .iter()
            .map(|c| s.header.iter().position(|x| x == c))
            .collect();
        for (i, row) in s.rows.iter().enumerate() {
            let aligned = at
                .iter()
                .map(|p| p.and_then(|p| row.get(p)).cloned().unwrap_or_default())
                .collect();
            rows.entry(s.first + i as u64).or_default().push(aligned);
        }
    }
    let mut out = header.join(",");
    out.push('\n');
    let mut by_interval: BTreeMap<u64, Vec<(&str, &Histogram<u64>)>> = BTreeMap::new();
    for ((tag, j), (_, _, hist)) in hlog {
        by_interval.entry(*j).or_default().push((tag, hist));
    }
    // The merged histogram of the tags `pick` accepts, for interval `k`.
    let union = |k: u64, pick: &dyn Fn(&str) -> bool| {
        let mut h = new_histogram();
        for (tag, hist) in by_interval.get(&k).into_iter().flatten() {
            if pick(tag) {
                let _ = h.add(*hist);
            }
        }
        LatencyStats::of(&h)
    };
    for (k, group) in &rows {
        let column = |i: usize| {
            group
                .iter()
                .filter_map(move |r| r.get(i))
                .filter(|c| !c.is_empty())
        };
        let ttlf = union(*k, &|t| t.ends_with(".ttlf"));
        let ttff = union(*k, &|t| t.ends_with(".ttff"));
        let fanout = union(*k, &|t| t == "fanout");
        let last = union(*k, &|t| t == "fanout.last");
        let mut cells = Vec::with_capacity(header.len());
        for (i, name) in header.iter().enumerate() {
            let sum = || {
                format!(
                    "{:.2}",
                    column(i).filter_map(|c| c.parse::<f64>().ok()).sum::<f64>()
                )
            };
            let max = || {
                column(i)
                    .filter_map(|c| c.parse::<f64>().ok())
                    .reduce(f64::max)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            };
            let first = || column(i).next().cloned().unwrap_or_default();
            let stat = |s: Option<LatencyStats>, f: fn(&LatencyStats) -> f64| {
                s.map(|s| f(&s).to_string()).unwrap_or_default()
            };
            let message = |suffix: &str| {
                name.strip_suffix(suffix)
                    .map(|m| union(*k, &|t| t == format!("{m}.ttlf")))
            };
            let cell = match name.as_str() {
                "active_users" | "open_connections" => column(i)
                    .filter_map(|c| c.parse::<u64>().ok())
                    .sum::<u64>()
                    .to_string(),
                "p50_ms" => stat(ttlf, |s| s.p50),
                "p95_ms" => stat(ttlf, |s| s.p95),
                "p99_ms" => stat(ttlf, |s| s.p99),
                "max_ms" => stat(ttlf, |s| s.max),
                "ttff_p50_ms" => stat(ttff, |s| s.p50),
                "ttff_p99_ms" => stat(ttff, |s| s.p99),
                "fanout_p50_ms" => stat(fanout, |s| s.p50),
                "fanout_p99_ms" => stat(fanout, |s| s.p99),
                "last_member_p99_ms" => stat(last, |s| s.p99),
                "reach" => reach(group, &header, i),
                n if n.starts_with("tester_") || n == "probe_p99_ms" => max(),
                n if n.starts_with("target_")
                    || n == "time"
                    || n == "elapsed_s"
                    || n == "phase" =>
                {
                    first()
                }
                n if n.ends_with("_per_s") => sum(),
                _ => match (message("_p50_ms"), message("_p99_ms")) {
                    (Some(s), _) => stat(s, |s| s.p50),
                    (_, Some(s)) => stat(s, |s| s.p99),
                    _ => first(),
                },
            };
            cells.push(cell);
        }
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// An interval's reach over the segments: deliveries over expected deliveries, each
/// segment's expected being its deliveries over its reach.
fn reach(group: &[Vec<String>], header: &[String], at: usize) -> String {
    let Some(d) = header.iter().position(|h| h == "delivered_per_s") else {
        return String::new();
    };
    let (mut delivered, mut expected) = (0.0, 0.0);
    for row in group {
        let got = row
            .get(d)
            .and_then(|c| c.parse::<f64>().ok())
            .unwrap_or(0.0);
        if let Some(r) = row
            .get(at)
            .and_then(|c| c.parse::<f64>().ok())
            .filter(|r| *r > 0.0)
        {
            delivered += got;
            expected += got / r;
        }
    }
    if expected > 0.0 {
        format!("{:.4}", delivered / expected)
    } else {
        String::new()
    }
}

/// Every segment's events, in time order, each marked with its segment.
fn merged_events(parts: &[Part]) -> String {
    let mut all: Vec<(String, String)> = Vec::new();
    for p in parts {
        let Ok(text) = fs::read_to_string(p.dir.join("events.jsonl")) else {
            continue;
        };
        for line in text.lines() {
            if let Ok(mut v) = serde_json::from_str::<Value>(line) {
                let time = v["time"].as_str().unwrap_or_default().to_string();
                v["segment"] = p.index.into();
                all.push((time, v.to_string()));
            }
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (_, line) in all {
        out.push_str(&line);
        out.push('\n');
    }
    out
}
