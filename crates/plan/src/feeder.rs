//! Data feeders: rows of test data (users, products) read once, shared
//! read-only by every worker, one row per flow iteration.

use crate::Slot;

/// How rows are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// In order, starting over at the end.
    Sequential,
    /// Uniformly at random, with repeats.
    Random,
    /// In order, each row at most once in the whole run; when they run out,
    /// no new sessions start.
    Unique,
}

/// A table of rows whose columns become variables `NAME.COLUMN`.
#[derive(Debug, Clone)]
pub struct Feeder {
    /// The feeder's name (the variables' prefix).
    pub name: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<String>>,
    /// How rows are handed out.
    pub pick: Pick,
    /// The variable slot of each column.
    pub slots: Vec<Slot>,
}

impl Feeder {
    /// The row for a worker's `n`-th draw (from 0), or `None` when a unique
    /// feeder has no row left for it. Worker `w` of `workers` takes rows
    /// `w, w + workers, w + 2 * workers, ...`, so workers never share a
    /// unique row and together use them all.
    pub fn row(
        &self,
        worker: usize,
        workers: usize,
        n: u64,
        rng: &mut fastrand::Rng,
    ) -> Option<&[String]> {
        if self.rows.is_empty() {
            return None;
        }
        let len = self.rows.len() as u64;
        let index = match self.pick {
            Pick::Random => rng.u64(..len),
            Pick::Sequential => (worker as u64 + n * workers as u64) % len,
            Pick::Unique => {
                let i = worker as u64 + n * workers as u64;
                if i >= len {
                    return None;
                }
                i
            }
        };
        self.rows.get(index as usize).map(Vec::as_slice)
    }
}

/// A data file could not be read as a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    /// 1-based line in the data file, when known.
    pub line: Option<u64>,
    /// What is wrong.
    pub message: String,
}

/// Reads CSV with a header row.
pub fn parse_csv(bytes: &[u8]) -> Result<(Vec<String>, Vec<Vec<String>>), DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| DataError {
            line: Some(1),
            message: e.to_string(),
        })?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if columns.is_empty() || columns.iter().any(String::is_empty) {
        return Err(DataError {
            line: Some(1),
            message: "the first line must name every column".into(),
        });
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| DataError {
            line: e.position().map(|p| p.line()),
            message: e.to_string(),
        })?;
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok((columns, rows))
}

/// Reads JSON lines: one object per line; columns are the first object's
/// keys; strings as their content, other values as JSON text.
pub fn parse_jsonl(bytes: &[u8]) -> Result<(Vec<String>, Vec<Vec<String>>), DataError> {
    let text = std::str::from_utf8(bytes).map_err(|_| DataError {
        line: None,
        message: "not UTF-8 text".into(),
    })?;
    let mut columns: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| DataError {
            line: Some(line_no),
            message: format!("not JSON: {e}"),
        })?;
        let serde_json::Value::Object(map) = value else {
            return Err(DataError {
                line: Some(line_no),
                message: "each line must be a JSON object".into(),
            });
        };
        if columns.is_empty() {
            columns = map.keys().cloned().collect();
        }
        let row = columns
            .iter()
            .map(|c| match map.get(c) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            })
            .collect();
        rows.push(row);
    }
    Ok((columns, rows))
}
