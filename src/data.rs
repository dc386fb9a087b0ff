//! Per-user data: a CSV file with a header row, one row per user (wrapping around).

use std::path::Path;
use std::sync::Arc;

/// The columns and rows of a data file. User `i` gets row `i % rows.len()`.
#[derive(Debug, Clone, Default)]
pub struct UserData {
    /// Column names from the header row.
    pub columns: Vec<String>,
    /// The rows, each as long as `columns`.
    pub rows: Arc<Vec<Vec<String>>>,
}

impl UserData {
    /// The row of `user` (empty without a data file).
    pub fn row(&self, user: u32) -> &[String] {
        if self.rows.is_empty() {
            return &[];
        }
        &self.rows[user as usize % self.rows.len()]
    }
}

/// Reads a data file; an error is one line naming the file and, where known, the line.
pub fn load(path: &Path) -> Result<UserData, String> {
    let shown = path.display();
    let bytes = crate::files::read_bounded(path, crate::files::MAX_DATA_BYTES)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let at = |err: &csv::Error| match err.position() {
        Some(pos) => format!("{shown}:{}: {}", pos.line(), describe(err)),
        None => format!("{shown}: {}", describe(err)),
    };
    let columns: Vec<String> = reader
        .headers()
        .map_err(|err| at(&err))?
        .iter()
        .map(str::to_string)
        .collect();
    check_columns(&columns).map_err(|why| format!("{shown}:1: {why}"))?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|err| at(&err))?;
        rows.push(record.iter().map(str::to_string).collect());
    }
    if rows.is_empty() {
        return Err(format!(
            "{shown}: no data rows after the header row; expected one row per user"
        ));
    }
    Ok(UserData {
        columns,
        rows: Arc::new(rows),
    })
}

fn describe(err: &csv::Error) -> String {
    match err.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("this row has {len} fields but the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => String::from("not valid UTF-8"),
        _ => err.to_string(),
    }
}

fn check_columns(columns: &[String]) -> Result<(), String> {
    const BUILTIN: [&str; 5] = ["user", "seq", "id", "now_ms", "random"];
    for (i, name) in columns.iter().enumerate() {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "column {} is named `{name}`; column names are letters, digits and `_`",
                i + 1
            ));
        }
        if BUILTIN.contains(&name.as_str()) {
            return Err(format!(
                "column `{name}` would hide the built-in {{{{{name}}}}}; rename it"
            ));
        }
        if columns[..i].contains(name) {
            return Err(format!("column `{name}` appears twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn rows_wrap_around_users() {
        let f = file("name, room\nann, 1\nbob, 2\n");
        let data = load(f.path()).unwrap();
        assert_eq!(data.columns, ["name", "room"]);
        assert_eq!(data.row(0), ["ann", "1"]);
        assert_eq!(data.row(3), ["bob", "2"]);
        assert!(UserData::default().row(5).is_empty());
    }

    #[test]
    fn ragged_rows_name_the_line() {
        let f = file("name,room\nann,1\nbob\n");
        let err = load(f.path()).unwrap_err();
        assert!(
            err.contains(":3:") && err.contains("1 fields but the header has 2"),
            "{err}"
        );
    }

    #[test]
    fn bad_headers_and_empty_files() {
        assert!(load(file("na me\nx\n").path()).unwrap_err().contains(":1:"));
        assert!(
            load(file("user\nx\n").path())
                .unwrap_err()
                .contains("built-in")
        );
        assert!(
            load(file("a,a\n1,2\n").path())
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            load(file("a\n").path())
                .unwrap_err()
                .contains("no data rows")
        );
        assert!(load(Path::new("/no/such/file.csv")).is_err());
    }
}
