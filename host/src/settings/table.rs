//! The settings table: one row per setting a run takes from the command line, the
//! environment (`PERFHOST_<KEY>`), `perfhost.toml`, `locust.conf` and a scenario. A row says
//! how the setting's text is read, which flag and Locust key carry it, what its default is,
//! how its value is checked (once, on the merged value, so an error names where the value came
//! from) and how `--print-config` shows it. The readers of every source walk this table.

use std::path::PathBuf;
use std::time::Duration;

use perfhost_core::plan::{
    format_duration, format_size, parse_duration, parse_size, HttpVersion, Plan,
};

use super::RunArgs;

/// How a setting's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any text.
    Text,
    /// A whole number, 0 or more, at most `max`.
    Count { max: u64 },
    /// A number (`2.5`).
    Number,
    /// `90s`, `5m`, `1h30m`; a bare number is seconds.
    Duration,
    /// `16MiB`, `100MB`; a bare number is bytes.
    Size,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Flag,
    /// Several texts: a list in a file, comma-separated in the environment.
    List,
    /// A file's path.
    Path,
}

/// A setting's value, as one source gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Count(u64),
    Number(f64),
    Duration(Duration),
    Size(usize),
    Flag(bool),
    List(Vec<String>),
    Path(PathBuf),
}

/// One setting.
pub struct Setting {
    /// The `perfhost.toml` key; its environment variable is `PERFHOST_<KEY>` ([`env_var`]).
    pub key: &'static str,
    /// How its text is read.
    pub kind: Kind,
    /// The `perfhost run` flag that sets it.
    pub flag: &'static str,
    /// The `locust.conf` keys that set it (Locust's names), if Locust has it.
    pub locust: &'static [&'static str],
    /// The default, as the docs say it.
    pub default: &'static str,
    /// The flag's value from parsed arguments, when given.
    pub cli: fn(&RunArgs) -> Option<Value>,
    /// Refuses a value that cannot be used: what is wrong and what to write instead.
    pub check: fn(&Value) -> Result<(), String>,
    /// The resolved value's lines in `--print-config` (none: not shown for this plan).
    pub show: fn(&Plan) -> Vec<String>,
}

/// `PERFHOST_<KEY>`: the environment variable of a setting.
pub fn env_var(key: &str) -> String {
    format!("PERFHOST_{}", key.replace('-', "_").to_ascii_uppercase())
}

/// The row of `key`.
pub fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

