//! Scenario files: named, pre-configured load patterns (`scenarios/*.toml`, schema in
//! `scenarios/README.md`). The eight presets of the Auditor suite are embedded in the binary;
//! a file of the same name in `./scenarios/` or any path given wins, so teams copy and edit.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::table::Value;

use perfhost_core::plan::{
    format_duration, parse_duration, parse_rate, parse_threshold, ArrivalPlan, FieldError,
    LeakTables, LoadShape, RateStage, ScenarioRef, Stage, Threshold,
};

/// The presets, in the order `perfhost scenario list` shows them.
pub const PRESETS: [(&str, &str); 8] = [
    ("smoke", include_str!("../../../scenarios/smoke.toml")),
    ("baseline", include_str!("../../../scenarios/baseline.toml")),
    ("stress", include_str!("../../../scenarios/stress.toml")),
    ("spike", include_str!("../../../scenarios/spike.toml")),
    ("burst", include_str!("../../../scenarios/burst.toml")),
    ("heavy", include_str!("../../../scenarios/heavy.toml")),
    (
        "endurance",
        include_str!("../../../scenarios/endurance.toml"),
    ),
    ("soak", include_str!("../../../scenarios/soak.toml")),
];

/// What `--scenario all` runs, in order (as the suite's `scenarios.sh all`).
pub const ALL: [&str; 4] = ["smoke", "baseline", "stress", "burst"];

/// A scenario problem: one line naming the file, the line and the field.
pub type ScenarioError = FieldError;

/// A parsed, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Where it came from: a path or `built-in`.
    pub source: String,
    pub plugins: Option<Vec<String>>,
    pub user_classes: Vec<String>,
    /// Class weights overriding the plugins' own.
    pub weights: BTreeMap<String, u32>,
    pub users: Option<usize>,
    pub spawn_rate: Option<f64>,
    pub run_time: Option<Duration>,
    pub stages: Vec<Stage>,
    /// The open model's stages (`[[stages]] rate = "500/s"`), and its settings.
    pub rate_stages: Vec<RateStage>,
    /// `[rates]`: a constant arrival rate per class (arrivals/s).
    pub class_rates: Vec<(String, f64)>,
    pub start_rate: Option<f64>,
    pub rate: Option<String>,
    pub max_users: Option<usize>,
    pub pre_allocated_users: Option<usize>,
    pub arrivals: Option<String>,
    /// `http-version = "2"`: as `--http-version`.
    pub http_version: Option<String>,
    pub thresholds: Vec<Threshold>,
    pub config: BTreeMap<String, String>,
    pub report_html: bool,
    pub report_csv: bool,
    /// The report files' stem (`[report] name`), when not the scenario's name.
    pub report_name: Option<String>,
    /// The memory verdict's tables (`[profile]`), when the scenario sets them.
    pub profile: Option<LeakTables>,
    /// Lines of fields checked only once plugins are loaded (unknown plugin, class, weight).
    pub plugins_line: Option<usize>,
    pub classes_line: Option<usize>,
    pub weights_line: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ScenarioFile {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    plugins: Option<Spanned<Vec<String>>>,
    user_classes: Option<Spanned<Vec<String>>>,
    weights: Option<Spanned<BTreeMap<String, i64>>>,
    users: Option<Spanned<i64>>,
    spawn_rate: Option<Spanned<f64>>,
    run_time: Option<Spanned<String>>,
    rate: Option<Spanned<String>>,
    start_rate: Option<Spanned<String>>,
    max_users: Option<Spanned<i64>>,
    pre_allocated_users: Option<Spanned<i64>>,
    arrivals: Option<Spanned<String>>,
    http_version: Option<Spanned<String>>,
    rates: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    stages: Vec<StageFile>,
    #[serde(default)]
    thresholds: Vec<Spanned<String>>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    report: ReportFile,
    profile: Option<LeakTables>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageFile {
    /// A closed-model stage: this many users…
    users: Option<Spanned<i64>>,
    /// …or an open-model stage: this arrival rate (`500/s`), reached linearly over the stage.
    rate: Option<Spanned<String>>,
    duration: Spanned<String>,
}

/// A scenario run writes what the Auditor suite's scenarios.sh wrote: the HTML report and the
/// CSV files beside the JSON result, unless the `[report]` table says otherwise.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportFile {
    #[serde(default = "yes")]
    html: bool,
    #[serde(default = "yes")]
    csv: bool,
    /// The report files' stem instead of the scenario's name (`smoke_test` for `smoke`).
    name: Option<String>,
}

