//! Reading the files a user names (profiles, data CSVs, mock configs, summaries): regular
//! files only, up to a size, and text with the line and column of bad UTF-8.
//!
//! `--data /dev/zero` would otherwise read until memory runs out, and a FIFO given as
//! `--profile` would block soak before it starts, with no way to tell why.

use std::io::Read;
use std::path::Path;

/// A profile, mock config or locked profile: far more than any real one.
pub const MAX_PROFILE_BYTES: u64 = 1024 * 1024;

/// A per-user CSV: 64 MiB is a million users with generous rows.
pub const MAX_DATA_BYTES: u64 = 64 * 1024 * 1024;

/// A `summary.json` read back by `report`, `compare`, `lock`.
pub const MAX_SUMMARY_BYTES: u64 = 64 * 1024 * 1024;

/// The bytes of `path`: an error (one line, naming the file) when it is not a regular file
/// or is larger than `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|err| format!("{shown}: {err}"))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a pipe, socket or device)"
        };
        return Err(format!("{shown}: {what}; expected a regular file"));
    }
    let too_big = || {
        format!(
            "{shown}: larger than {} MiB; is this the right file?",
            max / (1024 * 1024)
        )
    };
    if meta.len() > max {
        return Err(too_big());
    }
    let file = std::fs::File::open(path).map_err(|err| format!("{shown}: {err}"))?;
    let mut bytes = Vec::new();
    // `take`: a file that grows while read (or lies about its size) still stops at `max`.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("{shown}: {err}"))?;
    if bytes.len() as u64 > max {
        return Err(too_big());
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text; bad UTF-8 is an error at its line and column.
pub fn read_text(path: &Path, max: u64) -> Result<String, String> {
    let bytes = read_bounded(path, max)?;
    String::from_utf8(bytes).map_err(|err| {
        let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        let column = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        format!(
            "{}:{line}:{column}: not valid UTF-8 (byte {:#04x}); save the file as UTF-8",
            path.display(),
            err.as_bytes()[valid.len()]
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_a_bounded_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            read_bounded(Path::new("/dev/zero"), 1024)
                .unwrap_err()
                .contains("not a regular file")
        );
        assert!(
            read_bounded(dir.path(), 1024)
                .unwrap_err()
                .contains("a directory")
        );
        let big = dir.path().join("big.csv");
        std::fs::write(&big, vec![b'a'; 2048]).unwrap();
        assert!(
            read_bounded(&big, 1024)
                .unwrap_err()
                .contains("larger than")
        );
        assert_eq!(read_bounded(&big, 4096).unwrap().len(), 2048);
        let missing = read_bounded(&dir.path().join("nope"), 10).unwrap_err();
        assert!(missing.contains("nope"), "{missing}");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipped: mkfifo is not available");
            return;
        }
        assert!(
            read_text(&fifo, 1024)
                .unwrap_err()
                .contains("not a regular file")
        );
    }

    #[test]
    fn bad_utf8_gives_its_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, b"[load]\nusers = 3 \xff\n").unwrap();
        let err = read_text(&path, 1024).unwrap_err();
        assert!(err.contains("p.toml:2:11"), "{err}");
    }
}
