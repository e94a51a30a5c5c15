/// `--features mimalloc`: less CPU per request, more memory per user (docs/benchmarks.md,
/// "Per-request cost").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    perfhost::cli::main()
}
