//! Test data for plugins without a filesystem (`--data NAME=FILE[:MODE]`): CSV with a header
//! row or JSON lines, loaded by the host and handed out row by row as JSON object texts —
//! shared round-robin, unique (each row once), or per-user (each user walks its own cursor).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How rows are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMode {
    /// All users share one cursor that wraps around (Gatling's `circular`).
    Shared,
    /// Every row once in the whole run; then `exhausted`.
    Unique,
    /// Every user walks the rows from its own start (user id), wrapping around.
    PerUser,
}

/// Problems with a `--data` argument or file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The argument is not `NAME=FILE[:MODE]`; holds it.
    #[error(
        "bad --data `{0}`: expected NAME=FILE or NAME=FILE:MODE with MODE shared|unique|per-user"
    )]
    Syntax(String),
    /// The file could not be read.
    #[error("{0}")]
    Read(#[from] crate::input::InputError),
    /// A line is not valid CSV or JSON, or the header is bad.
    #[error("data file {path} line {line}: {message}")]
    Parse {
        /// The data file.
        path: PathBuf,
        /// The line, 1-based.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The file holds no data rows; holds its path.
    #[error("data file {0} has no rows")]
    Empty(PathBuf),
}

/// Why no row was returned.
#[derive(Debug, PartialEq, Eq)]
pub enum NextError {
    /// No data set has that name.
    Unknown,
    /// A `unique` set has handed out every row.
    Exhausted,
}

struct DataSet {
    rows: Vec<String>,
    mode: DataMode,
    cursor: AtomicUsize,
    per_user: Mutex<HashMap<u64, usize>>,
}

/// All data sets of a run.
pub struct DataSets {
    sets: HashMap<String, DataSet>,
    /// A shard's unique rows: the k-th row it takes is global row k × stride + offset.
    stride: usize,
    offset: usize,
}

impl Default for DataSets {
    fn default() -> Self {
        DataSets {
            sets: HashMap::new(),
            stride: 1,
            offset: 0,
        }
    }
}

impl DataSets {
    /// Parses `NAME=FILE[:MODE]` arguments and loads the files.
    pub fn load(specs: &[String]) -> Result<Self, DataError> {
        let mut sets = HashMap::new();
        for spec in specs {
            let (name, rest) = spec
                .split_once('=')
                .ok_or_else(|| DataError::Syntax(spec.clone()))?;
            let (file, mode) = match rest.rsplit_once(':') {
                Some((file, "shared")) => (file, DataMode::Shared),
                Some((file, "unique")) => (file, DataMode::Unique),
                Some((file, "per-user")) => (file, DataMode::PerUser),
                _ => (rest, DataMode::Shared),
            };
            if name.is_empty() || file.is_empty() {
                return Err(DataError::Syntax(spec.clone()));
            }
            let rows = load_rows(Path::new(file))?;
            sets.insert(name.to_string(), DataSet::new(rows, mode));
        }
        Ok(DataSets {
            sets,
            ..Default::default()
        })
    }

    /// A shard's view: of each `unique` set it takes the rows k ≡ index (mod count), so the
    /// shards together use every row once.
    pub fn for_shard(mut self, shard: Option<crate::plan::ShardPlan>) -> Self {
        if let Some(shard) = shard {
            (self.stride, self.offset) = (shard.count, shard.index);
        }
        self
    }

    /// Adds a data set from rows already in memory (tests, scenarios).
    pub fn insert(&mut self, name: &str, rows: Vec<String>, mode: DataMode) {
        self.sets.insert(name.to_string(), DataSet::new(rows, mode));
    }

    /// The data sets' names, in no order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sets.keys().map(String::as_str)
    }

    /// The next row of `name` for user `user_id`.
    pub fn next(&self, name: &str, user_id: u64) -> Result<String, NextError> {
        let set = self.sets.get(name).ok_or(NextError::Unknown)?;
        let len = set.rows.len();
        let index = match set.mode {
            DataMode::Shared => set.cursor.fetch_add(1, Ordering::Relaxed) % len,
            DataMode::Unique => {
                let i = set.cursor.fetch_add(1, Ordering::Relaxed) * self.stride + self.offset;
                if i >= len {
                    return Err(NextError::Exhausted);
                }
                i
            }
            DataMode::PerUser => {
                let mut cursors = set.per_user.lock().unwrap_or_else(|p| p.into_inner());
                let cursor = cursors.entry(user_id).or_insert((user_id as usize) % len);
                let i = *cursor;
                *cursor = (i + 1) % len;
                i
            }
        };
        Ok(set.rows[index].clone())
    }
}