fn yes() -> bool {
    true
}

impl Default for ReportFile {
    fn default() -> Self {
        ReportFile {
            html: true,
            csv: true,
            name: None,
        }
    }
}

/// Line number (1-based) of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// serde's type names in a parse error said in words: "expected usize" is "expected a whole
/// number, 0 or more".
fn plain_message(message: &str) -> String {
    const WORDS: [(&str, &str); 10] = [
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        (
            "expected a sequence",
            "expected a list, e.g. [\"a\", \"b\"]",
        ),
        (
            "expected a map",
            "expected a table, e.g. { key = \"value\" }",
        ),
        ("expected struct", "expected a table of"),
    ];
    let mut out = message.to_string();
    for (from, to) in WORDS {
        if let Some(at) = out.find(from) {
            // Only whole words: `expected u8` must not match inside `expected u64`.
            let end = at + from.len();
            if !out[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                out.replace_range(at..end, to);
            }
        }
    }
    // `invalid value: integer `-5`, expected …`: the value, then what was expected.
    if let Some(rest) = out.strip_prefix("invalid value: integer ") {
        out = rest.to_string();
    }
    out
}

/// A TOML parse error as one `FILE:LINE: field `X`: message` line.
pub fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> FieldError {
    let line = e.span().map(|s| line_of(text, s.start));
    let message = plain_message(e.message().trim());
    // The field: the name in an "unknown field" message, else the key on the error's line.
    let field = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
        .map(str::to_string)
        .or_else(|| {
            line.and_then(|l| text.lines().nth(l - 1))
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim().to_string())
        })
        .unwrap_or_else(|| "-".into());
    FieldError {
        file: file.to_string(),
        line,
        field,
        message,
    }
}

/// The text of a scenario file (a regular file of at most 1 MiB).
pub fn read_scenario(path: &Path) -> Result<String, ScenarioError> {
    perfhost_core::input::read_to_string(path, perfhost_core::input::Kind::Scenario).map_err(|e| {
        ScenarioError {
            file: path.display().to_string(),
            line: None,
            field: "-".into(),
            message: e.to_string(),
        }
    })
}

