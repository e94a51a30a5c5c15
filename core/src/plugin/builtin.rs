//! The built-in behaviours, compiled from `plugins/` by the build script and embedded.

/// Where the build put every plugin `.wasm` (built-ins and test fixtures).
pub const PLUGIN_DIR: &str = env!("PERFHOST_PLUGIN_DIR");

/// The built-in Auditor behaviours: what runs when no plugin is named, in this order.
pub const NAMES: [&str; 3] = ["auditor_user", "burst_user", "heavy_user"];

/// Every built-in: the Auditor behaviours, `http_get` (one path in a loop, for any service),
/// `auditor_benchmark` (benchmark.py's request, for `perfhost bench`) and `bench_verify` (the
/// WASM side of `perfhost plugin bench`).
pub const ALL: [&str; 6] = [
    "auditor_user",
    "burst_user",
    "heavy_user",
    "http_get",
    "auditor_benchmark",
    "bench_verify",
];

static AUDITOR_USER: &[u8] =
    include_bytes!(concat!(env!("PERFHOST_PLUGIN_DIR"), "/auditor_user.wasm"));
static BURST_USER: &[u8] = include_bytes!(concat!(env!("PERFHOST_PLUGIN_DIR"), "/burst_user.wasm"));
static HEAVY_USER: &[u8] = include_bytes!(concat!(env!("PERFHOST_PLUGIN_DIR"), "/heavy_user.wasm"));
static HTTP_GET: &[u8] = include_bytes!(concat!(env!("PERFHOST_PLUGIN_DIR"), "/http_get.wasm"));
/// benchmark.py's request (not part of the default set).
static AUDITOR_BENCHMARK: &[u8] = include_bytes!(concat!(
    env!("PERFHOST_PLUGIN_DIR"),
    "/auditor_benchmark.wasm"
));
/// The WASM side of `perfhost plugin bench` (not part of the default set).
static BENCH_VERIFY: &[u8] =
    include_bytes!(concat!(env!("PERFHOST_PLUGIN_DIR"), "/bench_verify.wasm"));

/// The component bytes of a built-in plugin.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    match name.trim_end_matches(".wasm") {
        "auditor_user" => Some(AUDITOR_USER),
        "burst_user" => Some(BURST_USER),
        "heavy_user" => Some(HEAVY_USER),
        "bench_verify" => Some(BENCH_VERIFY),
        "auditor_benchmark" => Some(AUDITOR_BENCHMARK),
        "http_get" => Some(HTTP_GET),
        _ => None,
    }
}
