//! Watching a run while it runs: the `--dashboard` page and the `--metrics-listen`
//! endpoint, served on a thread of their own and fed by one aggregator sink whose intervals
//! a second thread adds up and renders.

pub mod dashboard;
pub mod listen;
pub mod openmetrics;
pub mod server;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::error::{SoakError, could_not_run, usage};
use crate::metrics::aggregator::Sink;
use crate::metrics::snapshot::{IntervalSnapshot, RunTotals};
use crate::own_thread::OwnThread;
use crate::report::summary::RunMeta;
use crate::report::timeseries::Columns;
use dashboard::{Dashboard, Page};
use openmetrics::Metrics;
use server::Rendered;

/// The listeners asked for on the command line.
#[derive(Debug, Clone, Copy)]
pub struct Listeners {
    /// `--dashboard`.
    pub dashboard: Option<SocketAddr>,
    /// `--metrics-listen`.
    pub metrics: Option<SocketAddr>,
    /// `--dashboard-linger`.
    pub linger: Option<Duration>,
}

/// What the metrics say from the first scrape on, before the run has begun: every series
/// exists (at zero) before load starts, so Prometheus' `rate()` sees the whole run.
#[derive(Debug, Clone)]
pub struct Labels {
    /// The `profile` label.
    pub profile: String,
    /// The `segment` label (`seg0of1` for a whole run).
    pub segment: String,
    /// The message names (the `message` label).
    pub messages: Vec<String>,
    /// The plan's length.
    pub planned: Duration,
}

/// What the live view needs to know about the run, once its results folder exists.
#[derive(Debug)]
pub struct Begin {
    /// The run's description (for the provisional summary).
    pub meta: RunMeta,
    /// The timeseries columns of this run.
    pub columns: Columns,
}

// One message per interval: the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Begin(Box<Begin>),
    Interval(IntervalSnapshot, RunTotals),
    Ended(Box<Value>, PathBuf),
}

/// The live listeners of one run; dropping it stops them.
#[derive(Debug)]
pub struct Live {
    tx: Option<mpsc::Sender<Msg>>,
    worker: Option<JoinHandle<()>>,
    _server: OwnThread,
    linger: Duration,
    /// Where the dashboard is, if asked for.
    pub dashboard: Option<SocketAddr>,
}

impl Live {
    /// Binds the listeners asked for (a port in use is a usage error, before any load) and
    /// starts serving a "starting" page; `None` when neither was asked for.
    /// `labels` is only worked out when a listener was asked for.
    pub fn bind(
        asked: Listeners,
        labels: impl FnOnce() -> Labels,
    ) -> Result<Option<Live>, SoakError> {
        let Listeners {
            dashboard,
            metrics,
            linger,
        } = asked;
        if dashboard.is_none() && metrics.is_none() {
            if linger.is_some() {
                return Err(usage(
                    "--dashboard-linger keeps the live listeners up after the run: give --dashboard or --metrics-listen too",
                ));
            }
            return Ok(None);
        }
        // Port 0 asks the system for a free port each time, so only an
        // explicit shared port is a clash.
        if let (Some(d), Some(m)) = (dashboard, metrics)
            && d == m
            && d.port() != 0
        {
            return Err(usage(
                "--dashboard and --metrics-listen need different addresses",
            ));
        }
        let labels = labels();
        let bound = |flag: &str, addr: Option<SocketAddr>| -> Result<_, SoakError> {
            addr.map(|a| listen::bind(flag, a)).transpose()
        };
        let dash_listener = bound("--dashboard", dashboard)?;
        let metrics_listener = bound("--metrics-listen", metrics)?;
        let local = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
        let (dash_at, metrics_at) = (local(&dash_listener), local(&metrics_listener));
        let starting = Page {
            intervals: 0,
            phase: String::from("starting"),
            elapsed_s: 0.0,
            remaining_s: 0.0,
            verdict: String::from("pass"),
            ended: false,
            body: String::from("<p>Waiting for the run to start…</p>"),
        };
        let (pages_tx, pages) = watch::channel(Arc::new(rendered(starting, None)));
        let first = Metrics::new(labels.planned.as_secs_f64(), &labels.messages);
        let (text_tx, text) = watch::channel(Arc::<str>::from(
            first.render(&labels.profile, &labels.segment),
        ));
        let profile = labels.profile.clone();
        let server = OwnThread::spawn("soak-live", move || async move {
            let dash = async move {
                if let Some(l) = dash_listener
                    && let Ok(l) = tokio::net::TcpListener::from_std(l)
                {
                    let _ = axum::serve(l, server::dashboard(pages, &profile)).await;
                }
            };
            let scrape = async move {
                if let Some(l) = metrics_listener
                    && let Ok(l) = tokio::net::TcpListener::from_std(l)
                {
                    let _ = axum::serve(l, server::metrics(text)).await;
                }
            };
            tokio::join!(dash, scrape);
        })
        .map_err(|err| could_not_run(format!("cannot start the live listeners' thread: {err}")))?;
        let (tx, rx) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("soak-live-render".into())
            .spawn(move || {
                let outputs = Outputs {
                    pages: dash_at.map(|_| pages_tx),
                    text: metrics_at.map(|_| text_tx),
                    labels,
                };
                work(&rx, &outputs, first);
            })
            .map_err(|err| could_not_run(format!("cannot start the live thread: {err}")))?;
        if let Some(a) = dash_at {
            eprintln!("soak: dashboard on http://{a}/");
        }
        if let Some(a) = metrics_at {
            eprintln!("soak: metrics on http://{a}/metrics");
        }
        Ok(Some(Live {
            tx: Some(tx),
            worker: Some(worker),
            _server: server,
            linger: linger.unwrap_or_default(),
            dashboard: dash_at,
        }))
    }

