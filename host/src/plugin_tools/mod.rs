//! `perfhost plugin inspect|bench|new|export`.

pub mod bench;
pub mod new;
pub mod overhead;

use std::path::PathBuf;

use crate::exit;
use crate::failure::Failure;
use perfhost_core::plugin::{builtin, PluginSet, PluginSpec, RuntimeOptions, WaitTime, World};

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Show what a plugin will do: contract version, user classes, weights, wait times, tasks, imports.
    Inspect {
        /// A .wasm file or a built-in name.
        plugin: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure a plugin's cost in the sandbox: host CPU per request and memory per user (for
    /// the built-ins bench_verify and http_get, beside native Rust users doing the same work).
    Bench(crate::plugin_tools::bench::PluginBenchArgs),
    /// Create a plugin project (Rust, Python, JavaScript or C) that builds and runs unchanged:
    /// the contract, the SDK, a build script, one example task.
    New(crate::plugin_tools::new::NewArgs),
    /// Write a built-in plugin to a .wasm file (to share, or as a starting point).
    Export {
        /// A built-in: auditor_user, burst_user, heavy_user, http_get, auditor_benchmark or
        /// bench_verify.
        name: String,
        /// Output file (default: NAME.wasm).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

pub fn main(cmd: PluginCommand) -> Result<u8, Failure> {
    match cmd {
        PluginCommand::Bench(args) => crate::plugin_tools::bench::main(args),
        PluginCommand::New(args) => crate::plugin_tools::new::main(args),
        PluginCommand::Export { name, output } => {
            let Some(bytes) = builtin::bytes(&name) else {
                return Err(Failure::usage(format_args!(
                    "unknown built-in plugin `{name}`: the built-ins are {}",
                    builtin::all_names()
                )));
            };
            let path = output.unwrap_or_else(|| {
                PathBuf::from(format!("{}.wasm", name.trim_end_matches(".wasm")))
            });
            std::fs::write(&path, bytes).map_err(|err| {
                Failure::usage(format_args!("cannot write {}: {err}", path.display())).because(&err)
            })?;
            crate::outln!("wrote {} ({} bytes)", path.display(), bytes.len());
            Ok(exit::OK)
        }
        PluginCommand::Inspect { plugin, json } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| Failure::of(exit::USAGE, &err))?;
            let loaded = runtime.block_on(async {
                let spec = PluginSpec::resolve(&plugin)?;
                PluginSet::load(vec![spec], RuntimeOptions::default()).await
            });
            let set = loaded?;
            let info = &set.plugins[0];
            if json {
                crate::outln!("{}", serde_json::to_string_pretty(info).unwrap_or_default());
                return Ok(exit::OK);
            }
            crate::outln!("plugin    {} ({})", info.name, info.source);
            crate::outln!("contract  {}", info.contract);
            let world = match info.world {
                World::Plugin => "plugin (async: users share an instance)",
                World::PluginSync => "plugin-sync (one instance per user)",
            };
            crate::outln!("world     {world}");
            if !info.sync_calls.is_empty() {
                crate::outln!(
                    "sync      {} lifted or lowered without the async option: run one user per instance",
                    info.sync_calls.join(", ")
                );
            }
            crate::outln!(
                "users     {} per instance, {} KiB linear memory each",
                info.users_per_instance,
                info.instance_memory_bytes / 1024
            );
            if info.from_cache {
                crate::outln!(
                    "load      {:.0} ms (compiled artefact from the cache)",
                    info.load_ms
                );
            } else {
                crate::outln!(
                    "load      {:.0} ms (compiled now; cached for next time)",
                    info.load_ms
                );
            }
            crate::outln!(
                "size      {} bytes, sha256 {}",
                info.size_bytes,
                info.sha256
            );
            for class in &info.classes {
                let wait = match &class.wait {
                    WaitTime::Between { min_ms, max_ms } => format!("between {min_ms}–{max_ms} ms"),
                    WaitTime::Constant { ms } => format!("constant {ms} ms"),
                    WaitTime::ConstantPacing { ms } => format!("constant pacing {ms} ms"),
                    WaitTime::ConstantThroughput { per_second } => {
                        format!("constant throughput {per_second}/s")
                    }
                    WaitTime::Custom => "custom (next-wait-ms)".into(),
                };
                crate::outln!(
                    "class     {} (weight {}, wait {wait}{})",
                    class.name,
                    class.weight,
                    if class.sequential { ", sequential" } else { "" }
                );
                let total: u32 = class.tasks.iter().map(|t| t.weight).sum();
                for (i, task) in class.tasks.iter().enumerate() {
                    let share = if total > 0 {
                        task.weight as f64 * 100.0 / total as f64
                    } else {
                        0.0
                    };
                    crate::outln!(
                        "  task {i:<3} {:<28} weight {:>3} ({share:.0}%)",
                        task.name,
                        task.weight
                    );
                }
            }
            crate::outln!("imports");
            for import in &info.imports {
                crate::outln!("  {import}");
            }
            Ok(exit::OK)
        }
    }
}
