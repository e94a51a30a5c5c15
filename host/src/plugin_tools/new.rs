//! `perfhost plugin new NAME --lang rust|python|js|c`: a plugin project that builds and runs
//! unchanged — the contract's WIT copied in, the SDK vendored (neither is on a registry yet),
//! a build script that says what to install when a tool is missing, one example task and a
//! README with the commands.

use std::path::{Path, PathBuf};

use crate::exit;
use crate::failure::Failure;

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

pub fn main(args: NewArgs) -> Result<u8, Failure> {
    if !valid_name(&args.name) {
        return Err(Failure::usage(format_args!(
            "plugin name `{}` is not usable: use lower-case letters, digits and `_`, starting with a letter (e.g. heavy_user)",
            args.name
        )));
    }
    if let Some(why) = name_clash(&args.name, args.lang) {
        return Err(Failure::usage(format_args!(
            "plugin name `{}` would make a project that does not build: {why} — choose another name, e.g. {}",
            args.name,
            suggestion(&args.name, args.lang)
        )));
    }
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        return Err(Failure::usage(format_args!(
            "{} exists already: choose another --dir or name",
            dir.display()
        )));
    }
    let files = match args.lang {
        Lang::Rust => rust_files(&args.name),
        Lang::Python => python_files(&args.name),
        Lang::Js => js_files(&args.name),
        Lang::C => c_files(&args.name),
    };
    write_all(&dir, &files).map_err(|err| {
        Failure::usage(format_args!("cannot write {}: {err}", dir.display())).because(&err)
    })?;
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
    Ok(exit::OK)
}

/// Identifiers the generated projects cannot take, per language (the name is a crate or
/// module, its CamelCase form a class). Python's standard-library modules are those of
/// `sys.stdlib_module_names` (3.11).
const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
    "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro", "override",
    "priv", "try", "typeof", "unsized", "virtual", "yield", "union",
];
const PYTHON_KEYWORDS: &[&str] = &[
    "and", "as", "assert", "async", "await", "break", "case", "class", "continue", "def", "del",
    "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is",
    "lambda", "match", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with",
    "yield",
];
const JS_RESERVED: &[&str] = &[
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "import",
    "in",
    "instanceof",
    "new",
    "null",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
    "let",
    "static",
    "implements",
    "interface",
    "package",
    "private",
    "protected",
    "public",
    "arguments",
    "eval",
];
const RUST_PRELUDE: &[&str] = &[
    "Context",
    "DataError",
    "HttpError",
    "HttpErrorExt",
    "LogLevel",
    "Response",
    "Task",
    "TaskError",
    "TaskResult",
    "User",
    "WaitTime",
    "Deserialize",
    "Serialize",
    "Default",
    "Clone",
    "Copy",
    "Send",
    "Sync",
    "Sized",
    "Drop",
    "Fn",
    "FnMut",
    "FnOnce",
    "Box",
    "String",
    "Vec",
    "Option",
    "Result",
    "Some",
    "None",
    "Ok",
    "Err",
    "Iterator",
    "IntoIterator",
    "Extend",
    "ToOwned",
    "ToString",
    "Eq",
    "PartialEq",
    "Ord",
    "PartialOrd",
    "AsRef",
    "AsMut",
    "Into",
    "From",
    "TryFrom",
    "TryInto",
    "Debug",
    "Hash",
    "Unpin",
    "Future",
];
const RUST_CRATES: &[&str] = &[
    "std",
    "core",
    "alloc",
    "proc_macro",
    "test",
    "perfhost_sdk",
    "serde",
    "serde_json",
    "wit_bindgen",
];
const PYTHON_STDLIB: &[&str] = &[
    "abc",
    "aifc",
    "antigravity",
    "argparse",
    "array",
    "ast",
    "asynchat",
    "asyncio",
    "asyncore",
    "atexit",
    "audioop",
    "base64",
    "bdb",
    "binascii",
    "bisect",
    "builtins",
    "bz2",
    "calendar",
    "cgi",
    "cgitb",
    "chunk",
    "cmath",
    "cmd",
    "code",
    "codecs",
    "codeop",
    "collections",
    "colorsys",
    "compileall",
    "concurrent",
    "configparser",
    "contextlib",
    "contextvars",
    "copy",
    "copyreg",
    "crypt",
    "csv",
    "ctypes",
    "curses",
    "dataclasses",
    "datetime",
    "dbm",
    "decimal",
    "difflib",
    "dis",
    "distutils",
    "doctest",
    "email",
    "encodings",
    "ensurepip",
    "enum",
    "errno",
    "faulthandler",
    "fcntl",
    "filecmp",
    "fileinput",
    "fnmatch",
    "fractions",
    "ftplib",
    "functools",
    "gc",
    "genericpath",
    "getopt",
    "getpass",
    "gettext",
    "glob",
    "graphlib",
    "grp",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "http",
    "idlelib",
    "imaplib",
    "imghdr",
    "imp",
    "importlib",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "keyword",
    "lib2to3",
    "linecache",
    "locale",
    "logging",
    "lzma",
    "mailbox",
    "mailcap",
    "marshal",
    "math",
    "mimetypes",
    "mmap",
    "modulefinder",
    "msilib",
    "msvcrt",
    "multiprocessing",
    "netrc",
    "nis",
    "nntplib",
    "nt",
    "ntpath",
    "nturl2path",
    "numbers",
    "opcode",
    "operator",
    "optparse",
    "os",
    "ossaudiodev",
    "pathlib",
    "pdb",
    "pickle",
    "pickletools",
    "pipes",
    "pkgutil",
    "platform",
    "plistlib",
    "poplib",
    "posix",
    "posixpath",
    "pprint",
    "profile",
    "pstats",
    "pty",
    "pwd",
    "py_compile",
    "pyclbr",
    "pydoc",
    "pydoc_data",
    "pyexpat",
    "queue",
    "quopri",
    "random",
    "re",
    "readline",
    "reprlib",
    "resource",
    "rlcompleter",
    "runpy",
    "sched",
    "secrets",
    "select",
    "selectors",
    "shelve",
    "shlex",
    "shutil",
    "signal",
    "site",
    "smtpd",
    "smtplib",
    "sndhdr",
    "socket",
    "socketserver",
    "spwd",
    "sqlite3",
    "sre_compile",
    "sre_constants",
    "sre_parse",
    "ssl",
    "stat",
    "statistics",
    "string",
    "stringprep",
    "struct",
    "subprocess",
    "sunau",
    "symtable",
    "sys",
    "sysconfig",
    "syslog",
    "tabnanny",
    "tarfile",
    "telnetlib",
    "tempfile",
    "termios",
    "textwrap",
    "this",
    "threading",
    "time",
    "timeit",
    "tkinter",
    "token",
    "tokenize",
    "tomllib",
    "trace",
    "traceback",
    "tracemalloc",
    "tty",
    "turtle",
    "turtledemo",
    "types",
    "typing",
    "unicodedata",
    "unittest",
    "urllib",
    "uu",
    "uuid",
    "venv",
    "warnings",
    "wave",
    "weakref",
    "webbrowser",
    "winreg",
    "winsound",
    "wsgiref",
    "xdrlib",
    "xml",
    "xmlrpc",
    "zipapp",
    "zipfile",
    "zipimport",
    "zlib",
    "zoneinfo",
];

