//! Each source of settings read into a layer by walking the settings table: the command line,
//! the environment, a scenario, `perfhost.toml` or `locust.conf`. Every value keeps its
//! origin; [`merge`] takes the first layer that sets each setting and checks the merged value
//! once, so an error names where the value came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use perfhost_core::plan::{FieldError, Origin, Source};

use super::scenario::{self, Scenario};
use super::table::{self, env_var, Value, SETTINGS};
use super::{ConfigError, RunArgs};

/// One source's settings, each with its origin, and the plugins' `[config]` values.
#[derive(Debug, Default)]
pub struct Layer {
    pub values: BTreeMap<&'static str, (Value, Origin)>,
    pub config: BTreeMap<String, String>,
    /// Where `config` came from (when it has values).
    pub config_origin: Option<Origin>,
}

impl Layer {
    fn set(&mut self, key: &'static str, value: Value, source: Source, place: String) {
        self.values.insert(key, (value, Origin { source, place }));
    }
}

/// How an error names a value from `origin`: the flag or variable itself, or the file's line
/// (or the scenario's name) and the key.
pub fn named(key: &str, origin: &Origin) -> String {
    match origin.source {
        Source::Cli | Source::Env => origin.place.clone(),
        Source::File => format!("{}: field `{key}`", origin.place),
        Source::Scenario => format!("scenario `{}`: field `{key}`", origin.place),
        Source::Default => table::find(key).map_or(key.to_string(), |s| s.flag.to_string()),
    }
}

/// What the command line sets: each row's flag, when given, and `--config-value`s.
pub fn from_args(args: &RunArgs) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
    for row in SETTINGS {
        if let Some(value) = (row.cli)(args) {
            layer.set(row.key, value, Source::Cli, row.flag.to_string());
        }
    }
    for kv in &args.config_values {
        let (k, v) = kv.split_once('=').ok_or_else(|| ConfigError::Invalid {
            setting: "--config-value".into(),
            message: format!("`{kv}`: expected KEY=VALUE"),
        })?;
        layer.config.insert(k.to_string(), v.to_string());
        layer.config_origin = Some(Origin {
            source: Source::Cli,
            place: "--config-value".into(),
        });
    }
    Ok(layer)
}

/// What the environment sets: `PERFHOST_<KEY>` for every row, and `LOAD_TEST_HOST` (the
/// Auditor suite's) for the host. An empty variable counts as unset.
pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
    let read = |var: &str| env(var).filter(|v| !v.trim().is_empty());
    for row in SETTINGS {
        let mut var = env_var(row.key);
        let mut text = read(&var);
        if text.is_none() && row.key == "thresholds" {
            // The singular, as the flag is spelled (`--threshold`).
            var = env_var("threshold");
            text = read(&var);
        }
        if text.is_none() && row.key == "host" {
            var = "LOAD_TEST_HOST".into();
            text = read(&var);
        }
        let Some(text) = text else { continue };
        let value = row
            .kind
            .parse(&text)
            .map_err(|message| ConfigError::Invalid {
                setting: var.clone(),
                message,
            })?;
        layer.set(row.key, value, Source::Env, var);
    }
    Ok(layer)
}

/// What a scenario sets (its own checks ran when it was read).
pub fn from_scenario(sc: &Scenario) -> Layer {
    let mut layer = Layer::default();
    let place = sc.name.clone();
    let mut set = |key, value| layer.set(key, value, Source::Scenario, place.clone());
    let count = |n: Option<usize>| n.map(|n| Value::Count(n as u64));
    let given = [
        ("plugins", sc.plugins.clone().map(Value::List)),
        ("users", count(sc.users)),
        ("spawn-rate", sc.spawn_rate.map(Value::Number)),
        ("run-time", sc.duration().map(Value::Duration)),
        ("rate", sc.rate.clone().map(Value::Text)),
        ("max-users", count(sc.max_users)),
        ("pre-allocated-users", count(sc.pre_allocated_users)),
        ("arrivals", sc.arrivals.clone().map(Value::Text)),
        ("http-version", sc.http_version.clone().map(Value::Text)),
        (
            "user-classes",
            (!sc.user_classes.is_empty()).then(|| Value::List(sc.user_classes.clone())),
        ),
        ("run-name", Some(Value::Text(sc.name.clone()))),
    ];
    for (key, value) in given {
        if let Some(value) = value {
            set(key, value);
        }
    }
    if !sc.config.is_empty() {
        layer.config = sc.config.clone();
        layer.config_origin = Some(Origin {
            source: Source::Scenario,
            place,
        });
    }
    layer
}