    /// The run has its results folder: from now on intervals come.
    pub fn begin(&self, begin: Begin) {
        self.send(Msg::Begin(Box::new(begin)));
    }

    /// The aggregator's sink: queues each interval for the live thread.
    pub fn sink(&self) -> Sink {
        let tx = self.tx.clone();
        Box::new(move |s: &IntervalSnapshot, t: &RunTotals| {
            if let Some(tx) = &tx {
                let _ = tx.send(Msg::Interval(s.clone(), t.clone()));
            }
        })
    }

    /// The run is over: the final summary, and the folder holding its report. Waits until
    /// the live thread has rendered it.
    pub fn ended(&mut self, summary: Value, dir: &Path) {
        self.send(Msg::Ended(Box::new(summary), dir.join("report.html")));
        self.tx = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }

    /// Keeps the listeners up for `--dashboard-linger` after the run, or until a signal.
    pub async fn linger(&self) {
        if self.linger.is_zero() {
            return;
        }
        let shown = crate::units::format_duration(self.linger);
        let at = self
            .dashboard
            .map(|a| format!(" at http://{a}/"))
            .unwrap_or_default();
        eprintln!("soak: the run is over; the live view stays up{at} for {shown} (Ctrl-C ends it)");
        tokio::select! {
            () = tokio::time::sleep(self.linger) => {}
            () = crate::signals::wait_for_signal() => {}
        }
    }

    fn send(&self, msg: Msg) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(msg);
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Where the live thread publishes (each `None` when that listener was not asked for).
struct Outputs {
    pages: Option<watch::Sender<Arc<Rendered>>>,
    text: Option<watch::Sender<Arc<str>>>,
    labels: Labels,
}

fn rendered(page: Page, report: Option<PathBuf>) -> Rendered {
    let json = serde_json::to_string(&page).unwrap_or_default();
    Rendered { page, json, report }
}

/// The live thread: adds up every interval, and after each batch of queued ones renders
/// the page and the metrics text once.
fn work(rx: &mpsc::Receiver<Msg>, out: &Outputs, mut metrics: Metrics) {
    let mut dash: Option<Dashboard> = None;
    let publish_metrics = |m: &Metrics| {
        if let Some(tx) = &out.text {
            tx.send_replace(Arc::from(
                m.render(&out.labels.profile, &out.labels.segment),
            ));
        }
    };
    while let Ok(first) = rx.recv() {
        let mut last: Option<(RunTotals, &'static str)> = None;
        let mut msg = Some(first);
        while let Some(m) = msg.take() {
            match m {
                Msg::Begin(b) => {
                    let d = Dashboard::new(b.meta, b.columns, out.labels.planned);
                    if let Some(tx) = &out.pages {
                        tx.send_replace(Arc::new(rendered(d.first(), None)));
                    }
                    dash = Some(d);
                }
                Msg::Interval(s, t) => {
                    if let Some(d) = &mut dash
                        && out.pages.is_some()
                    {
                        d.add(&s);
                    }
                    metrics.add(&s, &t);
                    last = Some((t, s.phase.label()));
                }
                Msg::Ended(summary, report) => {
                    metrics.end();
                    publish_metrics(&metrics);
                    if let (Some(tx), Some(d)) = (&out.pages, &dash) {
                        tx.send_replace(Arc::new(rendered(d.ended(&summary), Some(report))));
                    }
                    return;
                }
            }
            msg = rx.try_recv().ok();
        }
        if let Some((t, phase)) = last {
            publish_metrics(&metrics);
            if let (Some(tx), Some(d)) = (&out.pages, &dash) {
                tx.send_replace(Arc::new(rendered(d.page(&t, phase), None)));
            }
        }
    }
}