impl DataSet {
    fn new(rows: Vec<String>, mode: DataMode) -> Self {
        DataSet {
            rows,
            mode,
            cursor: AtomicUsize::new(0),
            per_user: Mutex::new(HashMap::new()),
        }
    }
}

/// Reads a CSV (header row; every row becomes an object of strings) or JSON-lines file.
fn load_rows(path: &Path) -> Result<Vec<String>, DataError> {
    let text = crate::input::read_to_string(path, crate::input::Kind::Data)?;
    let is_jsonl = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "ndjson" | "json")
    );
    let rows = if is_jsonl {
        parse_json_lines(path, &text)?
    } else {
        parse_csv(path, &text)?
    };
    if rows.is_empty() {
        return Err(DataError::Empty(path.into()));
    }
    Ok(rows)
}

fn parse_json_lines(path: &Path, text: &str) -> Result<Vec<String>, DataError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| DataError::Parse {
                path: path.into(),
                line: i + 1,
                message: e.to_string(),
            })?;
        rows.push(value.to_string());
    }
    Ok(rows)
}

fn parse_csv(path: &Path, text: &str) -> Result<Vec<String>, DataError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((header_line, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let columns = split_csv_line(header);
    for (i, column) in columns.iter().enumerate() {
        if let Some(first) = columns[..i].iter().position(|c| c == column) {
            return Err(DataError::Parse {
                path: path.into(),
                line: header_line + 1,
                message: format!(
                    "column `{}` appears twice in the header (columns {} and {}) — every column needs its own name",
                    crate::text::clip(column, 40),
                    first + 1,
                    i + 1
                ),
            });
        }
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        let fields = split_csv_line(line);
        if fields.len() != columns.len() {
            return Err(DataError::Parse {
                path: path.into(),
                line: i + 1,
                message: format!("{} fields, the header has {}", fields.len(), columns.len()),
            });
        }
        let object: serde_json::Map<String, serde_json::Value> = columns
            .iter()
            .cloned()
            .zip(fields.into_iter().map(serde_json::Value::String))
            .collect();
        rows.push(serde_json::Value::Object(object).to_string());
    }
    Ok(rows)
}

/// Splits one CSV line: commas, double-quoted fields with `""` escapes.
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_json_objects() {
        let rows = parse_csv(
            Path::new("x.csv"),
            "name,city\nanna,\"Berlin, DE\"\n\"bo \"\"b\"\"\",Köln\n",
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                r#"{"city":"Berlin, DE","name":"anna"}"#,
                r#"{"city":"Köln","name":"bo \"b\""}"#
            ]
        );
    }

    #[test]
    fn duplicate_columns_are_named() {
        let err = parse_csv(Path::new("x.csv"), "\n\nname,city,name\na,b,c\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.csv line 3")
                && err.contains("column `name` appears twice in the header (columns 1 and 3)"),
            "{err}"
        );
    }

    #[test]
    fn modes_hand_out_rows_as_documented() {
        let mut sets = DataSets::default();
        let rows: Vec<String> = (0..3).map(|i| i.to_string()).collect();
        sets.insert("u", rows.clone(), DataMode::Unique);
        sets.insert("s", rows.clone(), DataMode::Shared);
        sets.insert("p", rows, DataMode::PerUser);
        let unique: Vec<_> = (0..4).map(|_| sets.next("u", 0)).collect();
        assert_eq!(
            unique,
            vec![
                Ok("0".into()),
                Ok("1".into()),
                Ok("2".into()),
                Err(NextError::Exhausted)
            ]
        );
        let shared: Vec<_> = (0..4).map(|i| sets.next("s", i).unwrap()).collect();
        assert_eq!(shared, vec!["0", "1", "2", "0"]);
        assert_eq!(sets.next("p", 1).unwrap(), "1");
        assert_eq!(sets.next("p", 1).unwrap(), "2");
        assert_eq!(sets.next("p", 2).unwrap(), "2");
        assert_eq!(sets.next("nope", 0), Err(NextError::Unknown));
    }
}
