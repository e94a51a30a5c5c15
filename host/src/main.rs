// The allocator: jemalloc by default (less CPU per request and memory per user than glibc's
// malloc), mimalloc with `--features mimalloc` (less CPU still, more memory per user); see
// docs/benchmarks.md, "Per-request cost".
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    perfhost::cli::main()
}
