//! Builds the plugins in `plugins/` for wasm32-wasip2 so the host can embed the built-in
//! behaviours and the tests can load the fixtures. The nested cargo gets its own target
//! directory (the outer one is locked) and a clean environment (host flags must not leak into
//! the wasm build).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir
        .parent()
        .expect("core/ lives in the workspace")
        .to_path_buf();
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    // A stable folder beside the outer target's profile dir, shared by build, test and clippy.
    let target_dir = plugin_target_dir(&out_dir);

    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    watch_sources(&plugins);

    ensure_wasm_target(&root);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--workspace",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_DIR",
        "CARGO_PKG_NAME",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_PROFILE_") || key.starts_with("CARGO_FEATURE_") {
            cmd.env_remove(key);
        }
    }
    let output = cmd.output().expect("could not run cargo for the plugins");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("wasm32-wasip2")
            && (stderr.contains("may not be installed")
                || stderr.contains("can't find crate for `std`"))
        {
            panic!("the wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2`, then build again");
        }
        panic!("building the plugins for wasm32-wasip2 failed:\n{stderr}");
    }
    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    println!("cargo:rustc-env=PERFHOST_PLUGIN_DIR={}", wasm_dir.display());
}

/// A fresh rustup toolchain lacks wasm32-wasip2 (rust-toolchain.toml lists it, but rustup only
/// installs it with the toolchain): add it, so the README's first command works as it is.
fn ensure_wasm_target(root: &Path) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if sysroot.is_some_and(|s| s.join("lib/rustlib/wasm32-wasip2").is_dir()) {
        return;
    }
    println!("cargo:warning=installing the wasm32-wasip2 target with rustup (the built-in plugins are built for it)");
    let added = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .current_dir(root)
        .status()
        .is_ok_and(|s| s.success());
    if !added {
        panic!("the wasm32-wasip2 target is missing and `rustup target add wasm32-wasip2` failed: run it yourself, then build again");
    }
}

/// `<target>/<profile>/build/perfhost-<hash>/out` → `<target>/wasm-plugins`.
fn plugin_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("wasm-plugins"))
        .unwrap_or_else(|| out_dir.join("wasm-plugins"))
}

/// Emits rerun-if-changed for every plugin source folder, skipping build output.
fn watch_sources(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            // The folder too: cargo then notices a new crate or file in it, not only edits.
            println!("cargo:rerun-if-changed={}", path.display());
            watch_sources(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
