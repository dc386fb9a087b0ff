//! The results folder: `RunDir` creates it and owns its files; a writer thread fills them.
//!
//! The aggregator hands each interval to [`Writer::sink`], which only queues it; the writer
//! thread appends the timeseries row, rewrites `summary.json` (through a temporary file and
//! a rename, so a reader never sees half a file) and flushes, so a `kill -9` loses at most
//! one interval. File I/O never runs on the async runtime.

pub mod chart;
pub mod compare;
pub mod events;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod lock;
pub mod memory;
pub mod summary;
pub mod summary_model;
pub mod table;
pub mod timeseries;
pub mod verdict;

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use crate::analysis::abort::Abort;
use crate::error::{SoakError, could_not_run, usage};
use crate::metrics::aggregator::Sink;
use crate::metrics::run_data::RunData;
use crate::metrics::snapshot::{IntervalSnapshot, ProcRow, RunTotals};
use crate::plan::PhaseSpan;
use crate::report::summary::{RunMeta, Status, Summary};
use crate::report::timeseries::Columns;
use hdrhistogram::serialization::V2DeflateSerializer;

/// A run's results folder and its open files.
#[derive(Debug)]
pub struct RunDir {
    /// The folder, `<out>/<UTC timestamp>-<profile>/`.
    pub path: PathBuf,
    columns: Columns,
    started: SystemTime,
    timeseries: BufWriter<File>,
    hlog: BufWriter<File>,
    events: BufWriter<File>,
    memory: BufWriter<File>,
    /// The newest sampler reading so far, carried into rows that hold none of their own.
    latest: Option<ProcRow>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl RunDir {
    /// Creates `<out>/<UTC timestamp>-<profile>/` (a suffix keeps two runs in one second
    /// apart) with its timeseries, latency log and event log started.
    pub fn create(
        out: &Path,
        profile: &str,
        now: SystemTime,
        columns: Columns,
    ) -> Result<RunDir, SoakError> {
        let not_writable = |err: io::Error| {
            could_not_run(format!(
                "results folder {} is not writable: {err}",
                out.display()
            ))
        };
        if out.exists() && !out.is_dir() {
            return Err(could_not_run(format!(
                "results folder {} is a file, not a folder; give --out a folder (it is created if missing)",
                out.display()
            )));
        }
        fs::create_dir_all(out).map_err(not_writable)?;
        let stamp = folder_stamp(now);
        let mut path = out.join(format!("{stamp}-{profile}"));
        let mut n = 1;
        loop {
            match fs::create_dir(&path) {
                Ok(()) => break,
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists && n < 1000 => {
                    n += 1;
                    path = out.join(format!("{stamp}-{profile}-{n}"));
                }
                Err(err) => return Err(not_writable(err)),
            }
        }
        point_latest(out, &path);
        let open = |name: &str| {
            File::create(path.join(name))
                .map(BufWriter::new)
                .map_err(not_writable)
        };
        let mut timeseries = open("timeseries.csv")?;
        timeseries::write_header(&mut timeseries, &columns).map_err(not_writable)?;
        timeseries.flush().map_err(not_writable)?;
        let mut hlog = open("latency.hlog")?;
        hlog::write_header(&mut hlog, now).map_err(not_writable)?;
        hlog.flush().map_err(not_writable)?;
        let events = open("events.jsonl")?;
        let mut memory = open("memory.csv")?;
        memory::write_header(&mut memory).map_err(not_writable)?;
        memory.flush().map_err(not_writable)?;
        Ok(RunDir {
            path,
            columns,
            started: now,
            timeseries,
            hlog,
            events,
            memory,
            latest: None,
        })
    }

    /// The folder's name (the run id).
    pub fn id(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn append_interval(
        &mut self,
        snapshot: &IntervalSnapshot,
        serializer: &mut V2DeflateSerializer,
        phases: &[PhaseSpan],
    ) -> io::Result<()> {
        for row in &snapshot.readings {
            memory::write_row(&mut self.memory, self.started, phases, row)?;
        }
        self.memory.flush()?;
        if let Some(row) = snapshot.readings.last() {
            self.latest = Some(*row);
        }
        timeseries::write_row(
            &mut self.timeseries,
            &self.columns,
            snapshot,
            self.latest.as_ref(),
        )?;
        self.timeseries.flush()?;
        hlog::write_interval(&mut self.hlog, serializer, snapshot)?;
        self.hlog.flush()?;
        for record in &snapshot.events {
            events::write_record(&mut self.events, self.started, record)?;
        }
        self.events.flush()
    }

    fn flush_all(&mut self) -> io::Result<()> {
        self.timeseries.flush()?;
        self.hlog.flush()?;
        self.events.flush()?;
        self.memory.flush()
    }

    fn write_summary(&self, summary: &Summary) -> io::Result<()> {
        let tmp = self.path.join(".summary.json.tmp");
        let written = (|| {
            let mut file = BufWriter::new(File::create(&tmp)?);
            summary::render(summary, &mut file)?;
            file.into_inner()
                .map_err(io::IntoInnerError::into_error)?
                .sync_data()?;
            fs::rename(&tmp, self.path.join("summary.json"))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp); // the last complete summary.json stays
        }
        written
    }
}

/// Writes `report.html` and `junit.xml` for a run folder from its saved files and `summary`.
pub fn write_reports(dir: &Path, summary: &serde_json::Value) -> io::Result<()> {
    let table = |name: &str| {
        fs::read_to_string(dir.join(name))
            .map(|t| html::Table::parse(&t))
            .unwrap_or_default()
    };
    let page = html::render(summary, &table("timeseries.csv"), &table("memory.csv"));
    write_atomically(&dir.join("report.html"), page.as_bytes())?;
    let mut xml = Vec::new();
    junit::render(summary, &mut xml)?;
    write_atomically(&dir.join("junit.xml"), &xml)
}

/// `soak report`: re-renders a run folder's `summary.json` (gates re-evaluated from its
/// config; a run that never finished — killed — is marked so), `report.html` and
/// `junit.xml` from its saved data. Returns the summary.
pub fn rerender(dir: &Path) -> Result<serde_json::Value, SoakError> {
    let path = dir.join("summary.json");
    let text = crate::files::read_text(&path, crate::files::MAX_SUMMARY_BYTES)
        .map_err(|err| usage(format!("{err} (is this a soak results folder?)")))?;
    let mut summary: serde_json::Value = serde_json::from_str(&text)
        .map_err(|err| usage(format!("{}: not a soak summary: {err}", path.display())))?;
    if summary
        .pointer("/run/status")
        .and_then(serde_json::Value::as_str)
        == Some("running")
    {
        summary["run"]["status"] = "killed".into();
        summary["verdict"]["result"] = "incomplete".into();
        summary["verdict"]["reasons"] = serde_json::json!([
            "the run ended without finishing (killed); figures cover the time up to its last checkpoint"
        ]);
    }
    summary::apply_gates_json(&mut summary)
        .map_err(|err| usage(format!("{}: {err}", path.display())))?;
    let fail =
        |err: io::Error| could_not_run(format!("cannot write into {}: {err}", dir.display()));
    let pretty =
        serde_json::to_vec_pretty(&summary).map_err(|err| could_not_run(err.to_string()))?;
    write_atomically(&path, &pretty).map_err(fail)?;
    write_reports(dir, &summary).map_err(fail)?;
    Ok(summary)
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let written = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Points `<out>/latest` at the run folder (a relative symlink, replaced atomically), so
/// the newest run is always at the same path. A `latest` that is not a symlink is left
/// alone; failing to link is not worth failing a run for.
fn point_latest(out: &Path, run: &Path) {
    let (Some(name), latest) = (run.file_name(), out.join("latest")) else {
        return;
    };
    if fs::symlink_metadata(&latest).is_ok_and(|m| !m.file_type().is_symlink()) {
        return;
    }
    let tmp = out.join(format!(".latest-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    #[cfg(unix)]
    if std::os::unix::fs::symlink(name, &tmp).is_ok() && fs::rename(&tmp, &latest).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

/// `2026-11-23T02-01-00Z`: sortable, and valid in file names everywhere.
fn folder_stamp(now: SystemTime) -> String {
    humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace(':', "-")
}

// One message per interval: the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Interval(IntervalSnapshot, RunTotals),
    /// The run's totals and its run data (`None` when the aggregator died: the last
    /// checkpoint's totals are used, and no run data is written).
    Final(Option<(RunTotals, Box<RunData>)>, Status),
}

/// Ends the run early, with the reason (called once, from the writer thread).
pub type StopRun = Box<dyn FnMut(String) + Send>;

/// The writer thread's handle.
pub struct Writer {
    tx: mpsc::Sender<Msg>,
    thread: JoinHandle<Result<Summary, String>>,
}

impl Writer {
    /// Starts the writer thread for `dir`, which, with `--abort-on-fail`, also judges each
    /// checkpoint (calling `stop` once when a gate can no longer pass).
    pub fn spawn(
        mut dir: RunDir,
        meta: RunMeta,
        mut abort: Option<(Abort, StopRun)>,
        fail: StopRun,
    ) -> Result<Writer, SoakError> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let thread = std::thread::Builder::new()
            .name("soak-writer".into())
            .spawn(move || {
                let mut first_error: Option<String> = None;
                let mut serializer = V2DeflateSerializer::new();
                let mut last: Option<RunTotals> = None;
                let shown = dir.path.display().to_string();
                // The first failed write (a full disk, a folder removed) is reported at once
                // and ends the run: going on would measure what can no longer be kept.
                let mut fail = Some(fail);
                let mut keep = |r: io::Result<()>, what: &str| {
                    if let Err(err) = r
                        && first_error.is_none()
                    {
                        let why = format!("writing {what} in {shown}: {err}");
                        if let Some(mut stop) = fail.take() {
                            stop(why.clone());
                        }
                        first_error = Some(why);
                    }
                };
                for msg in rx {
                    match msg {
                        Msg::Interval(snapshot, totals) => {
                            keep(
                                dir.append_interval(&snapshot, &mut serializer, &meta.phases),
                                "interval files",
                            );
                            let s =
                                summary::build(&meta, &totals, Status::Running, SystemTime::now());
                            keep(dir.write_summary(&s), "summary.json");
                            if let Some((watch, stop)) = &mut abort
                                && let Ok(json) = serde_json::to_value(&s)
                                && let Some(why) = watch.check(&json, totals.elapsed)
                            {
                                stop(why);
                                abort = None; // once is enough; the run is ending
                            }
                            last = Some(totals);
                        }
                        Msg::Final(end, status) => {
                            let (totals, data) =
                                end.map_or((None, None), |(t, d)| (Some(t), Some(d)));
                            if let Some(data) = data {
                                let text = crate::metrics::run_data::file::to_json(&data);
                                keep(
                                    write_atomically(
                                        &dir.path.join("run-data.json"),
                                        text.as_bytes(),
                                    ),
                                    "run-data.json",
                                );
                            }
                            let totals = totals.or(last.take()).unwrap_or_default();
                            let mut s = summary::build(&meta, &totals, status, SystemTime::now());
                            summary::apply_gates(&mut s, &meta.gates);
                            keep(dir.write_summary(&s), "summary.json");
                            keep(dir.flush_all(), "interval files");
                            match serde_json::to_value(&s) {
                                Ok(v) => {
                                    keep(write_reports(&dir.path, &v), "report.html and junit.xml")
                                }
                                Err(err) => keep(Err(io::Error::other(err)), "report.html"),
                            }
                            return match first_error {
                                Some(err) => Err(err),
                                None => Ok(s),
                            };
                        }
                    }
                }
                Err(String::from("the run ended without final totals"))
            })
            .map_err(|err| could_not_run(format!("cannot start the writer thread: {err}")))?;
        Ok(Writer { tx, thread })
    }

    /// The aggregator's sink: queues each interval for this thread.
    pub fn sink(&self) -> Sink {
        let tx = self.tx.clone();
        Box::new(move |snapshot: &IntervalSnapshot, totals: &RunTotals| {
            let _ = tx.send(Msg::Interval(snapshot.clone(), totals.clone()));
        })
    }

    /// Writes the final summary and waits for every file to be flushed.
    /// `totals` is `None` when the aggregator died; the last checkpoint's totals are kept.
    pub fn finish(
        self,
        end: Option<(RunTotals, RunData)>,
        status: Status,
    ) -> Result<Summary, SoakError> {
        let end = end.map(|(t, d)| (t, Box::new(d)));
        let _ = self.tx.send(Msg::Final(end, status));
        drop(self.tx);
        match self.thread.join() {
            Ok(Ok(summary)) => Ok(summary),
            Ok(Err(err)) => Err(could_not_run(err)),
            Err(_) => Err(could_not_run("the writer thread panicked")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_are_utc_and_unique() {
        let tmp = tempfile::tempdir().unwrap();
        let t = SystemTime::UNIX_EPOCH;
        let a = RunDir::create(tmp.path(), "smoke", t, Columns::default()).unwrap();
        let b = RunDir::create(tmp.path(), "smoke", t, Columns::default()).unwrap();
        assert_eq!(a.id(), "1970-01-01T00-00-00Z-smoke");
        assert_eq!(b.id(), "1970-01-01T00-00-00Z-smoke-2");
        let latest = tmp.path().join("latest");
        assert_eq!(
            fs::read_link(&latest).unwrap(),
            PathBuf::from("1970-01-01T00-00-00Z-smoke-2"),
            "latest points at the newest run, relatively"
        );
        assert!(latest.join("timeseries.csv").exists());
        let header = fs::read_to_string(a.path.join("timeseries.csv")).unwrap();
        assert_eq!(header.trim(), timeseries::HEADER);
    }

    #[test]
    fn an_unwritable_folder_is_a_could_not_run_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain-file");
        fs::write(&file, "x").unwrap();
        let err = RunDir::create(
            &file.join("sub"),
            "smoke",
            SystemTime::now(),
            Columns::default(),
        )
        .unwrap_err();
        assert!(matches!(err, SoakError::CouldNotRun(_)), "{err}");
    }
}
