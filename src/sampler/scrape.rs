//! A remote target by its own metrics (`--target-metrics URL`): the Prometheus / OpenMetrics
//! text a server already exposes, scraped over plain HTTP at the sampling interval with a
//! deadline, read for resident memory, CPU seconds and open files (the names
//! prometheus_client, prom-client and the Go client export by default; configurable). A
//! failed scrape is an error for that tick — a gap — never a zero.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sampler::Reading;

/// Longest a scrape may take, whatever the interval.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest metrics page read.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// The metric names read (`[process.metric_names]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricNames {
    /// Resident memory, bytes: what the leak verdict judges.
    pub memory: String,
    /// CPU time, seconds (a counter): its rate is the CPU %.
    pub cpu: String,
    /// Open file descriptors.
    pub fds: String,
    /// Threads, when the endpoint exports them (the Go client's `go_threads`); empty: none.
    pub threads: String,
}

impl Default for MetricNames {
    fn default() -> Self {
        MetricNames {
            memory: "process_resident_memory_bytes".into(),
            cpu: "process_cpu_seconds_total".into(),
            fds: "process_open_fds".into(),
            threads: String::new(),
        }
    }
}

/// A metrics endpoint being scraped.
#[derive(Debug)]
pub struct Scraper {
    url: String,
    /// `host[:port]` for the Host header.
    authority: String,
    path: String,
    addrs: Vec<SocketAddr>,
    names: MetricNames,
    timeout: Duration,
    /// The last CPU reading (when, CPU seconds), for a rate.
    last_cpu: Option<(Instant, f64)>,
}

impl Scraper {
    /// Checks `url` and scrapes it once: an error (one line) when it is not an `http://`
    /// URL, cannot be reached, or does not serve the memory metric.
    pub fn open(url: &str, names: MetricNames, interval: Duration) -> Result<Scraper, String> {
        let mut scraper = Scraper::unchecked(url, names, interval)?;
        scraper.read()?;
        Ok(scraper)
    }

