//! The layout against docs/architecture.md: the crates depend on each other only as its
//! ```crates block draws, perfhost-core pulls in no clap and prints nothing, and inside each
//! crate a module (a file or a feature folder) imports only modules on lower lines of that
//! crate's ```layers block. Every `crate::…` and `super::…` path counts, inline ones too (not
//! only `use` lines).

use std::collections::BTreeMap;
use std::path::Path;

/// The text of the fenced block that starts with ```` ```{tag} ```` (the tag line is left out).
fn block<'a>(doc: &'a str, tag: &str) -> &'a str {
    let fence = format!("```{tag}\n");
    doc.split(fence.as_str())
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("docs/architecture.md has a ```{tag} block"))
}

/// `module → layer index` from a ```layers block of the architecture document.
fn layers(block: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (i, line) in block.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        for module in line.split_whitespace() {
            out.insert(module.to_string(), i);
        }
    }
    out
}

/// The source without comments (doc comments name paths that are not imports).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The top-level modules a file's code names through `crate::` and `super::` paths.
fn referenced(file_module: &str, top_level_file: bool, code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first name of every top-level item.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_ascii_alphabetic() || c == '_') => {
                        out.push(ident_at(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident_at(after));
        }
        rest = after;
    }
    // `super::` leaves the file's module only from a top-level file's own scope; inside a
    // folder module or a `mod tests` it stays in the module. Count it when it names another
    // top-level module.
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        let after = &rest[at + "super::".len()..];
        let name = ident_at(after);
        if top_level_file && !name.is_empty() && name != file_module {
            out.push(name);
        }
        rest = after;
    }
    out
}

/// Every violation: `file: module a (layer i) imports b (layer j ≥ i)`.
fn violations(layer_of: &BTreeMap<String, usize>, files: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in files {
        let parts: Vec<&str> = path.split('/').collect();
        let module = parts[0].trim_end_matches(".rs");
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(&mine) = layer_of.get(module) else {
            out.push(format!(
                "{path}: module `{module}` is not in docs/architecture.md's layers"
            ));
            continue;
        };
        for name in referenced(module, parts.len() == 1, &code_of(text)) {
            if name == module || name == "self" || name.is_empty() {
                continue;
            }
            match layer_of.get(&name) {
                Some(&theirs) if theirs < mine => {}
                Some(&theirs) => out.push(format!(
                    "{path}: `{module}` (layer {mine}) imports `{name}` (layer {theirs}): a module may import only lower layers"
                )),
                // A name that is no module of ours: an item re-exported at the crate root.
                None => {}
            }
        }
    }
    out
}

fn sources(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            sources(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/");
            out.push((
                rel,
                std::fs::read_to_string(&path).expect("readable source"),
            ));
        }
    }
}

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn architecture() -> String {
    std::fs::read_to_string(workspace().join("docs/architecture.md")).expect("docs/architecture.md")
}

/// Every `.rs` file under `dir` of the workspace, as (path inside `src`, text).
fn crate_sources(dir: &str) -> Vec<(String, String)> {
    let src = workspace().join(dir).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    files
}

#[test]
fn core_modules_import_only_lower_layers() {
    check_crate("core", "layers core", 15);
}

#[test]
fn binary_modules_import_only_lower_layers() {
    check_crate("host", "layers perfhost", 14);
}

/// The layering of one crate: its modules against its block, and its `lib.rs` against the
/// block's list of modules.
fn check_crate(dir: &str, tag: &str, at_least: usize) {
    let doc = architecture();
    let layer_of = layers(block(&doc, tag));
    let files = crate_sources(dir);
    let problems = violations(&layer_of, &files);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let src = workspace().join(dir).join("src");

    // Every module of the crate is in the list, and the list names no module that is gone.
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let declared: Vec<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    for module in &declared {
        assert!(
            layer_of.contains_key(module),
            "lib.rs declares `{module}`, the layers do not"
        );
    }
    for module in layer_of.keys() {
        assert!(
            declared.contains(module),
            "the layers name `{module}`, lib.rs does not declare it"
        );
    }
    assert!(declared.len() >= at_least, "{dir}: {declared:?}");
}

/// `[dependencies]` names of a crate's manifest that are crates of this workspace.
fn workspace_dependencies(dir: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(workspace().join(dir).join("Cargo.toml"))
        .expect("a crate manifest");
    let deps = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .map(|rest| rest.split("\n[").next().unwrap_or(""))
        .unwrap_or("");
    let mut out: Vec<String> = deps
        .lines()
        .filter_map(|l| l.split(['=', ' ']).next())
        .filter(|name| name.starts_with("perfhost"))
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

/// The crate graph is the one drawn: `crate -> dependencies` per line of ```crates.
#[test]
fn crates_depend_as_drawn() {
    let doc = architecture();
    let mut drawn = 0;
    for line in block(&doc, "crates")
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let (name, deps) = line.split_once("->").expect("`crate (dir) -> deps`");
        let (name, dir) = name.trim().split_once(' ').expect("`crate (dir)`");
        let dir = dir
            .trim()
            .trim_matches(|c| c == '(' || c == ')' || c == '/');
        let mut want: Vec<String> = deps.split_whitespace().map(str::to_string).collect();
        want.sort();
        assert_eq!(
            workspace_dependencies(dir),
            want,
            "{name} ({dir}/Cargo.toml)"
        );
        drawn += 1;
    }
    assert_eq!(drawn, 3, "perfhost, perfhost-core and perfhost-demo");
}

