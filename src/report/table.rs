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