/// The settings file: the one given (`.toml`: perfhost's format; anything else, such as
/// `locust.conf`: Locust's), else `./perfhost.toml`, else `./locust.conf`, else none.
pub fn from_file(explicit: Option<&Path>) -> Result<Layer, ConfigError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match ["perfhost.toml", "locust.conf"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
        {
            Some(found) => found,
            None => return Ok(Layer::default()),
        },
    };
    let text = perfhost_core::input::read_to_string(&path, perfhost_core::input::Kind::Config)?;
    let shown = path.display().to_string();
    if path.extension().is_some_and(|e| e == "toml") {
        return perfhost_toml(&shown, &text);
    }
    let (layer, ignored) = locust_conf(&shown, &text)?;
    if !ignored.is_empty() {
        tracing::warn!(
            "{shown}: perfhost ignores {} (not supported yet)",
            ignored.join(", ")
        );
    }
    Ok(layer)
}

/// A `perfhost.toml`: every row's key, and `[config]` for plugins; an unknown key is refused
/// with its line and the keys there are.
pub fn perfhost_toml(file: &str, text: &str) -> Result<Layer, ConfigError> {
    let doc: BTreeMap<String, toml::Spanned<toml::Value>> =
        toml::from_str(text).map_err(|e| scenario::toml_error(file, text, &e))?;
    let mut layer = Layer::default();
    for (key, spanned) in &doc {
        let line = scenario::line_of(text, spanned.span().start);
        let bad = |message: String| FieldError {
            file: file.to_string(),
            line: Some(line),
            field: key.clone(),
            message,
        };
        let place = format!("{file}:{line}");
        if key == "config" {
            let table = spanned.get_ref().as_table().ok_or_else(|| {
                bad("expected a table of values for plugins: [config] then KEY = \"value\"".into())
            })?;
            for (k, v) in table {
                let v = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                        v.to_string()
                    }
                    _ => return Err(bad(format!("`{k}`: expected a text or a number")).into()),
                };
                layer.config.insert(k.clone(), v);
            }
            layer.config_origin = Some(Origin {
                source: Source::File,
                place,
            });
            continue;
        }
        let Some(row) = SETTINGS.iter().find(|s| s.key == key) else {
            let keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
            return Err(bad(format!(
                "unknown setting — the keys are {}, and [config] for plugins' values",
                keys.join(", ")
            ))
            .into());
        };
        let value = row.kind.from_toml(spanned.get_ref()).map_err(bad)?;
        layer.set(row.key, value, Source::File, place);
    }
    Ok(layer)
}

/// Locust's settings that mean nothing to a headless perfhost run.
const LOCUST_ACCEPTED: [&str; 3] = ["headless", "autostart", "locustfile-is-plugin"];