impl Kind {
    /// Reads text as the environment and `locust.conf` give it.
    pub fn parse(self, text: &str) -> Result<Value, String> {
        let v = text.trim();
        Ok(match self {
            Kind::Text => Value::Text(text.to_string()),
            Kind::Count { max } => {
                let n: u64 = v.parse().map_err(|_| match v.parse::<f64>() {
                    Ok(n) if n < 0.0 => format!("`{v}` cannot be negative"),
                    Ok(_) if v.parse::<i128>().is_ok() => format!("`{v}` is too large"),
                    Ok(_) => format!("`{v}` is not a whole number"),
                    Err(_) => format!("`{v}` is not a number"),
                })?;
                if n > max {
                    return Err(format!("`{v}` is too large (at most {max})"));
                }
                Value::Count(n)
            }
            Kind::Number => Value::Number(v.parse().map_err(|_| format!("`{v}` is not a number"))?),
            Kind::Duration => Value::Duration(parse_duration(v).map_err(|e| e.to_string())?),
            Kind::Size => Value::Size(parse_size(v).map_err(|e| e.to_string())?),
            Kind::Flag => Value::Flag(match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" | "" => false,
                _ => return Err(format!("`{v}` is not true or false")),
            }),
            Kind::List => Value::List(v.split(',').map(|s| s.trim().to_string()).collect()),
            Kind::Path => Value::Path(PathBuf::from(v)),
        })
    }

    /// Reads a value of a TOML file: text as [`Kind::parse`] reads it, numbers and booleans
    /// and lists as themselves.
    pub fn from_toml(self, value: &toml::Value) -> Result<Value, String> {
        use toml::Value as T;
        match (self, value) {
            (Kind::Flag, T::Boolean(b)) => Ok(Value::Flag(*b)),
            (Kind::Count { .. }, T::Integer(n)) => self.parse(&n.to_string()),
            (Kind::Number, T::Integer(n)) => Ok(Value::Number(*n as f64)),
            (Kind::Number, T::Float(n)) => Ok(Value::Number(*n)),
            (Kind::Duration | Kind::Size, T::Integer(n)) => self.parse(&n.to_string()),
            (Kind::Duration, T::Float(n)) => self.parse(&n.to_string()),
            (Kind::List, T::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Value::List)
                .ok_or_else(|| "expected a list of texts, e.g. [\"a\", \"b\"]".to_string()),
            (Kind::Text | Kind::Path | Kind::Duration | Kind::Size, T::String(s)) => self.parse(s),
            _ => Err(format!("expected {}", self.expected())),
        }
    }

    /// What a value of this kind looks like, for an error.
    fn expected(self) -> &'static str {
        match self {
            Kind::Text => "a text",
            Kind::Count { .. } => "a whole number, 0 or more",
            Kind::Number => "a number",
            Kind::Duration => {
                "a duration such as \"90s\", \"5m\" or \"1h30m\", or a number of seconds"
            }
            Kind::Size => "a size such as \"16MiB\" or \"100MB\", or a number of bytes",
            Kind::Flag => "true or false",
            Kind::List => "a list of texts, e.g. [\"a\", \"b\"]",
            Kind::Path => "a file's path",
        }
    }
}

// The flag's value, as a `Value`.
fn text(v: &Option<String>) -> Option<Value> {
    v.clone().map(Value::Text)
}
fn count<T: Into<u64> + Copy>(v: Option<T>) -> Option<Value> {
    v.map(|n| Value::Count(n.into()))
}
fn usize_count(v: Option<usize>) -> Option<Value> {
    v.map(|n| Value::Count(n as u64))
}
fn duration(v: Option<Duration>) -> Option<Value> {
    v.map(Value::Duration)
}
fn flag(given: bool) -> Option<Value> {
    given.then_some(Value::Flag(true))
}
fn list(v: &[String]) -> Option<Value> {
    (!v.is_empty()).then(|| Value::List(v.to_vec()))
}
fn path(v: &Option<PathBuf>) -> Option<Value> {
    v.clone().map(Value::Path)
}

// Checks.
fn any(_: &Value) -> Result<(), String> {
    Ok(())
}
fn at_least_one(v: &Value) -> Result<(), String> {
    match v {
        Value::Count(0) => Err("must be at least 1".into()),
        _ => Ok(()),
    }
}
fn longer_than_zero(v: &Value) -> Result<(), String> {
    match v {
        Value::Duration(d) if d.is_zero() => Err("must be longer than 0s".into()),
        _ => Ok(()),
    }
}

// How `--print-config` shows a value.
fn line(text: impl Into<String>) -> Vec<String> {
    vec![text.into()]
}
fn yes_no(b: bool) -> Vec<String> {
    line(if b { "yes" } else { "no" })
}
fn shown_path(p: &Option<PathBuf>) -> Vec<String> {
    line(p.as_ref().map_or("-".into(), |p| p.display().to_string()))
}
fn joined(v: &[String], empty: &str) -> Vec<String> {
    line(if v.is_empty() {
        empty.to_string()
    } else {
        v.join(", ")
    })
}