/// Loads a scenario by preset name, `./scenarios/NAME.toml`, or a path.
pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
    let as_path = Path::new(name_or_path);
    let local = Path::new("scenarios").join(format!("{name_or_path}.toml"));
    let (source, text) = if name_or_path.ends_with(".toml") || name_or_path.contains('/') {
        let text = read_scenario(as_path)?;
        (name_or_path.to_string(), text)
    } else if local.exists() {
        let text = read_scenario(&local)?;
        (local.display().to_string(), text)
    } else {
        match PRESETS.iter().find(|(n, _)| *n == name_or_path) {
            Some((n, text)) => (format!("scenarios/{n}.toml (built-in)"), text.to_string()),
            None => {
                return Err(ScenarioError {
                    file: name_or_path.to_string(),
                    line: None,
                    field: "-".into(),
                    message: format!(
                        "no such scenario — the presets are {}, `all`, or give a .toml path",
                        PRESETS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            }
        }
    };
    parse(&source, &text)
}

/// Parses and validates scenario text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let err = |span: Option<Range<usize>>, field: &str, message: String| ScenarioError {
        file: file.to_string(),
        line: span.map(|s| line_of(text, s.start)),
        field: field.to_string(),
        message,
    };
    let raw: ScenarioFile = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;

    let positive = |v: &Spanned<i64>, field: &str| -> Result<usize, ScenarioError> {
        if *v.get_ref() < 0 {
            return Err(err(
                Some(v.span()),
                field,
                format!("{} is negative — give a number of users ≥ 0", v.get_ref()),
            ));
        }
        Ok(*v.get_ref() as usize)
    };
    let duration = |v: &Spanned<String>, field: &str| -> Result<Duration, ScenarioError> {
        parse_duration(v.get_ref()).map_err(|m| err(Some(v.span()), field, m.to_string()))
    };

    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(err(
            Some(raw.name.span()),
            "name",
            "use letters, digits, - and _ (it names report files)".into(),
        ));
    }
    let users = match &raw.users {
        Some(u) if *u.get_ref() < 1 => {
            return Err(err(
                Some(u.span()),
                "users",
                format!("{} — the number of users must be at least 1", u.get_ref()),
            ))
        }
        Some(u) => Some(*u.get_ref() as usize),
        None => None,
    };
    // The settings a run also takes from flags are checked by their row of the settings table.
    let checked = |key: &str, span: Range<usize>, value: Value| -> Result<Value, ScenarioError> {
        let row = super::table::find(key).expect("a row of the settings table");
        (row.check)(&value).map_err(|m| err(Some(span), key, m))?;
        Ok(value)
    };
    let http_version = match &raw.http_version {
        Some(v) => {
            checked("http-version", v.span(), Value::Text(v.get_ref().clone()))?;
            Some(v.get_ref().clone())
        }
        None => None,
    };
    let spawn_rate = match &raw.spawn_rate {
        Some(r) => {
            checked("spawn-rate", r.span(), Value::Number(*r.get_ref()))?;
            Some(*r.get_ref())
        }
        None => None,
    };
    let run_time = raw
        .run_time
        .as_ref()
        .map(|t| duration(t, "run-time"))
        .transpose()?;
    let rate = |v: &Spanned<String>, field: &str| -> Result<f64, ScenarioError> {
        parse_rate(v.get_ref()).map_err(|m| err(Some(v.span()), field, m))
    };
    let mut stages = Vec::new();
    let mut rate_stages = Vec::new();
    for stage in &raw.stages {
        let d = duration(&stage.duration, "stages.duration")?;
        match (&stage.users, &stage.rate) {
            (Some(users), None) => stages.push(Stage {
                users: positive(users, "stages.users")?,
                duration: d,
            }),
            (None, Some(r)) => rate_stages.push(RateStage {
                per_s: rate(r, "stages.rate")?,
                duration: d,
            }),
            _ => {
                return Err(err(
                    Some(stage.duration.span()),
                    "stages",
                    "give a stage either `users` (closed model) or `rate` (open model, e.g. rate = \"500/s\")".into(),
                ))
            }
        }
    }
    let total: Duration = stages
        .iter()
        .map(|s| s.duration)
        .chain(rate_stages.iter().map(|s| s.duration))
        .sum();
    if total > perfhost_core::plan::MAX_DURATION {
        return Err(err(
            raw.stages.first().map(|s| s.duration.span()),
            "stages",
            format!(
                "the stages add up to {} ({:.1} days), longer than the maximum run of 30 days — shorten them",
                perfhost_core::plan::format_duration(total),
                total.as_secs_f64() / 86400.0
            ),
        ));
    }
    if !stages.is_empty() && !rate_stages.is_empty() {
        return Err(err(
            raw.stages.first().map(|s| s.duration.span()),
            "stages",
            "mixes `users` and `rate` stages: a scenario is either closed (users) or open (rate)"
                .into(),
        ));
    }
    let count = |v: &Option<Spanned<i64>>, field: &str| -> Result<Option<usize>, ScenarioError> {
        match v {
            Some(n) if *n.get_ref() < 1 => {
                Err(err(Some(n.span()), field, "must be at least 1".into()))
            }
            Some(n) => {
                checked(field, n.span(), Value::Count(*n.get_ref() as u64))?;
                Ok(Some(*n.get_ref() as usize))
            }
            None => Ok(None),
        }
    };
    let mut class_rates = Vec::new();
    if let Some(table) = &raw.rates {
        for (class, text) in table.get_ref() {
            let per_s = parse_rate(text)
                .map_err(|m| err(Some(table.span()), "rates", format!("{class}: {m}")))?;
            class_rates.push((class.clone(), per_s));
        }
        if !rate_stages.is_empty() || !stages.is_empty() {
            return Err(err(
                Some(table.span()),
                "rates",
                "per-class rates are constant for the run: give `run-time`, not `[[stages]]`"
                    .into(),
            ));
        }
    }
    let max_users = count(&raw.max_users, "max-users")?;
    let pre_allocated_users = count(&raw.pre_allocated_users, "pre-allocated-users")?;
    let start_rate = raw
        .start_rate
        .as_ref()
        .map(|r| rate(r, "start-rate"))
        .transpose()?;
    if let Some(r) = &raw.rate {
        checked("rate", r.span(), Value::Text(r.get_ref().clone()))?;
    }
    let arrivals = match &raw.arrivals {
        Some(a) => Some(
            checked("arrivals", a.span(), Value::Text(a.get_ref().clone()))
                .map(|_| a.get_ref().clone())?,
        ),
        None => None,
    };
    if let Some(t) = &raw.run_time {
        checked(
            "run-time",
            t.span(),
            Value::Duration(duration(t, "run-time")?),
        )?;
    }
    let mut weights = BTreeMap::new();
    if let Some(w) = &raw.weights {
        for (class, weight) in w.get_ref() {
            if !(0..=u32::MAX as i64).contains(weight) {
                return Err(err(
                    Some(w.span()),
                    "weights",
                    format!("weight of {class} must be 0 or more"),
                ));
            }
            weights.insert(class.clone(), *weight as u32);
        }
    }
    let mut thresholds = Vec::new();
    for t in &raw.thresholds {
        thresholds.push(
            parse_threshold(t.get_ref())
                .map_err(|m| err(Some(t.span()), "thresholds", m.to_string()))?,
        );
    }
    Ok(Scenario {
        name,
        description: raw.description.trim().to_string(),
        source: file.to_string(),
        plugins_line: raw.plugins.as_ref().map(|p| line_of(text, p.span().start)),
        plugins: raw.plugins.map(|p| p.into_inner()),
        classes_line: raw
            .user_classes
            .as_ref()
            .map(|p| line_of(text, p.span().start)),
        user_classes: raw.user_classes.map(|c| c.into_inner()).unwrap_or_default(),
        weights_line: raw.weights.as_ref().map(|w| line_of(text, w.span().start)),
        weights,
        users,
        spawn_rate,
        run_time,
        stages,
        rate_stages,
        class_rates,
        start_rate,
        rate: raw.rate.map(|r| r.into_inner()),
        max_users,
        pre_allocated_users,
        arrivals,
        http_version,
        thresholds,
        config: raw.config,
        report_html: raw.report.html,
        report_csv: raw.report.csv,
        report_name: raw.report.name,
        profile: raw.profile,
    })
}