/// A `locust.conf`, read as Locust reads it: `key = value` (or `key: value`), unquoted, `#`
/// and `;` comments, `[sections]` ignored; the keys are the table's Locust names. Returns the
/// layer and the keys perfhost does not support (named in one warning, never silently
/// dropped).
pub fn locust_conf(file: &str, text: &str) -> Result<(Layer, Vec<String>), ConfigError> {
    let mut layer = Layer::default();
    let mut ignored = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';', '[']) {
            continue;
        }
        let Some((key, value)) = line.split_once(['=', ':']) else {
            ignored.push(line.to_string());
            continue;
        };
        let (key, value) = (key.trim().replace('_', "-"), value.trim());
        let bad = |message: String| FieldError {
            file: file.to_string(),
            line: Some(i + 1),
            field: key.clone(),
            message,
        };
        let place = format!("{file}:{}", i + 1);
        if key == "locustfile" || key == "f" {
            if !value.ends_with(".wasm") {
                return Err(bad(format!(
                    "`{value}` is a Locust file; perfhost runs WebAssembly plugins (docs/plugins.md) — set `locustfile = my_user.wasm` or use --plugin"
                ))
                .into());
            }
            layer.set(
                "plugins",
                Value::List(vec![value.to_string()]),
                Source::File,
                place,
            );
            continue;
        }
        if LOCUST_ACCEPTED.contains(&key.as_str()) {
            continue;
        }
        let Some(row) = SETTINGS.iter().find(|s| s.locust.contains(&key.as_str())) else {
            ignored.push(key.clone());
            continue;
        };
        let value = row.kind.parse(value).map_err(bad)?;
        layer.set(row.key, value, Source::File, place);
    }
    Ok((layer, ignored))
}

/// The settings of the layers merged: each setting's value from the first layer that sets it,
/// checked once by its row; plugins' values merged key by key, the higher layer winning.
#[derive(Debug)]
pub struct Merged {
    values: BTreeMap<&'static str, Value>,
    /// Every row's origin (a default's when no layer sets it), and the plan's other values'.
    pub sources: BTreeMap<&'static str, Origin>,
    pub config: BTreeMap<String, String>,
}

/// Merges layers given highest first.
pub fn merge(layers: &[&Layer]) -> Result<Merged, ConfigError> {
    let mut merged = Merged {
        values: BTreeMap::new(),
        sources: BTreeMap::new(),
        config: BTreeMap::new(),
    };
    for row in SETTINGS {
        let found = layers.iter().find_map(|l| l.values.get(row.key));
        let Some((value, origin)) = found else {
            merged.sources.insert(row.key, Origin::default_value());
            continue;
        };
        (row.check)(value).map_err(|message| ConfigError::Invalid {
            setting: named(row.key, origin),
            message,
        })?;
        merged.values.insert(row.key, value.clone());
        merged.sources.insert(row.key, origin.clone());
    }
    let mut config_origin = Origin::default_value();
    for layer in layers.iter().rev() {
        if let Some(origin) = &layer.config_origin {
            merged.config.extend(layer.config.clone());
            config_origin = origin.clone();
        }
    }
    merged.sources.insert("config", config_origin);
    Ok(merged)
}

impl Merged {
    /// The layer `key`'s value came from.
    pub fn source(&self, key: &str) -> Source {
        self.sources.get(key).map_or(Source::Default, |o| o.source)
    }

    /// How an error names `key`'s value: where it came from.
    pub fn named(&self, key: &str) -> String {
        match self.sources.get(key) {
            Some(origin) => named(key, origin),
            None => named(key, &Origin::default_value()),
        }
    }

    /// Records where a value the plan takes from elsewhere came from.
    pub fn note(&mut self, key: &'static str, source: Source, place: impl Into<String>) {
        let place = place.into();
        self.sources.insert(key, Origin { source, place });
    }

    pub fn text(&self, key: &str) -> Option<String> {
        match self.values.get(key) {
            Some(Value::Text(t)) => Some(t.clone()),
            _ => None,
        }
    }

    pub fn count(&self, key: &str) -> Option<u64> {
        match self.values.get(key) {
            Some(Value::Count(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn number(&self, key: &str) -> Option<f64> {
        match self.values.get(key) {
            Some(Value::Number(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn duration(&self, key: &str) -> Option<std::time::Duration> {
        match self.values.get(key) {
            Some(Value::Duration(d)) => Some(*d),
            _ => None,
        }
    }

    pub fn size(&self, key: &str) -> Option<usize> {
        match self.values.get(key) {
            Some(Value::Size(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.values.get(key), Some(Value::Flag(true)))
    }

    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        match self.values.get(key) {
            Some(Value::List(v)) => Some(v.clone()),
            _ => None,
        }
    }

    pub fn path(&self, key: &str) -> Option<PathBuf> {
        match self.values.get(key) {
            Some(Value::Path(p)) => Some(p.clone()),
            _ => None,
        }
    }
}
