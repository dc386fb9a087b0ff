//! Segments: N soak processes running slices of one plan against one target add up to the
//! one-process run, and their run data adds to the union of what they recorded.

use std::path::Path;
use std::process::{Child, Stdio};

use soak::metrics::run_data::{RunData, file};
use soak::metrics::snapshot::{LatencyStats, new_histogram};
use soak_mocks::demo::DemoConfig;

use crate::common::{demo_on_own_thread, hlog_ttlf, run_dir, soak_bin, summary};

/// The plan every process runs: small, with a ramp, probes and rooms-free messaging.
fn plan(url: &str) -> Vec<String> {
    format!("--url {url} --users 20 --rate 5/s --duration 4s --ramp-up 1s --ramp-down 1s --probes 2 --quiet")
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn spawn(args: &[String], out: &Path, extra: &[&str]) -> Child {
    soak_bin()
        .args(args)
        .args(extra)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_data(out: &Path) -> RunData {
    let text = std::fs::read_to_string(run_dir(out).join("run-data.json")).unwrap();
    file::from_json(&text).unwrap()
}

#[test]
fn four_segments_add_up_to_one_run_and_their_data_to_the_union_of_their_values() {
    let demo = demo_on_own_thread(DemoConfig::default());
    let args = plan(&demo.url());
    let tmp = tempfile::tempdir().unwrap();
    let outs: Vec<_> = (0..4).map(|i| tmp.path().join(format!("s{i}"))).collect();
    // One wall-clock start for all four, as an Indexed Job's pods are given.
    let start = humantime::format_rfc3339_millis(
        std::time::SystemTime::now() + std::time::Duration::from_secs(2),
    )
    .to_string();
    let children: Vec<_> = outs
        .iter()
        .enumerate()
        .map(|(i, out)| {
            let seg = format!("{i}/4");
            spawn(&args, out, &["--segment", &seg, "--start-at", &start])
        })
        .collect();
    children.into_iter().for_each(finished);
    let whole = tmp.path().join("whole");
    finished(spawn(&args, &whole, &[]));

    let mut merged = run_data(&outs[0]);
    for out in &outs[1..] {
        merged += &run_data(out);
    }
    let single = run_data(&whole);
    let s = summary(&whole);
    assert_eq!(single.counters.sent, s["totals"]["sent"].as_u64().unwrap());
    // Sent and received within 1 % of the one-process run; the same errors (none).
    let near = |a: u64, b: u64| (a as f64 - b as f64).abs() <= 0.01 * b as f64;
    assert!(
        near(merged.counters.sent, single.counters.sent),
        "sent {} vs {}",
        merged.counters.sent,
        single.counters.sent
    );
    assert!(
        near(merged.counters.received, single.counters.received),
        "received {} vs {}",
        merged.counters.received,
        single.counters.received
    );
    assert_eq!(merged.counters.errors, single.counters.errors);
    assert!(
        single.counters.sent > 200,
        "the plan sends: {}",
        single.counters.sent
    );
    // Each segment ran its slice: a quarter of the users, every one of them started once.
    for (i, out) in outs.iter().enumerate() {
        let seg = summary(out);
        assert_eq!(seg["run"]["segment"]["index"], i);
        assert_eq!(seg["run"]["segment"]["count"], 4);
        assert!(
            run_dir(out)
                .to_string_lossy()
                .ends_with(&format!("seg{i}of4"))
        );
        assert_eq!(run_data(out).counters.users_started, 5);
    }
    assert_eq!(merged.counters.users_started, 20);
    // The added histograms are exactly the union of the values the segments' hlogs hold.
    let mut union = new_histogram();
    for out in &outs {
        union.add(hlog_ttlf(out)).unwrap();
    }
    let mut added = new_histogram();
    for m in &merged.messages {
        added.add(&m.ttlf).unwrap();
    }
    assert_eq!(added.len(), union.len());
    for q in [0.5, 0.99, 1.0] {
        assert_eq!(
            added.value_at_quantile(q),
            union.value_at_quantile(q),
            "q {q}"
        );
    }
    // Two probes split over four segments: segments 0 and 1 probe, 2 and 3 do not.
    let probed: Vec<bool> = outs.iter().map(|o| !run_data(o).probe.is_empty()).collect();
    assert_eq!(probed, [true, true, false, false]);

    // `soak merge`: one ordinary run folder whose figures are the added data's.
    let folders: Vec<_> = outs.iter().map(|o| run_dir(o)).collect();
    let merged_out = tmp.path().join("merged");
    let out = soak_bin()
        .arg("merge")
        .args(&folders)
        .arg("--out")
        .arg(&merged_out)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = summary(&merged_out);
    assert_eq!(m["totals"]["sent"], merged.counters.sent);
    assert_eq!(m["totals"]["received"], merged.counters.received);
    let union_stats = serde_json::to_value(LatencyStats::of(&union)).unwrap();
    assert_eq!(
        m["latency_ms"]["run"], union_stats,
        "p50/p99 of the union, not an average"
    );
    assert_eq!(m["run"]["segments"].as_array().unwrap().len(), 4);
    assert_eq!(m["verdict"]["result"], "pass");
    let dir = run_dir(&merged_out);
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        page.contains("Merged from <b>4 segments</b>"),
        "the report says so"
    );
    let one = std::fs::read_to_string(folders[1].join("report.html")).unwrap();
    assert!(one.contains("Segment <b>1 of 4</b>"));
    for name in [
        "junit.xml",
        "report.html",
        "latency.hlog",
        "events.jsonl",
        "run-data.json",
    ] {
        assert!(dir.join(name).is_file(), "{name}");
    }
    // The merged log holds every value; the timeseries adds the segments' users.
    assert_eq!(crate::common::hlog_ttlf(&merged_out).len(), union.len());
    let rows = crate::common::timeseries(&merged_out);
    let peak = rows
        .iter()
        .map(|r| r["active_users"].parse::<u32>().unwrap())
        .max();
    assert_eq!(peak, Some(20));
    // `soak report` works on a merged folder as on any other.
    let status = soak_bin()
        .arg("report")
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    // Folders that are not exactly one plan's segments are exit 2, naming the problem.
    let refuse = |dirs: &[&Path], says: &str| {
        let out = soak_bin()
            .arg("merge")
            .args(dirs)
            .arg("--out")
            .arg(tmp.path().join("refused"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{says}: {err}");
        assert!(err.contains(says), "{says}: {err}");
    };
    refuse(
        &[&folders[0], &folders[1], &folders[2]],
        "segments 3 of 4 are missing",
    );
    refuse(
        &[&folders[0], &folders[1], &folders[2], &folders[2]],
        "are both segment 2/4",
    );
    refuse(&[&folders[0], &run_dir(&whole)], "not a segment's folder");
    refuse(
        &[tmp.path()],
        "neither a run folder nor a folder of run folders",
    );
    // A forged copy of segment 3: another soak version, another plan, another N.
    let forged = tmp.path().join("forged");
    std::fs::create_dir(&forged).unwrap();
    for name in [
        "summary.json",
        "run-data.json",
        "latency.hlog",
        "timeseries.csv",
    ] {
        std::fs::copy(folders[3].join(name), forged.join(name)).unwrap();
    }
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(forged.join("summary.json")).unwrap())
            .unwrap();
    let forge = |change: &dyn Fn(&mut serde_json::Value), says: &str| {
        let mut s = original.clone();
        change(&mut s);
        std::fs::write(forged.join("summary.json"), s.to_string()).unwrap();
        refuse(&[&folders[0], &folders[1], &folders[2], &forged], says);
    };
    forge(
        &|s| s["tool"]["version"] = "0.0.1".into(),
        "written by soak 0.0.1",
    );
    forge(
        &|s| s["config"]["load"]["users"] = 21.into(),
        "ran another plan",
    );
    forge(
        &|s| s["run"]["segment"]["count"] = 5.into(),
        "is segment 3 of 5",
    );
    std::fs::write(forged.join("summary.json"), original.to_string()).unwrap();
    std::fs::remove_file(forged.join("run-data.json")).unwrap();
    refuse(
        &[&folders[0], &folders[1], &folders[2], &forged],
        "run-data.json",
    );
    assert!(
        !tmp.path().join("refused").exists(),
        "nothing written when refused"
    );

    // `compare` and `lock` read a merged folder as any other.
    let compare = soak_bin()
        .arg("compare")
        .arg(run_dir(&whole))
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(matches!(compare.code(), Some(0 | 1)), "{compare:?}");
    let lock = soak_bin()
        .arg("lock")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(lock.success());
    assert!(dir.join("locked.toml").is_file());

    // Segments that wrote into one --out folder (an Indexed Job's shared volume) are merged
    // from that folder.
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    for f in &folders {
        std::fs::rename(f, shared.join(f.file_name().unwrap())).unwrap();
    }
    let merge_shared = |into: &Path| {
        let status = soak_bin()
            .arg("merge")
            .arg(&shared)
            .arg("--out")
            .arg(into)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        summary(into)
    };
    assert_eq!(
        merge_shared(&tmp.path().join("again"))["totals"],
        m["totals"]
    );

    // A segment that ended early is merged and marked.
    let path = shared
        .join(folders[3].file_name().unwrap())
        .join("summary.json");
    let mut s3: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    s3["run"]["status"] = "interrupted".into();
    std::fs::write(&path, s3.to_string()).unwrap();
    let e = merge_shared(&tmp.path().join("early"));
    assert_eq!(e["run"]["status"], "interrupted");
    assert_eq!(e["run"]["segments"][3]["ended_early"], true);
    let reasons = e["verdict"]["reasons"].to_string();
    assert!(reasons.contains("segment 3 ended early"), "{reasons}");
    assert_eq!(
        e["totals"]["sent"], m["totals"]["sent"],
        "its data is merged"
    );
}

#[test]
fn bad_segment_flags_are_usage_errors_before_any_load() {
    let demo = demo_on_own_thread(DemoConfig::default());
    let tmp = tempfile::tempdir().unwrap();
    let args = plan(&demo.url());
    let cases: [(&[&str], &str); 7] = [
        (&["--local-ips", "192.0.2.1"], "cannot bind"),
        (&["--local-ips", "nope"], "not an IP address"),
        (&["--segment", "4/4"], "expected I/N"),
        (&["--segments", "3"], "JOB_COMPLETION_INDEX"),
        (
            &["--segment", "1/2", "--sample-target", "2"],
            "--sample-target 2",
        ),
        (&["--segment", "0/2", "--start-at", "soon"], "--start-at"),
        (
            &["--segment", "0/2", "--segments", "2"],
            "cannot be used with",
        ),
    ];
    for (extra, says) in cases {
        let out = soak_bin()
            .args(&args)
            .args(extra)
            .arg("--out")
            .arg(tmp.path())
            .env_remove("JOB_COMPLETION_INDEX")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(says), "{extra:?}: {err}");
    }
    // Without --url each segment would load its own demo target.
    let out = soak_bin()
        .args([
            "--segment",
            "0/2",
            "--duration",
            "1s",
            "--ramp-up",
            "0s",
            "--ramp-down",
            "0s",
            "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--url"));
    // Nothing ran: no results folder.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn segments_of_an_indexed_job_take_their_index_from_job_completion_index() {
    let demo = demo_on_own_thread(DemoConfig::default());
    let tmp = tempfile::tempdir().unwrap();
    let mut args = plan(&demo.url());
    args.splice(
        args.iter().position(|a| a == "--users").unwrap()..,
        [
            "--users",
            "6",
            "--rate",
            "2/s",
            "--duration",
            "1s",
            "--ramp-up",
            "0s",
            "--ramp-down",
            "0s",
            "--probes",
            "0",
            "--quiet",
        ]
        .map(String::from),
    );
    // A pod that starts after the shared start joins the plan where it is, and says so.
    let passed = humantime::format_rfc3339_millis(
        std::time::SystemTime::now() - std::time::Duration::from_millis(300),
    )
    .to_string();
    let out = soak_bin()
        .args(&args)
        .args(["--segments", "3", "--start-at", &passed, "--out"])
        .arg(tmp.path())
        .env("JOB_COMPLETION_INDEX", "2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("segment 2/3 started") && err.contains("joining the plan"),
        "{err}"
    );
    let s = summary(tmp.path());
    assert_eq!(s["run"]["segment"]["index"], 2);
    assert_eq!(s["run"]["segment"]["count"], 3);
    assert_eq!(run_data(tmp.path()).counters.users_started, 2);
}

/// Only the sampling segment watches the target, so only its `timeseries.csv` has the
/// target's columns: `soak merge` takes them from it, and the memory from it.
#[test]
fn segments_merge_with_the_target_columns_of_the_sampling_segment() {
    let demo = demo_on_own_thread(DemoConfig::default());
    let mut args = plan(&demo.url());
    // The demo target runs in this test's process: that is the one to sample.
    let pid = std::process::id().to_string();
    args.extend(["--target-pid", &pid, "--baseline", "0s", "--cooldown", "0s"].map(String::from));
    let tmp = tempfile::tempdir().unwrap();
    let outs: Vec<_> = (0..2).map(|i| tmp.path().join(format!("s{i}"))).collect();
    let start = humantime::format_rfc3339_millis(
        std::time::SystemTime::now() + std::time::Duration::from_secs(1),
    )
    .to_string();
    let children: Vec<_> = outs
        .iter()
        .enumerate()
        .map(|(i, out)| {
            let seg = format!("{i}/2");
            spawn(&args, out, &["--segment", &seg, "--start-at", &start])
        })
        .collect();
    children.into_iter().for_each(finished);
    let has_target = |out: &Path| {
        crate::common::timeseries(out)[0]
            .keys()
            .any(|k| k.starts_with("target_"))
    };
    assert!(has_target(&outs[0]) && !has_target(&outs[1]));
    let merged_out = tmp.path().join("merged");
    let folders: Vec<_> = outs.iter().map(|o| run_dir(o)).collect();
    let out = soak_bin()
        .arg("merge")
        .args(&folders)
        .arg("--out")
        .arg(&merged_out)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The target's RSS, by interval end, of the rows that have one (a short last interval
    // may have had no sample in it, in the segment and so in the merge).
    let rss_by_end = |rows: &[std::collections::HashMap<String, String>]| {
        rows.iter()
            .filter_map(|r| {
                let rss = r.get("target_rss_mb")?.parse::<f64>().ok()?;
                Some((r.get("elapsed_s")?.clone(), rss))
            })
            .collect::<Vec<_>>()
    };
    let sampled = rss_by_end(&crate::common::timeseries(&outs[0]));
    let rows = crate::common::timeseries(&merged_out);
    let merged = rss_by_end(&rows);
    assert!(
        sampled.iter().all(|(_, v)| *v > 0.0) && sampled.len() >= 3,
        "the sampling segment watched the target: {sampled:?}"
    );
    assert_eq!(
        merged, sampled,
        "the merged rows carry the sampling segment's target columns: {rows:?}"
    );
    assert!(
        rows.iter()
            .filter(|r| r.get("phase").is_some_and(|p| p == "hold"))
            .all(|r| r.get("target_rss_mb").is_some_and(|v| !v.is_empty())),
        "every hold row of the merge has the target's RSS: {rows:?}"
    );
    let m = summary(&merged_out);
    assert!(m["memory"].is_object(), "{m}");
}
