//! soak's own CSV files (`timeseries.csv`, `memory.csv`) read back for the HTML report.

/// A CSV file as written by soak (no quoted commas): header and rows.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Parses soak's own CSV text.
    pub fn parse(text: &str) -> Table {
        let mut lines = text.lines();
        let header = lines
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::to_string)
            .collect();
        let rows = lines
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect();
        Table { header, rows }
    }

    /// Adds one row, a line of soak's own CSV (the live dashboard's tables grow so).
    pub fn push_line(&mut self, line: &str) {
        let line = line.trim_end_matches(['\n', '\r']);
        if self.header.is_empty() {
            self.header = line.split(',').map(str::to_string).collect();
        } else {
            self.rows
                .push(line.split(',').map(str::to_string).collect());
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Keeps every other row (the first and the last always) once there are more than
    /// `max`, so a table fed for hours stays about `max` rows long: a live chart of a
    /// 4-hour soak draws ~`max` points, not 14,400.
    pub fn thin(&mut self, max: usize) {
        if self.rows.len() <= max.max(2) {
            return;
        }
        let last = self.rows.len() - 1;
        let mut i = 0;
        self.rows.retain(|_| {
            let keep = i % 2 == 0 || i == last;
            i += 1;
            keep
        });
    }

    /// `(elapsed_s, column)` for every row where the column is a number.
    pub fn series(&self, column: &str) -> Vec<(f64, f64)> {
        let (Some(x), Some(y)) = (self.index("elapsed_s"), self.index(column)) else {
            return Vec::new();
        };
        self.rows
            .iter()
            .filter_map(|r| Some((r.get(x)?.parse().ok()?, r.get(y)?.parse().ok()?)))
            .collect()
    }

    fn index(&self, column: &str) -> Option<usize> {
        self.header.iter().position(|h| h == column)
    }
}
