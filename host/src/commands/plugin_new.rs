//! `perfhost plugin new NAME --lang rust|python|js|c`: a plugin project that builds and runs
//! unchanged — the contract's WIT copied in, the SDK vendored (neither is on a registry yet),
//! a build script that says what to install when a tool is missing, one example task and a
//! README with the commands.

use std::path::{Path, PathBuf};

use crate::exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin's name: lower-case letters, digits and `_`, starting with a letter (it names
    /// the crate or module, the user class and the .wasm file).
    pub name: String,
    /// The language of the project.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// Where to create it (default: ./NAME). Must not exist yet.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

const WIT: &str = include_str!("../../../wit/perfhost.wit");
const PY_SDK: &str = include_str!("../../../plugins/sdk-python/perfhost.py");
const PY_ADAPTER: &str = include_str!("../../../plugins/sdk-python/behaviour.py");
const JS_SDK: &str = include_str!("../../../plugins/sdk-js/perfhost.js");
const C_HEADER: &str = include_str!("../../../plugins/sdk-c/perfhost.h");
const C_SDK: &str = include_str!("../../../plugins/sdk-c/perfhost.c");
const RUST_SDK: [(&str, &str); 6] = [
    ("lib.rs", include_str!("../../../plugins/sdk/src/lib.rs")),
    (
        "context.rs",
        include_str!("../../../plugins/sdk/src/context.rs"),
    ),
    (
        "export.rs",
        include_str!("../../../plugins/sdk/src/export.rs"),
    ),
    (
        "request.rs",
        include_str!("../../../plugins/sdk/src/request.rs"),
    ),
    (
        "response.rs",
        include_str!("../../../plugins/sdk/src/response.rs"),
    ),
    ("user.rs", include_str!("../../../plugins/sdk/src/user.rs")),
];

pub fn main(args: NewArgs) -> u8 {
    if !valid_name(&args.name) {
        crate::errln!(
            "error: plugin name `{}` is not usable: use lower-case letters, digits and `_`, starting with a letter (e.g. heavy_user)",
            args.name
        );
        return exit::USAGE;
    }
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        crate::errln!(
            "error: {} exists already: choose another --dir or name",
            dir.display()
        );
        return exit::USAGE;
    }
    let files = match args.lang {
        Lang::Rust => rust_files(&args.name),
        Lang::Python => python_files(&args.name),
        Lang::Js => js_files(&args.name),
        Lang::C => c_files(&args.name),
    };
    match write_all(&dir, &files) {
        Ok(()) => {
            crate::outln!(
                "created {} ({} plugin {}): build it with `bash {}/build.sh`, then `perfhost run --plugin {}/{}.wasm`",
                dir.display(),
                match args.lang {
                    Lang::Rust => "Rust",
                    Lang::Python => "Python",
                    Lang::Js => "JavaScript",
                    Lang::C => "C",
                },
                args.name,
                dir.display(),
                dir.display(),
                args.name
            );
            exit::OK
        }
        Err(err) => {
            crate::errln!("error: cannot write {}: {err}", dir.display());
            exit::USAGE
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 64
}

/// `heavy_user` → `HeavyUser`.
fn class_name(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn write_all(dir: &Path, files: &[(String, String)]) -> std::io::Result<()> {
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        if path.extension().is_some_and(|e| e == "sh") {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

fn fill(template: &str, name: &str) -> String {
    template
        .replace("{name}", name)
        .replace("{Class}", &class_name(name))
}

fn python_files(name: &str) -> Vec<(String, String)> {
    vec![
        ("wit/perfhost.wit".into(), WIT.into()),
        ("perfhost.py".into(), PY_SDK.into()),
        ("behaviour.py".into(), PY_ADAPTER.into()),
        (
            format!("{name}.py"),
            fill(include_str!("scaffold/user.py"), name),
        ),
        ("app.py".into(), fill(include_str!("scaffold/app.py"), name)),
        (
            "build.sh".into(),
            fill(include_str!("scaffold/build_python.sh"), name),
        ),
        (
            "README.md".into(),
            fill(include_str!("scaffold/README_python.md"), name),
        ),
        (".gitignore".into(), "*.wasm\n__pycache__/\n".into()),
    ]
}

fn js_files(name: &str) -> Vec<(String, String)> {
    vec![
        ("wit/perfhost.wit".into(), WIT.into()),
        ("perfhost.js".into(), JS_SDK.into()),
        (
            format!("{name}.js"),
            fill(include_str!("scaffold/script.js"), name),
        ),
        ("app.js".into(), fill(include_str!("scaffold/app.js"), name)),
        (
            "build.sh".into(),
            fill(include_str!("scaffold/build_js.sh"), name),
        ),
        (
            "README.md".into(),
            fill(include_str!("scaffold/README_js.md"), name),
        ),
        (".gitignore".into(), "*.wasm\n".into()),
    ]
}

fn c_files(name: &str) -> Vec<(String, String)> {
    vec![
        ("wit/perfhost.wit".into(), WIT.into()),
        ("perfhost.h".into(), C_HEADER.into()),
        ("perfhost.c".into(), C_SDK.into()),
        (
            format!("{name}.c"),
            fill(include_str!("scaffold/user.c"), name),
        ),
        (
            "build.sh".into(),
            fill(include_str!("scaffold/build_c.sh"), name),
        ),
        (
            "README.md".into(),
            fill(include_str!("scaffold/README_c.md"), name),
        ),
        (".gitignore".into(), "*.wasm\n".into()),
    ]
}

fn rust_files(name: &str) -> Vec<(String, String)> {
    let mut files = vec![
        ("wit/perfhost.wit".into(), WIT.into()),
        (
            "Cargo.toml".into(),
            fill(include_str!("scaffold/Cargo.toml.in"), name),
        ),
        (
            "src/lib.rs".into(),
            fill(include_str!("scaffold/lib.rs.in"), name),
        ),
        (
            "build.sh".into(),
            fill(include_str!("scaffold/build_rust.sh"), name),
        ),
        (
            "README.md".into(),
            fill(include_str!("scaffold/README_rust.md"), name),
        ),
        (".gitignore".into(), "/target\n*.wasm\n".into()),
        (
            "perfhost-sdk/Cargo.toml".into(),
            include_str!("scaffold/sdk_Cargo.toml.in").into(),
        ),
    ];
    for (file, text) in RUST_SDK {
        // In the repository the SDK sits two levels below wit/; in the project, one.
        let text = text.replace("path: \"../../wit\"", "path: \"../wit\"");
        files.push((format!("perfhost-sdk/src/{file}"), text));
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_classes() {
        assert!(valid_name("heavy_user") && valid_name("u2"));
        assert!(!valid_name("Heavy") && !valid_name("2u") && !valid_name("a-b") && !valid_name(""));
        assert_eq!(class_name("heavy_user"), "HeavyUser");
        assert_eq!(class_name("u2"), "U2");
    }

    #[test]
    fn the_vendored_sdk_finds_the_copied_wit() {
        let files = rust_files("x");
        let lib = &files
            .iter()
            .find(|(p, _)| p == "perfhost-sdk/src/lib.rs")
            .unwrap()
            .1;
        assert!(
            lib.contains("path: \"../wit\""),
            "the SDK's generate! path was not rewritten"
        );
    }
}