impl Scenario {
    /// The classes this scenario runs, for `scenario list` ("all" when not restricted).
    pub fn classes_label(&self) -> String {
        if self.user_classes.is_empty() {
            match &self.plugins {
                None => "all three".into(),
                Some(p) => p.join(", "),
            }
        } else {
            self.user_classes.join(", ")
        }
    }

    /// Where this scenario and its fields are, for the plan.
    pub fn reference(&self) -> ScenarioRef {
        ScenarioRef {
            name: self.name.clone(),
            source: self.source.clone(),
            plugins_line: self.plugins_line,
            classes_line: self.classes_line,
            weights_line: self.weights_line,
        }
    }

    /// Total length: the stages', else the run time.
    pub fn duration(&self) -> Option<Duration> {
        if !self.stages.is_empty() {
            Some(self.stages.iter().map(|s| s.duration).sum())
        } else if !self.rate_stages.is_empty() {
            Some(self.rate_stages.iter().map(|s| s.duration).sum())
        } else {
            self.run_time
        }
    }
}

/// `perfhost scenario list` as a table.
pub fn list_table() -> Result<String, ScenarioError> {
    let mut out = format!(
        "{:<10} {:>6} {:>9} {:>10}  {:<24} {}\n",
        "name", "users", "spawn/s", "duration", "classes", "description"
    );
    for (name, _) in PRESETS {
        let s = load(name)?;
        out.push_str(&format!(
            "{:<10} {:>6} {:>9} {:>10}  {:<24} {}\n",
            s.name,
            s.users
                .or(s.stages.iter().map(|st| st.users).max())
                .map(|u| u.to_string())
                .unwrap_or_else(|| "-".into()),
            s.spawn_rate
                .map(|r| format!("{r}"))
                .unwrap_or_else(|| "-".into()),
            s.duration()
                .map(format_duration)
                .unwrap_or_else(|| "-".into()),
            s.classes_label(),
            s.description
        ));
    }
    out.push_str(&format!(
        "{:<10} {:>6} {:>9} {:>10}  {:<24} {}\n",
        "all", "", "", "", "", "smoke, baseline, stress and burst in order, one summary at the end"
    ));
    Ok(out)
}