/// Every setting, in `--print-config`'s order.
pub static SETTINGS: &[Setting] = &[
    Setting {
        key: "host",
        kind: Kind::Text,
        flag: "--host",
        locust: &["host"],
        default: "the built-in demo server",
        cli: |a| text(&a.host),
        check: |v| match v {
            Value::Text(url) => perfhost_core::plan::Target::parse(url)
                .map(drop)
                .map_err(|e| e.to_string()),
            _ => Ok(()),
        },
        show: |p| {
            line(
                p.target
                    .as_ref()
                    .map_or("built-in demo server".into(), |t| {
                        format!("{}{}", t.origin, t.base_path)
                    }),
            )
        },
    },
    Setting {
        key: "plugins",
        kind: Kind::List,
        flag: "--plugin",
        locust: &[],
        default: "auditor_user, burst_user, heavy_user",
        cli: |a| list(&a.plugins),
        check: any,
        show: |p| line(p.plugins.join(", ")),
    },
    Setting {
        key: "user-classes",
        kind: Kind::List,
        flag: "--user-class",
        locust: &[],
        default: "all",
        cli: |a| list(&a.user_classes),
        check: any,
        show: |p| joined(&p.classes.only, "all"),
    },
    Setting {
        key: "users",
        kind: Kind::Count {
            max: u32::MAX as u64,
        },
        flag: "--users",
        locust: &["users"],
        default: "10",
        cli: |a| usize_count(a.users),
        check: at_least_one,
        show: |p| match p.arrivals {
            Some(_) => vec![],
            None => line(p.max_users().to_string()),
        },
    },
    Setting {
        key: "spawn-rate",
        kind: Kind::Number,
        flag: "--spawn-rate",
        locust: &["spawn-rate", "hatch-rate"],
        default: "all users at once",
        cli: |a| a.spawn_rate.map(Value::Number),
        check: |v| match v {
            Value::Number(r) if !(*r > 0.0 && r.is_finite()) => {
                Err("must be a positive number of users per second".into())
            }
            _ => Ok(()),
        },
        show: |p| match p.arrivals {
            Some(_) => vec![],
            None => line(format!("{}/s", p.load.spawn_rate())),
        },
    },
    Setting {
        key: "rate",
        kind: Kind::Text,
        flag: "--rate",
        locust: &[],
        default: "- (the closed model)",
        cli: |a| text(&a.rate),
        check: |v| match v {
            Value::Text(t) => perfhost_core::plan::parse_rate(t).map(drop),
            _ => Ok(()),
        },
        show: |p| match &p.arrivals {
            Some(open) if open.class_rates.is_empty() => line(
                open.stages
                    .iter()
                    .map(|s| format!("{}/s over {}", s.per_s, format_duration(s.duration)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Some(open) => line(
                open.class_rates
                    .iter()
                    .map(|(c, r)| format!("{c} {r}/s"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            None => vec![],
        },
    },
    Setting {
        key: "max-users",
        kind: Kind::Count {
            max: u32::MAX as u64,
        },
        flag: "--max-users",
        locust: &[],
        default: "max(100, 1 s of arrivals)",
        cli: |a| usize_count(a.max_users),
        check: at_least_one,
        show: |p| {
            p.arrivals
                .as_ref()
                .map_or(vec![], |o| line(o.max_users.to_string()))
        },
    },
    Setting {
        key: "pre-allocated-users",
        kind: Kind::Count {
            max: u32::MAX as u64,
        },
        flag: "--pre-allocated-users",
        locust: &[],
        default: "0.1 s of arrivals",
        cli: |a| usize_count(a.pre_allocated_users),
        check: any,
        show: |p| {
            p.arrivals
                .as_ref()
                .map_or(vec![], |o| line(o.pre_allocated.to_string()))
        },
    },
    Setting {
        key: "arrivals",
        kind: Kind::Text,
        flag: "--arrivals",
        locust: &[],
        default: "even",
        cli: |a| text(&a.arrivals),
        check: |v| match v {
            Value::Text(t) if t != "even" && t != "poisson" => {
                Err(format!("`{t}` is not a spacing: use even or poisson"))
            }
            _ => Ok(()),
        },
        show: |p| {
            p.arrivals
                .as_ref()
                .map_or(vec![], |o| line(if o.poisson { "poisson" } else { "even" }))
        },
    },
    Setting {
        key: "run-time",
        kind: Kind::Duration,
        flag: "--run-time",
        locust: &["run-time"],
        default: "60s (none with --iterations)",
        cli: |a| duration(a.run_time),
        check: longer_than_zero,
        show: |p| {
            line(
                p.stop
                    .run_time
                    .map_or("until -n is reached".into(), format_duration),
            )
        },
    },
    Setting {
        key: "iterations",
        kind: Kind::Count { max: u64::MAX },
        flag: "--iterations",
        locust: &["iterations"],
        default: "-",
        cli: |a| count(a.iterations),
        check: at_least_one,
        show: |p| line(p.stop.iterations.map_or("-".into(), |n| n.to_string())),
    },
    Setting {
        key: "stop-timeout",
        kind: Kind::Duration,
        flag: "--stop-timeout",
        locust: &["stop-timeout"],
        default: "10s",
        cli: |a| duration(a.stop_timeout),
        check: any,
        show: |p| line(format_duration(p.stop.stop_timeout)),
    },
    Setting {
        key: "seed",
        kind: Kind::Count { max: u64::MAX },
        flag: "--seed",
        locust: &["seed"],
        default: "from the clock (shards: from --start-at)",
        cli: |a| count(a.seed),
        check: any,
        show: |p| line(p.seed.to_string()),
    },
    Setting {
        key: "request-timeout",
        kind: Kind::Duration,
        flag: "--request-timeout",
        locust: &[],
        default: "30s",
        cli: |a| duration(a.request_timeout),
        check: longer_than_zero,
        show: |p| line(format_duration(p.client.request_timeout)),
    },
    Setting {
        key: "insecure",
        kind: Kind::Flag,
        flag: "--insecure",
        locust: &[],
        default: "no",
        cli: |a| flag(a.insecure),
        check: any,
        show: |p| yes_no(p.client.insecure),
    },
    Setting {
        key: "ca-cert",
        kind: Kind::Path,
        flag: "--ca-cert",
        locust: &[],
        default: "-",
        cli: |a| path(&a.ca_cert),
        check: any,
        show: |p| shown_path(&p.client.ca_cert),
    },
    Setting {
        key: "max-body-size",
        kind: Kind::Size,
        flag: "--max-body-size",
        locust: &[],
        default: "16MiB",
        cli: |a| a.max_body_size.map(Value::Size),
        check: |v| match v {
            Value::Size(0) => Err(
                "must be at least 1 byte (plugins that never read bodies use discard-body)".into(),
            ),
            _ => Ok(()),
        },
        show: |p| line(format_size(p.client.max_body_size)),
    },
    Setting {
        key: "http-version",
        kind: Kind::Text,
        flag: "--http-version",
        locust: &[],
        default: "auto",
        cli: |a| text(&a.http_version),
        check: |v| match v {
            Value::Text(version) if HttpVersion::parse(version).is_none() => Err(format!(
                "`{version}` is not an HTTP version — use auto, 1.1 or 2"
            )),
            _ => Ok(()),
        },
        show: |p| line(p.client.http_version.as_str().to_string()),
    },
    Setting {
        key: "cpu-budget",
        kind: Kind::Duration,
        flag: "--cpu-budget",
        locust: &[],
        default: "1s",
        cli: |a| duration(a.cpu_budget),
        check: |v| {
            match v {
            Value::Duration(d) if *d < Duration::from_millis(10) => Err(
                "must be at least 10ms (a budget shorter than that stops honest plugins on a busy machine)".into(),
            ),
            _ => Ok(()),
        }
        },
        show: |p| line(format_duration(p.limits.cpu_budget)),
    },
    Setting {
        key: "memory-cap-mib",
        kind: Kind::Count { max: u64::MAX },
        flag: "--memory-cap-mib",
        locust: &[],
        default: "1024",
        cli: |a| usize_count(a.memory_cap_mib),
        check: |v| match v {
            Value::Count(0) => Err("must be at least 1".into()),
            Value::Count(n)
                if usize::try_from(*n)
                    .ok()
                    .and_then(|n| n.checked_mul(1 << 20))
                    .is_none() =>
            {
                Err("is more memory than this machine can address".into())
            }
            _ => Ok(()),
        },
        show: |p| line((p.limits.memory_cap >> 20).to_string()),
    },
    Setting {
        key: "reset-stats",
        kind: Kind::Flag,
        flag: "--reset-stats",
        locust: &["reset-stats"],
        default: "no",
        cli: |a| flag(a.reset_stats),
        check: any,
        show: |p| yes_no(p.reset_stats),
    },
    Setting {
        key: "trace",
        kind: Kind::Flag,
        flag: "--trace",
        locust: &[],
        default: "no",
        cli: |a| flag(a.trace),
        check: any,
        show: |p| yes_no(p.trace),
    },
    Setting {
        key: "log-level",
        kind: Kind::Text,
        flag: "--loglevel",
        locust: &["loglevel", "log-level"],
        default: "INFO",
        cli: |a| text(&a.log_level),
        check: |v| match v {
            Value::Text(level) if super::normalize_log_level(level).is_none() => Err(format!(
                "`{level}` is not a level — use DEBUG, INFO, WARNING or ERROR"
            )),
            _ => Ok(()),
        },
        show: |p| line(p.log_level.clone()),
    },
    Setting {
        key: "run-name",
        kind: Kind::Text,
        flag: "--run-name",
        locust: &[],
        default: "run (a scenario's name)",
        cli: |a| text(&a.run_name),
        check: |v| match v {
            Value::Text(name) => perfhost_core::outfile::check_run_name(name),
            _ => Ok(()),
        },
        show: |p| line(p.outputs.run_name.clone()),
    },
    Setting {
        key: "json-file",
        kind: Kind::Path,
        flag: "--json-file",
        locust: &["json-file"],
        default: "reports/<run-name>_<time>.json",
        cli: |a| path(&a.json_file),
        check: any,
        show: |p| shown_path(&p.outputs.json_file),
    },
    Setting {
        key: "csv",
        kind: Kind::Path,
        flag: "--csv",
        locust: &["csv"],
        default: "-",
        cli: |a| path(&a.csv),
        check: any,
        show: |p| shown_path(&p.outputs.csv),
    },
    Setting {
        key: "csv-full-history",
        kind: Kind::Flag,
        flag: "--csv-full-history",
        locust: &["csv-full-history"],
        default: "no",
        cli: |a| flag(a.csv_full_history),
        check: any,
        show: |p| yes_no(p.outputs.csv_full_history),
    },
    Setting {
        key: "html",
        kind: Kind::Path,
        flag: "--html",
        locust: &["html"],
        default: "-",
        cli: |a| path(&a.html),
        check: any,
        show: |p| shown_path(&p.outputs.html),
    },
    Setting {
        key: "junit",
        kind: Kind::Path,
        flag: "--junit",
        locust: &[],
        default: "-",
        cli: |a| path(&a.junit),
        check: any,
        show: |p| shown_path(&p.outputs.junit),
    },
    Setting {
        key: "only-summary",
        kind: Kind::Flag,
        flag: "--only-summary",
        locust: &["only-summary"],
        default: "no",
        cli: |a| flag(a.only_summary),
        check: any,
        show: |p| yes_no(p.outputs.only_summary),
    },
    Setting {
        key: "print-stats",
        kind: Kind::Flag,
        flag: "--print-stats",
        locust: &["print-stats"],
        default: "no",
        cli: |a| flag(a.print_stats),
        check: any,
        show: |p| yes_no(p.outputs.print_stats),
    },
    Setting {
        key: "exit-code-on-error",
        kind: Kind::Count {
            max: u8::MAX as u64,
        },
        flag: "--exit-code-on-error",
        locust: &["exit-code-on-error"],
        default: "1",
        cli: |a| count(a.exit_code_on_error),
        check: any,
        show: |p| line(p.outputs.exit_code_on_error.to_string()),
    },
    Setting {
        key: "data",
        kind: Kind::List,
        flag: "--data",
        locust: &[],
        default: "-",
        cli: |a| list(&a.data),
        check: any,
        show: |p| joined(&p.data, "-"),
    },
    Setting {
        key: "thresholds",
        kind: Kind::List,
        flag: "--threshold",
        locust: &[],
        default: "-",
        cli: |a| list(&a.thresholds),
        check: |v| match v {
            Value::List(rules) => rules.iter().try_for_each(|rule| {
                perfhost_core::plan::parse_threshold(rule)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }),
            _ => Ok(()),
        },
        show: |p| p.thresholds.iter().map(|t| t.text.clone()).collect(),
    },
    Setting {
        key: "web-host",
        kind: Kind::Text,
        flag: "--web-host",
        locust: &["web-host"],
        default: "127.0.0.1",
        cli: |a| text(&a.web_host),
        check: any,
        show: |p| {
            p.outputs
                .metrics
                .as_ref()
                .map_or(vec![], |m| line(m.addr.ip().to_string()))
        },
    },
    Setting {
        key: "web-port",
        kind: Kind::Count {
            max: u16::MAX as u64,
        },
        flag: "--web-port",
        locust: &["web-port"],
        default: "8089",
        cli: |a| count(a.web_port),
        check: any,
        show: |p| {
            p.outputs
                .metrics
                .as_ref()
                .map_or(vec![], |m| line(m.addr.port().to_string()))
        },
    },
];

/// The settings reference of docs/settings.md, written from the table (a test keeps the page
/// equal to it).
pub fn markdown() -> String {
    let mut out = String::from(
        "| Setting (`perfhost.toml`) | Flag | Environment | `locust.conf` | Default |\n|---|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let mut env = format!("`{}`", env_var(s.key));
        if s.key == "host" {
            env.push_str(", `LOAD_TEST_HOST`");
        }
        let locust = if s.locust.is_empty() {
            "-".to_string()
        } else {
            s.locust
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| `{}` | `{}` | {env} | {locust} | {} |\n",
            s.key, s.flag, s.default
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_each_kind_reads_its_text() {
        let mut keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SETTINGS.len());
        for s in SETTINGS {
            assert!(s.flag.starts_with("--"), "{}", s.key);
        }
        let count = Kind::Count { max: 255 };
        assert_eq!(count.parse("3"), Ok(Value::Count(3)));
        assert_eq!(count.parse("-3").unwrap_err(), "`-3` cannot be negative");
        assert_eq!(
            count.parse("2.5").unwrap_err(),
            "`2.5` is not a whole number"
        );
        assert_eq!(
            count.parse("300").unwrap_err(),
            "`300` is too large (at most 255)"
        );
        assert_eq!(Kind::Flag.parse("yes"), Ok(Value::Flag(true)));
        assert!(Kind::Flag.parse("maybe").is_err());
        assert_eq!(
            Kind::List.parse("a, b"),
            Ok(Value::List(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            Kind::Duration.from_toml(&toml::Value::Integer(90)),
            Ok(Value::Duration(Duration::from_secs(90)))
        );
        assert_eq!(
            Kind::Flag
                .from_toml(&toml::Value::String("x".into()))
                .unwrap_err(),
            "expected true or false"
        );
    }

    /// docs/settings.md lists the table as it is.
    #[test]
    fn the_settings_page_lists_the_table() {
        let page = include_str!("../../../docs/settings.md");
        assert!(
            page.contains(&markdown()),
            "docs/settings.md differs from the settings table; its table should be:\n{}",
            markdown()
        );
    }
}