/// Why `name` (already a valid identifier) would make a `lang` project that does not build
/// or does not run, or `None`.
fn name_clash(name: &str, lang: Lang) -> Option<String> {
    if RUST_KEYWORDS.contains(&name)
        || PYTHON_KEYWORDS.contains(&name)
        || JS_RESERVED.contains(&name)
    {
        // A keyword names nothing in any of the languages: refused for all of them, so a
        // plugin's name means the same whatever it is written in.
        return Some(format!(
            "`{name}` is a keyword (in Rust, Python or JavaScript)"
        ));
    }
    let class = class_name(name);
    match lang {
        Lang::Rust if RUST_CRATES.contains(&name) => Some(format!(
            "a crate named `{name}` clashes with the crate of that name it depends on"
        )),
        Lang::Rust if RUST_PRELUDE.contains(&class.as_str()) => Some(format!(
            "its user class `{class}` shadows the `{class}` that the SDK's prelude or Rust's prelude brings in"
        )),
        Lang::Python | Lang::Js | Lang::C
            if ["perfhost", "behaviour", "app", "plugin", "wit_world"].contains(&name) =>
        {
            Some(format!(
                "its file `{name}.{}` would overwrite a file of the SDK or the build",
                match lang {
                    Lang::Python => "py",
                    Lang::Js => "js",
                    _ => "c",
                }
            ))
        }
        Lang::Python if PYTHON_STDLIB.contains(&name) || name.starts_with("componentize_py") => {
            Some(format!(
                "its module `{name}` shadows Python's standard-library module `{name}`, which the SDK or componentize-py imports"
            ))
        }
        Lang::Python if ["User", "Behaviour"].contains(&class.as_str()) => Some(format!(
            "its user class `{class}` shadows the SDK's `{class}`"
        )),
        _ => None,
    }
}

/// A name close to `name` that passes every check.
fn suggestion(name: &str, lang: Lang) -> String {
    [
        format!("{name}_user"),
        format!("my_{name}"),
        format!("{name}_plugin"),
    ]
    .into_iter()
    .find(|n| valid_name(n) && name_clash(n, lang).is_none())
    .unwrap_or_else(|| "my_user".to_string())
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
        (
            "build.sh".into(),
            fill(include_str!("scaffold/build_js.sh"), name),
        ),
        (
            "README.md".into(),
            fill(include_str!("scaffold/README_js.md"), name),
        ),
        (".gitignore".into(), "*.wasm\napp.js\n".into()),
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
    fn names_that_make_broken_projects_are_refused() {
        for (name, lang, why) in [
            ("self", Lang::Rust, "keyword"),
            ("class", Lang::Python, "keyword"),
            ("class", Lang::Rust, "keyword"),
            ("context", Lang::Rust, "`Context` shadows"),
            ("task", Lang::Rust, "`Task` shadows"),
            ("user_", Lang::Rust, "`User` shadows"),
            ("std", Lang::Rust, "crate"),
            ("perfhost", Lang::Python, "perfhost.py"),
            ("behaviour", Lang::Python, "behaviour.py"),
            ("app", Lang::Js, "app.js"),
            ("perfhost", Lang::C, "perfhost.c"),
            ("json", Lang::Python, "standard-library module `json`"),
            ("asyncio", Lang::Python, "standard-library"),
        ] {
            let clash = name_clash(name, lang).unwrap_or_default();
            assert!(clash.contains(why), "{name} ({lang:?}): {clash:?}");
            let suggested = suggestion(name, lang);
            assert!(
                valid_name(&suggested) && name_clash(&suggested, lang).is_none(),
                "{suggested}"
            );
        }
        for (name, lang) in [
            ("heavy_user", Lang::Rust),
            ("json", Lang::Rust),
            ("context", Lang::Python),
            ("checkout", Lang::Js),
            ("app", Lang::Rust),
        ] {
            assert_eq!(name_clash(name, lang), None, "{name}");
        }
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