/// The user/time curve of a shape, as text (for `--dry-run`).
pub fn curve(shape: &LoadShape, run_time: Duration) -> String {
    let points = 20usize;
    let max = shape.max_users().max(1);
    let mut out = String::from("time        users\n");
    for i in 0..=points {
        let t = run_time.mul_f64(i as f64 / points as f64);
        let users = shape.target(t.min(run_time.saturating_sub(Duration::from_millis(1))));
        let bar = "█".repeat((users * 40).div_ceil(max));
        out.push_str(&format!(
            "{:>8}  {:>7}  {bar}\n",
            format_duration(Duration::from_secs(t.as_secs())),
            users
        ));
    }
    out
}

/// The rate/time curve of an open-model plan, as text (for `--dry-run`).
pub fn rate_curve(open: &ArrivalPlan, run_time: Duration) -> String {
    let points = 20usize;
    let max = open
        .stages
        .iter()
        .map(|s| s.per_s)
        .fold(open.start_per_s, f64::max)
        .max(1e-9);
    let mut out = format!(
        "time     arrivals/s   (≈ {:.0} arrivals in all)\n",
        open.expected_arrivals()
    );
    for i in 0..=points {
        let t = run_time.mul_f64(i as f64 / points as f64);
        let rate = open.rate_at(t.min(run_time.saturating_sub(Duration::from_millis(1))));
        let bar = "█".repeat((rate / max * 40.0).ceil() as usize);
        out.push_str(&format!(
            "{:>8}  {:>9.1}  {bar}\n",
            format_duration(Duration::from_secs(t.as_secs())),
            rate
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        parse("bad.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn malformed_files_name_file_line_and_field() {
        assert_eq!(error_of("name = \"x\"\nuserz = 3\n"), "bad.toml:2: field `userz`: unknown field `userz`, expected one of `name`, `description`, `plugins`, `user-classes`, `weights`, `users`, `spawn-rate`, `run-time`, `rate`, `start-rate`, `max-users`, `pre-allocated-users`, `arrivals`, `http-version`, `rates`, `stages`, `thresholds`, `config`, `report`, `profile`");
        assert!(error_of("name = \"x\"\n\nusers = \"ten\"\n")
            .starts_with("bad.toml:3: field `users`: invalid type"));
        assert_eq!(
            error_of("name = \"x\"\nusers = -5\n"),
            "bad.toml:2: field `users`: -5 — the number of users must be at least 1"
        );
        assert!(error_of("name = \"x\"\nrun-time = \"5 minutes\"\n")
            .starts_with("bad.toml:2: field `run-time`: `5 minutes` is not a duration"));
        assert!(
            error_of("name = \"x\"\n[[stages]]\nusers = 5\nduration = \"zz\"\n")
                .starts_with("bad.toml:4: field `stages.duration`")
        );
        assert!(error_of("name = \"x\"\nthresholds = [\"p95 about 3\"]\n")
            .starts_with("bad.toml:2: field `thresholds`"));
        assert!(error_of("description = \"no name\"\n").contains("missing field `name`"));
    }
}
