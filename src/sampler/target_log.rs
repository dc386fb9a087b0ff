//! Where a started target's output goes: `target.log` in the results folder, and with
//! `--target-output console` the console too, printed above the progress bar.
//!
//! The target starts before the results folder exists (soak waits for it to accept
//! connections first, and an unreachable target creates no folder), so its first lines are
//! kept in memory (the last [`EARLY_BYTES`]) until the folder is known; if the run never
//! gets that far, they are printed on stderr with the error, which is usually why.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use indicatif::ProgressBar;

/// Output kept while no results folder exists yet: enough for a stack trace.
pub const EARLY_BYTES: usize = 64 * 1024;

/// The target's output, shared by its reader threads and the run.
#[derive(Debug, Default)]
pub struct TargetLog {
    state: Mutex<State>,
    /// Signalled when a followed pipe closes.
    closed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Lines before the folder is known (the last `EARLY_BYTES` of them).
    early: Vec<u8>,
    /// `target.log`, once the folder is known.
    file: Option<File>,
    /// Also print each line on the console.
    console: bool,
    /// The live bar, when one is drawn: lines go above it.
    bar: Option<ProgressBar>,
    /// A write to `target.log` failed: say it once.
    failed: bool,
    /// Pipes still followed.
    open: usize,
}

impl TargetLog {
    /// A log that also prints on the console when `console`.
    pub fn new(console: bool) -> Arc<TargetLog> {
        Arc::new(TargetLog {
            state: Mutex::new(State {
                console,
                ..State::default()
            }),
            closed: Condvar::new(),
        })
    }

    /// Reads `from` line by line on its own thread until it closes.
    pub fn follow(self: &Arc<Self>, from: impl Read + Send + 'static) {
        let log = Arc::clone(self);
        if let Ok(mut s) = self.state.lock() {
            s.open += 1;
        }
        let _ = std::thread::Builder::new()
            .name("soak-target-out".into())
            .spawn(move || {
                let mut reader = BufReader::new(from);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => log.line(&line),
                    }
                }
                if let Ok(mut s) = log.state.lock() {
                    s.open -= 1;
                }
                log.closed.notify_all();
            });
    }

    /// One line of the target's output (with its newline, if it had one).
    pub fn line(&self, line: &[u8]) {
        let Ok(mut s) = self.state.lock() else { return };
        match &mut s.file {
            Some(file) => {
                if file.write_all(line).is_err() && !s.failed {
                    s.failed = true;
                    eprintln!(
                        "soak: cannot write target.log; the target's output is lost from here"
                    );
                }
            }
            None => {
                s.early.extend_from_slice(line);
                if s.early.len() > EARLY_BYTES {
                    let cut = s.early.len() - EARLY_BYTES;
                    s.early.drain(..cut);
                }
            }
        }
        if s.console {
            let text = String::from_utf8_lossy(line);
            let text = text.trim_end_matches(['\n', '\r']);
            match &s.bar {
                Some(bar) => bar.println(format!("target: {text}")),
                None => eprintln!("target: {text}"),
            }
        }
    }

    /// From now on, lines go to `path` (the lines so far are written first).
    pub fn to_file(&self, path: &Path) -> io::Result<()> {
        let mut file = File::create(path)?;
        let Ok(mut s) = self.state.lock() else {
            return Ok(());
        };
        file.write_all(&s.early)?;
        s.early = Vec::new();
        s.file = Some(file);
        Ok(())
    }

    /// Console lines go above this bar from now on.
    pub fn above(&self, bar: ProgressBar) {
        if let Ok(mut s) = self.state.lock() {
            s.bar = Some(bar);
        }
    }

    /// The lines kept so far while no folder exists (for an error message). Waits up to
    /// `drain` for the pipes to close first, so the last lines of a target that has just
    /// exited are read (its reader threads may not have got to them yet).
    pub fn early(&self, drain: Duration) -> String {
        let Ok(guard) = self.state.lock() else {
            return String::new();
        };
        let guard = match self.closed.wait_timeout_while(guard, drain, |s| s.open > 0) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        };
        String::from_utf8_lossy(&guard.early).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_before_the_folder_are_kept_then_written_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = TargetLog::new(false);
        log.line(b"starting\n");
        log.line(b"listening on 9001\n");
        assert_eq!(log.early(Duration::ZERO), "starting\nlistening on 9001\n");
        let path = dir.path().join("target.log");
        log.to_file(&path).unwrap();
        log.line(b"GET /ws\n");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "starting\nlistening on 9001\nGET /ws\n"
        );
        assert_eq!(
            log.early(Duration::ZERO),
            "",
            "nothing kept in memory once the file exists"
        );
    }

    #[test]
    fn early_output_is_bounded_to_its_tail() {
        let log = TargetLog::new(false);
        let line = [b'x'; 1000];
        for _ in 0..200 {
            log.line(&line);
        }
        log.line(b"the last words\n");
        let early = log.early(Duration::ZERO);
        assert!(early.len() <= EARLY_BYTES);
        assert!(early.ends_with("the last words\n"));
    }

    #[test]
    fn a_pipe_is_followed_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target.log");
        let log = TargetLog::new(false);
        log.to_file(&path).unwrap();
        let (reader, mut writer) = std::io::pipe().unwrap();
        log.follow(reader);
        writer.write_all(b"one\ntwo\n").unwrap();
        drop(writer);
        let drained = TargetLog::new(false);
        let (r2, mut w2) = std::io::pipe().unwrap();
        drained.follow(r2);
        w2.write_all(b"last words\n").unwrap();
        drop(w2);
        assert_eq!(
            drained.early(Duration::from_secs(5)),
            "last words\n",
            "early() waits for a closed pipe's last lines"
        );
        // The thread ends when the pipe closes; wait for its lines without sleeping blind.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(&path).unwrap() != "one\ntwo\n" {
            assert!(std::time::Instant::now() < deadline, "lines never arrived");
            std::thread::yield_now();
        }
    }
}