/// The engine's loop stays a page: `engine::run` at most 60 lines, and no function of the engine
/// that needs a `too_many_arguments` allowance (a context struct instead).
#[test]
fn the_engine_loop_stays_short() {
    let engine = workspace().join("core/src/engine");
    let text = std::fs::read_to_string(engine.join("mod.rs")).expect("core/src/engine/mod.rs");
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("pub async fn run("))
        .expect("engine::run in core/src/engine/mod.rs");
    let length = lines[start..]
        .iter()
        .position(|l| *l == "}")
        .expect("the end of engine::run")
        + 1;
    assert!(length <= 60, "engine::run is {length} lines");
    for (path, text) in crate_sources("core") {
        if path.starts_with("engine/") {
            assert!(!text.contains("too_many_arguments"), "core/src/{path}");
        }
    }
}

/// What a `Cargo.lock` says a package depends on (every kind), by name.
fn locked_dependencies(lock: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for package in lock.split("[[package]]").skip(1) {
        let name = package
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .map(|n| n.trim_matches('"').to_string())
            .expect("a package name");
        let deps = package
            .split("dependencies = [")
            .nth(1)
            .and_then(|d| d.split(']').next())
            .unwrap_or("")
            .split(',')
            .map(|d| {
                d.trim()
                    .trim_matches('"')
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .filter(|d| !d.is_empty())
            .collect();
        out.entry(name).or_insert(deps);
    }
    out
}

/// perfhost-core is a library anyone can drive: no command-line parser in its whole
/// dependency tree, and not a line of it prints (its events go to the caller).
#[test]
fn the_core_has_no_clap_and_prints_nothing() {
    let lock = std::fs::read_to_string(workspace().join("Cargo.lock")).expect("Cargo.lock");
    let graph = locked_dependencies(&lock);
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec!["perfhost-core".to_string()];
    while let Some(name) = todo.pop() {
        if seen.insert(name.clone()) {
            todo.extend(graph.get(&name).cloned().unwrap_or_default());
        }
    }
    assert!(
        seen.contains("wasmtime"),
        "the walk reached wasmtime: {seen:?}"
    );
    assert!(
        !seen.iter().any(|n| n.starts_with("clap")),
        "clap in perfhost-core's tree"
    );
    let printing = [
        "print!(",
        "println!(",
        "eprint!(",
        "eprintln!(",
        "errln!(",
        "outln!(",
        "out!(",
        "dbg!(",
        "io::stdout()",
        "io::stderr()",
    ];
    for (path, text) in crate_sources("core") {
        for (n, line) in code_of(&text).lines().enumerate() {
            if let Some(p) = printing.iter().find(|p| line.contains(*p)) {
                panic!(
                    "core/src/{path}:{}: `{p}` — send an events::Event instead",
                    n + 1
                );
            }
        }
    }
}

#[test]
fn the_check_flags_a_planted_cycle() {
    let layer_of = layers(block("```layers\nplan\nengine\nreport\n```\n", "layers"));
    let clean = vec![
        ("plan.rs".to_string(), "pub struct Stage;".to_string()),
        (
            "engine.rs".to_string(),
            "use crate::plan::Stage;".to_string(),
        ),
        (
            "report/mod.rs".to_string(),
            "use crate::{engine, plan::{Stage}};\nmod tests { use super::*; }".to_string(),
        ),
    ];
    assert_eq!(violations(&layer_of, &clean), Vec::<String>::new());

    // The cycle written inline, as it once was: plan → engine while engine → plan.
    let mut cycle = clean.clone();
    cycle[0].1 = "pub struct Stage { shape: crate::engine::LoadShape }".into();
    let found = violations(&layer_of, &cycle);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("`plan` (layer 0) imports `engine`"),
        "{found:?}"
    );

    // A grouped import upwards, a `super::` from a top-level file, and a module on no layer.
    let mut up = clean.clone();
    up[1].1 = "use crate::{plan, report::Thing};\nfn f() { super::report::g() }".into();
    up.push(("stray.rs".into(), String::new()));
    let found = violations(&layer_of, &up);
    assert_eq!(found.len(), 3, "{found:?}");
    // A path in a comment is not an import.
    let mut commented = clean;
    commented[0].1 = "/// See `crate::engine::run`.\npub struct Stage;".into();
    assert_eq!(violations(&layer_of, &commented), Vec::<String>::new());
}