    /// Checks `url` without scraping it (an endpoint that went down after it was checked:
    /// each tick then tries again and counts a gap).
    pub fn unchecked(url: &str, names: MetricNames, interval: Duration) -> Result<Scraper, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            if url.starts_with("https://") {
                format!("{url}: https is not supported; scrape the endpoint over http://")
            } else {
                format!("{url}: expected an http:// URL, like http://127.0.0.1:9100/metrics")
            }
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/metrics"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url}: expected http://HOST:PORT/PATH"));
        }
        let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']')
        }) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addrs: Vec<SocketAddr> = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{url}: cannot resolve {authority}: {e}"))?
            .collect();
        if names.memory.trim().is_empty() {
            return Err("process.metric_names.memory: empty".into());
        }
        Ok(Scraper {
            url: url.to_string(),
            authority: authority.to_string(),
            path: path.to_string(),
            addrs,
            names,
            timeout: interval.min(MAX_TIMEOUT),
            last_cpu: None,
        })
    }

    /// The URL, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One scrape: the reading, or why there is none this tick.
    pub fn read(&mut self) -> Result<Reading, String> {
        let body = self
            .fetch()
            .map_err(|why| format!("scraping {}: {why}", self.url))?;
        let names = &self.names;
        let memory = value_of(&body, &names.memory).ok_or_else(|| {
            format!(
                "{} serves no `{}` sample: not a Prometheus endpoint, or the memory metric has another name (process.metric_names.memory)",
                self.url, names.memory
            )
        })?;
        let now = Instant::now();
        let cpu_pct = match value_of(&body, &names.cpu) {
            Some(seconds) => {
                let pct = self.last_cpu.map_or(0.0, |(at, before)| {
                    let wall = now.duration_since(at).as_secs_f64().max(1e-6);
                    ((seconds - before) / wall * 100.0).max(0.0)
                });
                self.last_cpu = Some((now, seconds));
                pct
            }
            None => 0.0,
        };
        let count =
            |name: &str| value_of(&body, name).map(|v| v.clamp(0.0, f64::from(u32::MAX)) as u32);
        Ok(Reading {
            rss_bytes: memory.max(0.0) as u64,
            cpu_pct: cpu_pct as f32,
            fds: count(&names.fds).unwrap_or(0),
            threads: (!names.threads.is_empty())
                .then(|| count(&names.threads))
                .flatten(),
            procs: 1,
        })
    }

    /// GET the page within the deadline; the body as text.
    fn fetch(&self) -> Result<String, String> {
        let deadline = Instant::now() + self.timeout;
        let left = || {
            deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| format!("no answer within {:?}", self.timeout))
        };
        let mut last_err = String::from("no address");
        let mut stream = None;
        for addr in &self.addrs {
            match TcpStream::connect_timeout(addr, left()?) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = e.to_string(),
            }
        }
        let mut stream = stream.ok_or(last_err)?;
        stream
            .set_write_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/plain;version=0.0.4, */*;q=0.1\r\nAccept-Encoding: identity\r\nUser-Agent: soak/{}\r\nConnection: close\r\n\r\n",
            self.path,
            self.authority,
            env!("CARGO_PKG_VERSION")
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            stream
                .set_read_timeout(Some(left()?))
                .map_err(|e| e.to_string())?;
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(format!("no complete answer within {:?}", self.timeout));
                }
                Err(e) => return Err(e.to_string()),
            }
            if raw.len() > MAX_BODY {
                return Err(format!("the page is over {} MiB", MAX_BODY >> 20));
            }
        }
        response_body(&raw)
    }
}

/// The body of a raw HTTP/1.x response: an error unless it is a 200.
fn response_body(raw: &[u8]) -> Result<String, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("not an HTTP response (no end of headers)")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if !status.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP response: `{}`", clip(status)));
    }
    if code != "200" {
        return Err(format!("HTTP {}", clip(status.get(9..).unwrap_or(code))));
    }
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    });
    let body = &raw[end + 4..];
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    String::from_utf8(body).map_err(|_| "the page is not UTF-8 text".to_string())
}

/// A chunked body, joined.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || String::from("a malformed chunked body");
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size = std::str::from_utf8(&body[..eol]).map_err(|_| bad())?;
        let size = size.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad())?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            return Err(bad());
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).ok_or_else(bad)?;
    }
}

/// The sum of the samples of metric `name` in Prometheus or OpenMetrics text (a metric with
/// several label sets sums them, as a process tree does); `None` when there is none.
pub fn value_of(text: &str, name: &str) -> Option<f64> {
    let mut total: Option<f64> = None;
    for line in text.lines() {
        let line = line.trim_start();
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = match rest.as_bytes().first() {
            Some(b'{') => after_labels(rest)?,
            Some(b' ' | b'\t') => rest,
            _ => continue, // a longer name, or a comment
        };
        let value: f64 = match rest.split_whitespace().next().map(str::parse) {
            Some(Ok(v)) => v,
            _ => continue,
        };
        if value.is_finite() {
            total = Some(total.unwrap_or(0.0) + value);
        }
    }
    total
}

/// What follows a `{…}` label set (quoted values may hold `}` and escapes).
fn after_labels(s: &str) -> Option<&str> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(&s[i + 1..]),
            _ => {}
        }
    }
    None
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.5165824e+07
process_resident_memory_bytes_other 99
process_cpu_seconds_total 1.25
process_open_fds{pid="1",note="a } in \"quotes\""} 12
process_open_fds{pid="2"} 3 1700000000000
go_threads NaN
"#;

    #[test]
    fn values_are_read_by_exact_name_summing_label_sets() {
        assert_eq!(
            value_of(PAGE, "process_resident_memory_bytes"),
            Some(25_165_824.0)
        );
        assert_eq!(value_of(PAGE, "process_cpu_seconds_total"), Some(1.25));
        assert_eq!(value_of(PAGE, "process_open_fds"), Some(15.0));
        assert_eq!(value_of(PAGE, "go_threads"), None, "NaN is no value");
        assert_eq!(value_of(PAGE, "missing"), None);
        assert_eq!(value_of("<html>garbage</html>", "process_open_fds"), None);
        assert_eq!(
            value_of("process_open_fds{broken 3", "process_open_fds"),
            None
        );
    }

    #[test]
    fn responses_are_checked_and_chunked_bodies_joined() {
        let plain = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\na 1\n";
        assert_eq!(response_body(plain).unwrap(), "a 1\n");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na 1\n\r\n3;x=y\r\nb 2\r\n0\r\n\r\n";
        assert_eq!(response_body(chunked).unwrap(), "a 1\nb 2");
        let missing = b"HTTP/1.1 404 Not Found\r\n\r\nnope";
        assert_eq!(response_body(missing).unwrap_err(), "HTTP 404 Not Found");
        assert!(response_body(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(response_body(b"HTTP/1.1 200 OK\r\n").is_err());
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(response_body(bad).is_err());
    }

    #[test]
    fn urls_other_than_http_are_refused_before_any_scrape() {
        let names = MetricNames::default();
        let every = Duration::from_secs(1);
        for (url, says) in [
            ("https://127.0.0.1:1/metrics", "https is not supported"),
            ("127.0.0.1:9100", "expected an http:// URL"),
            ("http:///metrics", "expected http://HOST:PORT/PATH"),
        ] {
            let err = Scraper::open(url, names.clone(), every).unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn an_endpoint_that_never_answers_is_a_timeout_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/metrics", listener.local_addr().unwrap());
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let held = listener.accept();
            let _ = wait.recv(); // keeps the connection open, silent, until the test ends
            drop(held);
        });
        let began = Instant::now();
        let err =
            Scraper::open(&url, MetricNames::default(), Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("within"), "{err}");
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "{:?}",
            began.elapsed()
        );
        drop(done);
        holder.join().unwrap();
    }

    #[test]
    fn an_endpoint_that_refuses_is_a_clear_error() {
        // A port just released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/metrics");
        let err = Scraper::open(&url, MetricNames::default(), Duration::from_secs(1)).unwrap_err();
        assert!(err.starts_with(&format!("scraping {url}: ")), "{err}");
    }
}
