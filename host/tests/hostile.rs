//! perfhost tried as an attacker and a clumsy user would: the hostile-input sweep (a table of
//! cases, each the perfhost binary against a real target on 127.0.0.1 with its expected exit
//! code and message), and the dedicated tests of the hardening issue's items. The sweep's
//! table is also docs/hostile.md (checked here, so the two cannot drift).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::faults::FaultServer;
use crate::support::{self, fixture, Mode, RecordingServer};

mod inputs;

/// What a case runs against.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// No server (`{url}` is a closed port).
    None,
    /// The fault server.
    Faults,
}

/// One case of the sweep.
struct Case {
    id: &'static str,
    category: &'static str,
    what: &'static str,
    target: Target,
    /// `{url}`, `{dir}` and `{fixtures}` are replaced.
    args: &'static [&'static str],
    /// Files written into `{dir}` before the run: (name, content).
    files: &'static [(&'static str, &'static [u8])],
    exit: i32,
    /// Substrings the run's stderr must contain (all of them).
    stderr: &'static [&'static str],
    /// Substrings of the failures in `{dir}/out.json` (one of them, when given).
    failure: &'static [&'static str],
}

const RUN: &str = "run";

/// A target fault through `http_get`: 2 users for 2 s, 1 s request timeout.
macro_rules! fault {
    ($id:literal, $path:literal, $what:literal, $exit:expr, [$($failure:literal),*]) => {
        Case {
            id: $id,
            category: "target fault",
            what: $what,
            target: Target::Faults,
            args: &[RUN, "-H", "{url}", "--plugin", "http_get", "--config-value", concat!("path=", $path),
                "-u", "2", "-t", "2s", "--request-timeout", "1s", "--stop-timeout", "1s",
                "--no-report", "--json-file", "{dir}/out.json"],
            files: &[],
            exit: $exit,
            stderr: &[],
            failure: &[$($failure),*],
        }
    };
}

/// A command that must stop before sending anything, exit 2, with `stderr` in its message.
macro_rules! refused {
    ($id:literal, $category:literal, $what:literal, [$($arg:expr),*], [$($needle:literal),*]) => {
        refused!($id, $category, $what, [$($arg),*], [$($needle),*], [])
    };
    ($id:literal, $category:literal, $what:literal, [$($arg:expr),*], [$($needle:literal),*], [$(($name:literal, $content:expr)),*]) => {
        Case {
            id: $id,
            category: $category,
            what: $what,
            target: Target::None,
            args: &[$($arg),*],
            files: &[$(($name, $content)),*],
            exit: 2,
            stderr: &[$($needle),*],
            failure: &[],
        }
    };
}

/// An output that cannot be written: one line naming it and the OS error, exit 6 (the
/// result in `{dir}/r.json` is the fixture result).
macro_rules! lost {
    ($id:literal, $what:literal, [$($arg:expr),*], [$($needle:literal),*]) => {
        Case {
            id: $id,
            category: "lost output",
            what: $what,
            target: Target::None,
            args: &[$($arg),*],
            files: &[("r.json", RESULT_OK)],
            exit: 6,
            stderr: &[$($needle),*],
            failure: &[],
        }
    };
}

const RESULT_OK: &[u8] = include_bytes!("fixtures/result.json");

fn cases() -> Vec<Case> {
    vec![
        // Target faults: counted as failures of the right kind, never a hang or a panic.
        fault!(
            "fault-rst",
            "/rst",
            "TCP reset before any answer",
            1,
            ["reset", "connection"]
        ),
        fault!(
            "fault-close",
            "/close",
            "connection closed before any answer",
            1,
            ["reset", "connection", "closed"]
        ),
        fault!(
            "fault-garbage",
            "/garbage",
            "bytes that are not HTTP",
            1,
            ["invalid response"]
        ),
        fault!(
            "fault-short",
            "/short",
            "body shorter than its Content-Length",
            1,
            ["reset", "incomplete", "closed"]
        ),
        fault!(
            "fault-trickle",
            "/trickle",
            "body trickling past the request timeout",
            1,
            ["timed out"]
        ),
        fault!(
            "fault-hang",
            "/hang",
            "accepts and never answers",
            1,
            ["timed out"]
        ),
        fault!(
            "fault-bigheader",
            "/bigheader",
            "10 MB response header",
            1,
            ["invalid response", "too large"]
        ),
        fault!(
            "fault-big",
            "/big",
            "100 MB body, discarded by http_get",
            0,
            []
        ),
        fault!(
            "fault-bigchunked",
            "/bigchunked",
            "100 MB chunked body, discarded",
            0,
            []
        ),
        fault!(
            "fault-redirect-foreign",
            "/redirect-foreign",
            "redirect to another origin",
            1,
            ["denied"]
        ),
        fault!(
            "fault-redirect-loop",
            "/redirect-loop",
            "redirect loop",
            1,
            ["redirects"]
        ),
        fault!("fault-503", "/503", "5xx answers", 1, ["HTTP 503"]),
        Case {
            id: "fault-unreachable",
            category: "target fault",
            what: "nothing listens on the port",
            target: Target::None,
            args: &[RUN, "-H", "{url}", "-n", "1", "--no-report"],
            files: &[],
            exit: 3,
            stderr: &["unreachable", "check -H/--host"],
            failure: &[],
        },
        // Bad plugin files: one line naming the file and the fix, exit 2.
        refused!(
            "plugin-random",
            "bad plugin",
            "random bytes",
            [RUN, "--plugin", "{dir}/random.wasm", "--dry-run"],
            ["not a WebAssembly file"],
            [("random.wasm", b"\x93\x11\xfe\x00garbage\x01\x02\x03")]
        ),
        refused!(
            "plugin-text",
            "bad plugin",
            "a text file",
            [RUN, "--plugin", "{dir}/text.wasm", "--dry-run"],
            ["not a WebAssembly file"],
            [("text.wasm", b"fn main() {}\n")]
        ),
        refused!(
            "plugin-empty",
            "bad plugin",
            "an empty file",
            [RUN, "--plugin", "{dir}/empty.wasm", "--dry-run"],
            ["not a WebAssembly file"],
            [("empty.wasm", b"")]
        ),
        refused!(
            "plugin-truncated",
            "bad plugin",
            "a component cut in half",
            [RUN, "--plugin", "{dir}/cut.wasm", "--dry-run"],
            ["not a valid WebAssembly component", "wasmtime 50.0.1", "rebuild it with a toolchain known to load here"]
        ),
        refused!(
            "plugin-core-module",
            "bad plugin",
            "a core module, not a component",
            [RUN, "--plugin", "{dir}/core.wasm", "--dry-run"],
            ["core WebAssembly module", "wasm32-wasip2"],
            [("core.wasm", b"\0asm\x01\0\0\0")]
        ),
        refused!(
            "plugin-other-version",
            "bad plugin",
            "built for contract 0.1.0",
            [
                RUN,
                "--plugin",
                "{fixtures}/fixture_other_version.wasm",
                "--dry-run"
            ],
            ["perfhost:plugin@0.1.0", "0.2.4"]
        ),
        refused!(
            "plugin-missing",
            "bad plugin",
            "no such file",
            [RUN, "--plugin", "{dir}/nope.wasm", "--dry-run"],
            ["cannot read plugin", "--plugin"]
        ),
        refused!(
            "plugin-unknown-builtin",
            "bad plugin",
            "no such built-in",
            [RUN, "--plugin", "auditor_usr", "--dry-run"],
            ["unknown plugin `auditor_usr`", "built-in"]
        ),
        refused!(
            "plugin-unknown-class",
            "bad plugin",
            "--user-class names no class (dry run too)",
            [
                RUN,
                "--plugin",
                "burst_user",
                "--user-class",
                "Nope",
                "--dry-run"
            ],
            ["unknown user class `Nope`", "BurstUser"]
        ),
        // Durations, counts and limits that cannot be meant.
        refused!(
            "arg-run-time-1e30",
            "bad input",
            "-t 1e30",
            [RUN, "-t", "1e30"],
            ["30 days"]
        ),
        refused!(
            "arg-run-time-2e64",
            "bad input",
            "-t 18446744073709551616",
            [RUN, "-t", "18446744073709551616"],
            ["30 days"]
        ),
        refused!(
            "arg-stop-timeout-1e30",
            "bad input",
            "--stop-timeout 1e30",
            [RUN, "--stop-timeout", "1e30"],
            ["30 days"]
        ),
        refused!(
            "arg-request-timeout-1e30",
            "bad input",
            "--request-timeout 1e30",
            [RUN, "--request-timeout", "1e30"],
            ["30 days"]
        ),
        refused!(
            "arg-cpu-budget-1e30",
            "bad input",
            "--cpu-budget 1e30",
            [RUN, "--cpu-budget", "1e30"],
            ["30 days"]
        ),
        refused!(
            "arg-run-time-1.5e19-n",
            "bad input",
            "-t 1.5e19 -n 5",
            [RUN, "-t", "1.5e19", "-n", "5"],
            ["30 days"]
        ),
        refused!(
            "arg-run-time-negative",
            "bad input",
            "-t -1",
            [RUN, "-t", "-1"],
            ["cannot be negative"]
        ),
        refused!(
            "arg-run-time-zero",
            "bad input",
            "-t 0",
            [RUN, "-t", "0"],
            ["--run-time", "longer than 0s"]
        ),
        refused!(
            "arg-iterations-zero",
            "bad input",
            "-n 0",
            [RUN, "-n", "0"],
            ["--iterations", "at least 1"]
        ),
        refused!(
            "arg-request-timeout-zero",
            "bad input",
            "--request-timeout 0",
            [RUN, "--request-timeout", "0"],
            ["--request-timeout"]
        ),
        refused!(
            "arg-cpu-budget-zero",
            "bad input",
            "--cpu-budget 0",
            [RUN, "--cpu-budget", "0"],
            ["--cpu-budget"]
        ),
        refused!(
            "arg-memory-cap-zero",
            "bad input",
            "--memory-cap-mib 0",
            [RUN, "--memory-cap-mib", "0"],
            ["--memory-cap-mib", "at least 1"]
        ),
        refused!(
            "arg-users-zero",
            "bad input",
            "-u 0",
            [RUN, "-u", "0"],
            ["--users", "at least 1"]
        ),
        refused!(
            "arg-users-huge",
            "bad input",
            "-u 999999999: more memory than the machine has",
            [RUN, "-u", "999999999", "-n", "1"],
            ["999999999 users need about", "--force"]
        ),
        refused!(
            "arg-bad-duration",
            "bad input",
            "-t 5minutes",
            [RUN, "-t", "5minutes"],
            ["not a duration"]
        ),
        refused!(
            "arg-bad-host-port",
            "bad input",
            "-H with port 99999",
            [RUN, "-H", "http://127.0.0.1:99999", "-n", "1"],
            ["`99999` is not a port"]
        ),
        refused!(
            "arg-bad-host-scheme",
            "bad input",
            "-H ftp://…",
            [RUN, "-H", "ftp://127.0.0.1:21", "-n", "1"],
            ["only http and https"]
        ),
        refused!(
            "arg-bad-max-body",
            "bad input",
            "--max-body-size lots",
            [RUN, "--max-body-size", "lots"],
            ["not a size"]
        ),
        refused!(
            "arg-bad-threshold",
            "bad input",
            "--threshold 'p95 about 3'",
            [RUN, "--threshold", "p95 about 3", "--dry-run"],
            ["threshold `p95 about 3`", "no comparison", "p95 < 500ms"]
        ),
        refused!(
            "arg-threshold-unknown-metric",
            "bad input",
            "--threshold 'latency<3s'",
            [RUN, "--threshold", "latency<3s", "--dry-run"],
            ["unknown metric `latency`"]
        ),
        refused!(
            "arg-threshold-unknown-scope",
            "bad input",
            "--threshold 'class=Nope:p95<1s' (no such class)",
            [RUN, "--threshold", "class=Nope:p95<1s", "--dry-run"],
            ["Nope", "AuditorUser"]
        ),
        refused!(
            "compare-missing-file",
            "bad input",
            "compare with a baseline that is not there",
            ["compare", "{dir}/none.json", "{dir}/none.json"],
            ["none.json"]
        ),
        refused!(
            "compare-bad-allowance",
            "bad input",
            "compare --max-regression lots",
            ["compare", "a.json", "b.json", "--max-regression", "lots"],
            ["not a share"]
        ),
        // Settings and scenario files.
        refused!(
            "toml-unknown-key",
            "bad file",
            "perfhost.toml with an unknown key",
            [RUN, "--config", "{dir}/perfhost.toml", "--dry-run"],
            ["perfhost.toml:2", "userz"],
            [("perfhost.toml", b"users = 3\nuserz = 4\n")]
        ),
        refused!(
            "toml-run-time-1e30",
            "bad file",
            "run-time = \"1e30\" in perfhost.toml",
            [RUN, "--config", "{dir}/perfhost.toml", "--dry-run"],
            ["perfhost.toml", "30 days"],
            [("perfhost.toml", b"run-time = \"1e30\"\n")]
        ),
        refused!(
            "toml-not-toml",
            "bad file",
            "perfhost.toml that is not TOML",
            [RUN, "--config", "{dir}/perfhost.toml", "--dry-run"],
            ["perfhost.toml:1"],
            [("perfhost.toml", b"users: [3\n")]
        ),
        refused!(
            "toml-missing",
            "bad file",
            "--config names no file",
            [RUN, "--config", "{dir}/none.toml", "--dry-run"],
            ["cannot read config file"]
        ),
        refused!(
            "scenario-run-time-1e30",
            "bad file",
            "run-time = \"1e30\" in a scenario",
            [RUN, "--scenario", "{dir}/s.toml", "--dry-run"],
            ["s.toml:2", "run-time", "30 days"],
            [("s.toml", b"name = \"s\"\nrun-time = \"1e30\"\n")]
        ),
        refused!(
            "scenario-negative-users",
            "bad file",
            "users = -5 in a scenario",
            [RUN, "--scenario", "{dir}/s.toml", "--dry-run"],
            ["s.toml:2", "at least 1"],
            [("s.toml", b"name = \"s\"\nusers = -5\n")]
        ),
        refused!(
            "scenario-unknown-weight",
            "bad file",
            "weights for a class no plugin has (dry run too)",
            [RUN, "--scenario", "{dir}/s.toml", "--dry-run"],
            ["s.toml:3", "weights", "Nope"],
            [(
                "s.toml",
                b"name = \"s\"\nplugins = [\"burst_user\"]\nweights = { Nope = 3 }\n"
            )]
        ),
        refused!(
            "scenario-unknown-preset",
            "bad file",
            "no such preset",
            [RUN, "--scenario", "smok", "--dry-run"],
            ["no such scenario", "smoke"]
        ),
        refused!(
            "scenario-bad-threshold",
            "bad file",
            "a threshold that is not one",
            [RUN, "--scenario", "{dir}/s.toml", "--dry-run"],
            ["s.toml:2", "thresholds"],
            [("s.toml", b"name = \"s\"\nthresholds = [\"p95 about 3\"]\n")]
        ),
        // --data files.
        refused!(
            "data-missing",
            "bad data",
            "--data names no file",
            [
                RUN,
                "--data",
                "rows={dir}/none.csv",
                "-n",
                "1",
                "-H",
                "{url}"
            ],
            ["cannot read data file"]
        ),
        refused!(
            "data-syntax",
            "bad data",
            "--data without NAME=",
            [RUN, "--data", "rows.csv", "-n", "1", "-H", "{url}"],
            ["bad --data"]
        ),
        refused!(
            "data-header-only",
            "bad data",
            "a CSV with a header and no rows",
            [RUN, "--data", "rows={dir}/h.csv", "-n", "1", "-H", "{url}"],
            ["has no rows"],
            [("h.csv", b"a,b\n")]
        ),
        refused!(
            "data-bad-jsonl",
            "bad data",
            "JSON lines that are not JSON",
            [
                RUN,
                "--data",
                "rows={dir}/r.jsonl",
                "-n",
                "1",
                "-H",
                "{url}"
            ],
            ["r.jsonl line 2"],
            [("r.jsonl", b"{\"a\":1}\n{oops\n")]
        ),
        refused!(
            "data-directory",
            "bad data",
            "a directory as data file",
            [RUN, "--data", "rows={dir}", "-n", "1", "-H", "{url}"],
            ["data file", "is a directory"]
        ),
        // perfhost report on what is not a result.
        refused!(
            "report-not-json",
            "bad result",
            "report of a text file",
            ["report", "{dir}/r.json"],
            ["is not valid JSON"],
            [("r.json", b"hello")]
        ),
        refused!(
            "report-empty",
            "bad result",
            "report of an empty file",
            ["report", "{dir}/r.json"],
            ["is not valid JSON"],
            [("r.json", b"")]
        ),
        refused!(
            "report-wrong-shape",
            "bad result",
            "report of other JSON",
            ["report", "{dir}/r.json"],
            ["not a perfhost result"],
            [("r.json", b"{\"a\": [1, 2]}")]
        ),
        refused!(
            "report-other-schema",
            "bad result",
            "report of a result of another schema version",
            ["report", "{dir}/r.json"],
            ["perfhost-result/9"],
            [("r.json", b"{\"schema\": \"perfhost-result/9\"}")]
        ),
        refused!(
            "report-truncated",
            "bad result",
            "report of a result cut in half",
            ["report", "{dir}/r.json"],
            ["is not valid JSON"]
        ),
        refused!(
            "report-negative-count",
            "bad result",
            "report of a result with a negative count",
            ["report", "{dir}/r.json"],
            ["not a perfhost result"]
        ),
        refused!(
            "report-corrupt-histogram",
            "bad result",
            "report of a result whose histogram is corrupt",
            ["report", "{dir}/r.json"],
            ["histogram", "does not decode"]
        ),
        refused!(
            "report-missing",
            "bad result",
            "report of no file",
            ["report", "{dir}/none.json"],
            ["cannot read"]
        ),
        // Round 2: web UI, metrics server and rendered jobs
        refused!(
            "web-token-control",
            "bad input",
            "--web-token with a control character (run --metrics-port)",
            [
                RUN,
                "--metrics-port",
                "0",
                "--web-token",
                "ab\x01cd",
                "-t",
                "1s"
            ],
            ["--web-token", "printable ASCII"]
        ),
        refused!(
            "ui-web-token-control",
            "bad input",
            "--web-token with a control character (ui)",
            ["ui", "--web-port", "0", "--web-token", "ab\x01cd"],
            ["--web-token", "printable ASCII"]
        ),
        refused!(
            "ui-web-token-semicolon",
            "bad input",
            "--web-token with a space and a semicolon (ui)",
            ["ui", "--web-port", "0", "--web-token", "a b;c"],
            ["--web-token", "printable ASCII"]
        ),
        refused!(
            "k8s-password-in-config",
            "bad input",
            "k8s render with the target's password in the --config file (shipped in a ConfigMap)",
            [
                "k8s",
                "render",
                "--shards",
                "2",
                "--image",
                "registry.example/perfhost:0.3.0",
                "--config",
                "{dir}/perfhost.toml"
            ],
            ["carries a password", "-H"],
            [(
                "perfhost.toml",
                b"host = \"http://loader:pw-in-file@127.0.0.1:9\"\n"
            )]
        ),
        // Round 2: results and long runs
        refused!(
            "run-name-traversal",
            "bad input",
            "--run-name ../../../../tmp/x",
            [RUN, "-H", "{url}", "-n", "1", "--run-name", "../../../../tmp/x"],
            ["--run-name", "cannot name report files", "path separator"]
        ),
        refused!(
            "run-name-absolute",
            "bad input",
            "--run-name /tmp/x",
            [RUN, "-H", "{url}", "-n", "1", "--run-name", "/tmp/x"],
            ["cannot name report files"]
        ),
        refused!(
            "scenario-name-traversal",
            "bad file",
            "a scenario whose [report] name is ../../x",
            [RUN, "--scenario", "{dir}/s.toml", "-H", "{url}"],
            ["the scenario's [report] name", "cannot name report files"],
            [("s.toml", b"name = \"s\"\nusers = 1\nrun-time = \"1s\"\n[report]\nname = \"../../x\"\n")]
        ),
        refused!(
            "compare-nothing-in-common",
            "bad input",
            "compare of a run and a bench with no row in common",
            ["compare", "{dir}/r.json", "{dir}/b.json"],
            ["nothing was compared", "no endpoint or case in common"],
            [("r.json", RESULT_OK), ("b.json", BENCH_PY_OTHER)]
        ),
        refused!(
            "bench-warmup-huge",
            "bad file",
            "a bench suite with warmup = 1000000000000",
            ["bench", "--url", "{url}", "--suite", "{dir}/s.toml"],
            ["s.toml", "at most 100000"],
            [("s.toml", b"name = \"s\"\nplugin = \"http_get\"\n[[case]]\nname = \"a\"\nrequests = 4\nconcurrency = 1\nwarmup = 1000000000000\n")]
        ),
        lost!(
            "report-html-full-disk",
            "report --html to a full disk (/dev/full)",
            ["report", "{dir}/r.json", "--html", "/dev/full"],
            ["cannot write /dev/full", "No space left on device"]
        ),
        lost!(
            "report-csv-not-a-folder",
            "report --csv into a folder that is a file",
            ["report", "{dir}/r.json", "--csv", "{dir}/r.json/x"],
            ["cannot write", "r.json/x_stats.csv"]
        ),
        // Round 2: inputs, merge and messages
        refused!(
            "input-scenario-dev-zero",
            "bad file",
            "--scenario /dev/zero",
            [RUN, "--scenario", "/dev/zero", "--dry-run"],
            ["scenario file /dev/zero is a character device", "give the path of a file"]
        ),
        refused!(
            "input-scenario-fifo",
            "bad file",
            "--scenario naming a FIFO (no writer)",
            [RUN, "--scenario", "{dir}/fifo.toml", "--dry-run"],
            ["is a FIFO"]
        ),
        refused!(
            "input-scenario-folder",
            "bad file",
            "--scenario naming a folder",
            [RUN, "--scenario", "{dir}/folder.toml", "--dry-run"],
            ["is a directory"]
        ),
        refused!(
            "input-scenario-2gb",
            "bad file",
            "a 2 GiB scenario file (sparse)",
            [RUN, "--scenario", "{dir}/big.toml", "--dry-run"],
            ["is 2 GiB", "scenario files are capped at 1 MiB"]
        ),
        refused!(
            "input-config-dev-zero",
            "bad file",
            "--config /dev/zero",
            [RUN, "--config", "/dev/zero", "--dry-run"],
            ["config file /dev/zero is a character device"]
        ),
        refused!(
            "input-data-dev-zero",
            "bad data",
            "--data x=/dev/zero",
            [RUN, "--data", "x=/dev/zero", "-n", "1", "-H", "{url}"],
            ["data file /dev/zero is a character device"]
        ),
        refused!(
            "input-data-300mib",
            "bad data",
            "a 300 MiB data file (sparse)",
            [RUN, "--data", "x={dir}/big.csv", "-n", "1", "-H", "{url}"],
            ["data files are capped at 256 MiB"]
        ),
        refused!(
            "input-plugin-dev-zero",
            "bad plugin",
            "-f /dev/zero",
            [RUN, "-f", "/dev/zero", "--dry-run"],
            ["plugin /dev/zero is a character device"]
        ),
        refused!(
            "input-plugin-300mib",
            "bad plugin",
            "a 300 MiB .wasm (sparse)",
            [RUN, "-f", "{dir}/big.wasm", "--dry-run"],
            ["plugins are capped at 256 MiB"]
        ),
        refused!(
            "input-suite-dev-zero",
            "bad file",
            "bench --suite /dev/zero",
            ["bench", "--suite", "/dev/zero", "-H", "{url}"],
            ["bench suite /dev/zero is a character device"]
        ),
        refused!(
            "input-report-dev-zero",
            "bad result",
            "report /dev/zero",
            ["report", "/dev/zero"],
            ["result file /dev/zero is a character device"]
        ),
        refused!(
            "input-report-2gib",
            "bad result",
            "report of a 2 GiB result (sparse)",
            ["report", "{dir}/big.json"],
            ["result files are capped at 1 GiB"]
        ),
        refused!(
            "input-merge-dev-zero",
            "bad result",
            "merge /dev/zero",
            ["merge", "/dev/zero"],
            ["result file /dev/zero is a character device"]
        ),
        refused!(
            "input-compare-dev-zero",
            "bad result",
            "compare /dev/zero /dev/zero",
            ["compare", "/dev/zero", "/dev/zero"],
            ["result file /dev/zero is a character device"]
        ),
        refused!(
            "input-inspect-dev-zero",
            "bad plugin",
            "plugin inspect /dev/zero",
            ["plugin", "inspect", "/dev/zero"],
            ["plugin /dev/zero is a character device"]
        ),
        refused!(
            "input-scenario-show-dev-zero",
            "bad file",
            "scenario show /dev/zero",
            ["scenario", "show", "/dev/zero"],
            ["scenario file /dev/zero is a character device"]
        ),
        refused!(
            "input-collect-symlink",
            "bad result",
            "k8s collect of a shard file linked to /dev/zero",
            ["k8s", "collect", "--from", "{dir}/results"],
            ["shard-0.json is a character device"]
        ),
        refused!(
            "merge-shard-count-1e12",
            "bad result",
            "merge of a result claiming 10^12 shards",
            ["merge", "{dir}/shard-0.json"],
            ["shard 0/1000000000000", "COUNT 1 to 4096"]
        ),
        refused!(
            "merge-rows-1001",
            "bad result",
            "merge of a result with 1,001 rows",
            ["merge", "{dir}/shard-0.json"],
            ["more than 1000 stats rows", "not written by perfhost run"]
        ),
        refused!(
            "merge-history-800k",
            "bad result",
            "merge of a result with 800,000 seconds of history",
            ["merge", "{dir}/shard-0.json"],
            ["more than 691200 seconds of history"]
        ),
        refused!(
            "merge-long-hash",
            "bad result",
            "merge of shards whose plan hash is 1 MB",
            ["merge", "{dir}/shard-0.json", "{dir}/shard-1.json"],
            ["of plan xxxxxxxx", "bytes in all"]
        ),
        refused!(
            "toml-run-time-bool",
            "bad file",
            "run-time = true in perfhost.toml",
            [RUN, "--config", "{dir}/perfhost.toml", "--dry-run"],
            ["perfhost.toml:1", "expected a duration such as"],
            [("perfhost.toml", b"run-time = true\n")]
        ),
        refused!(
            "toml-users-text",
            "bad file",
            "users = \"ten\" in perfhost.toml",
            [RUN, "--config", "{dir}/perfhost.toml", "--dry-run"],
            ["perfhost.toml:1", "expected a whole number, 0 or more"],
            [("perfhost.toml", b"users = \"ten\"\n")]
        ),
        refused!(
            "conf-users-negative",
            "bad file",
            "users = -5 in locust.conf",
            [RUN, "--config", "{dir}/locust.conf", "--dry-run"],
            ["locust.conf:1", "`-5` cannot be negative"],
            [("locust.conf", b"users = -5\n")]
        ),
        refused!(
            "conf-bom",
            "bad file",
            "locust.conf with a UTF-8 byte-order mark: its first key is read",
            [RUN, "--config", "{dir}/locust.conf", "--dry-run"],
            ["locust.conf:1: field", "at least 1"],
            [("locust.conf", b"\xef\xbb\xbfusers = 0\n")]
        ),
        refused!(
            "data-duplicate-columns",
            "bad data",
            "a CSV whose header names a column twice",
            [RUN, "--data", "x={dir}/d.csv", "-n", "1", "-H", "{url}"],
            ["d.csv line 1", "column `id` appears twice"],
            [("d.csv", b"id,name,id\n1,a,2\n")]
        ),
        refused!(
            "data-bom-duplicate",
            "bad data",
            "a CSV with a byte-order mark: the first column keeps its name",
            [RUN, "--data", "x={dir}/d.csv", "-n", "1", "-H", "{url}"],
            ["column `id` appears twice in the header (columns 1 and 2)"],
            [("d.csv", b"\xef\xbb\xbfid,id\n1,2\n")]
        ),
        refused!(
            "scenario-stages-40d",
            "bad file",
            "stages adding up to 40 days",
            [RUN, "--scenario", "{dir}/s.toml", "--dry-run"],
            ["s.toml", "stages add up to 960h (40.0 days)", "30 days"],
            [(
                "s.toml",
                b"name = \"s\"\n[[stages]]\nusers = 1\nduration = \"20d\"\n[[stages]]\nusers = 1\nduration = \"20d\"\n"
            )]
        ),
        refused!(
            "k8s-namespace-on",
            "bad input",
            "k8s render --namespace on",
            [
                "k8s",
                "render",
                "--shards",
                "2",
                "--image",
                "r.example/p:1",
                "--namespace",
                "on",
                "-H",
                "http://127.0.0.1:9"
            ],
            ["--namespace `on`", "boolean", "perfhost-on"]
        ),
        refused!(
            "plugin-new-keyword",
            "bad input",
            "plugin new self",
            ["plugin", "new", "self"],
            ["`self` is a keyword", "e.g. self_user"]
        ),
        refused!(
            "plugin-new-shadow",
            "bad input",
            "plugin new context (shadows the SDK's Context)",
            ["plugin", "new", "context"],
            ["`Context` shadows", "e.g. context_user"]
        ),
        refused!(
            "plugin-new-sdk-file",
            "bad input",
            "plugin new behaviour --lang python",
            ["plugin", "new", "behaviour", "--lang", "python"],
            ["behaviour.py", "overwrite"]
        ),
        refused!(
            "plugin-new-stdlib",
            "bad input",
            "plugin new json --lang python",
            ["plugin", "new", "json", "--lang", "python"],
            ["standard-library module `json`", "e.g. json_user"]
        ),
    ]
}

/// A benchmark.py result whose only case no run result has.
const BENCH_PY_OTHER: &[u8] = br#"{"metadata":{"api_url":"x","timestamp":"t"},"results":[{"name":"only here","description":"","total_requests":200,"successful_requests":200,"failed_requests":0,"duration_seconds":1.0,"requests_per_second":50.0,"latency_p50_ms":50.0,"latency_p95_ms":50.5,"latency_p99_ms":51.0,"latency_min_ms":50.0,"latency_max_ms":52.0,"latency_avg_ms":50.2}]}"#;

/// Files some cases derive from real artefacts.
fn derived_files(id: &str, dir: &Path) {
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    match id {
        "plugin-truncated" => {
            let bytes = perfhost_core::plugin::builtin::bytes("burst_user").unwrap();
            write("cut.wasm", &bytes[..bytes.len() / 2]);
        }
        "report-truncated" => write("r.json", &RESULT_OK[..RESULT_OK.len() / 2]),
        "report-negative-count" => {
            let text =
                String::from_utf8_lossy(RESULT_OK).replacen("\"requests\": ", "\"requests\": -", 1);
            write("r.json", text.as_bytes());
        }
        "report-corrupt-histogram" => {
            let text = String::from_utf8_lossy(RESULT_OK).replacen(
                "\"histogram\": \"HIST",
                "\"histogram\": \"XXXX",
                1,
            );
            write("r.json", text.as_bytes());
        }
        "input-scenario-fifo" => {
            let path = std::ffi::CString::new(dir.join("fifo.toml").to_str().unwrap()).unwrap();
            // SAFETY: mkfifo(3) with a NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        }
        "input-scenario-folder" => std::fs::create_dir_all(dir.join("folder.toml")).unwrap(),
        "input-scenario-2gb" => sparse(&dir.join("big.toml"), 2 << 30),
        "input-data-300mib" => sparse(&dir.join("big.csv"), 300 << 20),
        "input-plugin-300mib" => sparse(&dir.join("big.wasm"), 300 << 20),
        "input-report-2gib" => sparse(&dir.join("big.json"), 2 << 30),
        "input-collect-symlink" => {
            std::fs::create_dir_all(dir.join("results")).unwrap();
            std::os::unix::fs::symlink("/dev/zero", dir.join("results/shard-0.json")).unwrap();
        }
        "merge-shard-count-1e12" => {
            let r = shard_result(0, 1_000_000_000_000, "h");
            write("shard-0.json", r.to_string().as_bytes());
        }
        "merge-rows-1001" => {
            let mut r = shard_result(0, 1, "h");
            let row = r["stats"][0].clone();
            r["stats"] = (0..1001)
                .map(|i| {
                    let mut row = row.clone();
                    row["name"] = format!("/r{i}").into();
                    row
                })
                .collect();
            write("shard-0.json", r.to_string().as_bytes());
        }
        "merge-history-800k" => write("shard-0.json", &long_history(800_000)),
        "merge-long-hash" => {
            let long = "x".repeat(1 << 20);
            write(
                "shard-0.json",
                shard_result(0, 2, &long).to_string().as_bytes(),
            );
            write(
                "shard-1.json",
                shard_result(1, 2, "other").to_string().as_bytes(),
            );
        }
        _ => {}
    }
}

/// A shard result with `seconds` points of history (text built directly: 800,000 points
/// as `serde_json::Value`s would take the test itself a gigabyte).
fn long_history(seconds: usize) -> Vec<u8> {
    let mut r = shard_result(0, 1, "h");
    let mut point = r["history"][0].clone();
    point["endpoints"] = serde_json::json!([]);
    point.as_object_mut().unwrap().remove("histogram");
    let start = point["time"].as_f64().unwrap();
    r["history"] = serde_json::json!("HISTORY");
    let mut points = String::with_capacity(seconds * 400);
    for i in 0..seconds {
        point["time"] = (start + i as f64).into();
        if i > 0 {
            points.push(',');
        }
        points.push_str(&point.to_string());
    }
    r.to_string()
        .replacen("\"HISTORY\"", &format!("[{points}]"), 1)
        .into_bytes()
}

/// A file of `len` bytes that takes no disk space.
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// The fixture result as shard `index` of `count` of plan `hash`.
fn shard_result(index: u64, count: u64, hash: &str) -> serde_json::Value {
    let mut r: serde_json::Value = serde_json::from_slice(RESULT_OK).unwrap();
    r["meta"]["shard"] = serde_json::json!({"index": index, "count": count, "plan_hash": hash});
    r
}

/// Runs one case; `Err` says why it did not hold.
async fn run_case(case: &Case, fault_url: &str, closed_url: &str) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!(
        "perfhost-hostile-{}-{}",
        std::process::id(),
        case.id
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, content) in case.files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    derived_files(case.id, &dir);
    let url = match case.target {
        Target::Faults => fault_url,
        Target::None => closed_url,
    };
    let fixtures = perfhost_core::plugin::builtin::PLUGIN_DIR;
    let args: Vec<String> = case
        .args
        .iter()
        .map(|a| {
            a.replace("{url}", url)
                .replace("{dir}", &dir.display().to_string())
                .replace("{fixtures}", fixtures)
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tokio::time::timeout(Duration::from_secs(60), support::perfhost(&args, &dir))
        .await
        .map_err(|_| "did not end within 60 s".to_string())?;
    let code = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut why = Vec::new();
    if code != case.exit {
        why.push(format!("exit {code}, expected {}", case.exit));
    }
    if stderr.contains("panicked") || code == 101 {
        why.push("panicked".to_string());
    }
    for needle in case.stderr {
        if !stderr.contains(needle) {
            why.push(format!("stderr lacks `{needle}`"));
        }
    }
    if case.exit == 2 && stderr.lines().filter(|l| l.starts_with("error")).count() != 1 {
        why.push("not exactly one error line".to_string());
    }
    if !case.failure.is_empty() {
        let json = std::fs::read_to_string(dir.join("out.json")).unwrap_or_default();
        let result: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        let errors: Vec<String> = result["failures"]
            .as_array()
            .map(|f| {
                f.iter()
                    .map(|f| f["error"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        if !errors
            .iter()
            .any(|e| case.failure.iter().any(|n| e.contains(n)))
        {
            why.push(format!(
                "failures {errors:?} name none of {:?}",
                case.failure
            ));
        }
    }
    if case.exit == 0 {
        let json = std::fs::read_to_string(dir.join("out.json")).unwrap_or_default();
        let result: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        if result["total"]["requests"].as_u64().unwrap_or(0) == 0 {
            why.push("no request recorded".to_string());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if why.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {} — stderr: {}",
            case.id,
            why.join("; "),
            stderr.trim()
        ))
    }
}

/// The sweep: every case holds. Prints the count held (the number the project tracks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hostile_sweep_holds() {
    let faults = FaultServer::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let fault_url = faults.url();
    let cases = cases();
    let mut failed = Vec::new();
    // Three at a time: most cases are short processes that mostly wait.
    for chunk in cases.chunks(3) {
        let runs = chunk.iter().map(|case| run_case(case, &fault_url, &closed));
        for result in futures_util::future::join_all(runs).await {
            if let Err(why) = result {
                failed.push(why);
            }
        }
    }
    eprintln!(
        "hostile sweep: {}/{} cases held",
        cases.len() - failed.len(),
        cases.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The sections of the table: a `// Round N: title` comment in `cases()` starts one at the
/// case after it (its id, the first string after the comment).
fn sections() -> Vec<(&'static str, &'static str)> {
    let source = include_str!("hostile.rs");
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("\n        // Round ") {
        let at = at + 1;
        let line_end = rest[at..].find('\n').map_or(rest.len(), |e| at + e);
        let title = rest[at..line_end].trim().trim_start_matches("// ");
        let after = &rest[line_end..];
        if let Some(open) = after.find('"') {
            let id = &after[open + 1..];
            if let Some(close) = id.find('"') {
                out.push((&id[..close], title));
            }
        }
        rest = after;
    }
    out
}

/// docs/hostile.md is this table.
#[test]
fn the_sweep_table_is_documented() {
    const HEADER: &str = "| case | kind | input | expected | exit |\n|---|---|---|---|---|\n";
    let sections = sections();
    let mut table = String::from(HEADER);
    for case in cases() {
        if let Some((_, title)) = sections.iter().find(|(id, _)| *id == case.id) {
            table.push_str(&format!("\n### {title}\n\n{HEADER}"));
        }
        let expected = if !case.failure.is_empty() {
            format!(
                "failures name {}",
                case.failure
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        } else if !case.stderr.is_empty() {
            format!(
                "one line with {}",
                case.stderr
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            "requests counted, nothing kept".to_string()
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            case.id,
            case.category,
            case.what.replace('|', "\\|"),
            expected.replace('|', "\\|"),
            case.exit
        ));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/hostile.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let begin = "<!-- sweep table: generated from host/tests/hostile.rs -->\n";
    let end = "<!-- end of sweep table -->";
    let current = doc
        .split(begin)
        .nth(1)
        .and_then(|rest| rest.split(end).next())
        .unwrap_or_default();
    if current != table {
        if std::env::var_os("PERFHOST_UPDATE_DOCS").is_some() {
            let (head, tail) = match (doc.split_once(begin), doc.split_once(end)) {
                (Some((head, _)), Some((_, tail))) => (head.to_string(), tail.to_string()),
                _ => (doc.clone(), "\n".to_string()),
            };
            std::fs::write(&path, format!("{head}{begin}{table}{end}{tail}")).unwrap();
        } else {
            panic!("docs/hostile.md's table differs from the sweep: run `PERFHOST_UPDATE_DOCS=1 cargo test --release hostile` and commit it\n{table}");
        }
    }
}

/// Reads every file under `dir` (reports and result), for secret checks.
fn all_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_file() {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    text
}

/// Item 1: a target that echoes headers, cookies and the query string in 2xx and 5xx bodies
/// (and sets a cookie from the Authorization header): no configured secret — API_TOKEN,
/// API_KEY, the URL's password or its Basic-auth form — reaches any file, stream or log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_any_output() {
    let faults = FaultServer::start().await;
    let dir = std::env::temp_dir().join(format!("perfhost-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let token = "tok-9f8e7d6c5b4a";
    let key = "key-1a2b3c4d5e6f";
    let password = "pw-0123456789";
    let basic = perfhost_core::client::basic_credentials("alice", password);
    let url_with_user = format!("http://alice:{password}@{}", faults.addr);
    for (path, user_info) in [("/echo500?q=1", false), ("/echo?x=2", true)] {
        let host = if user_info {
            url_with_user.clone()
        } else {
            faults.url()
        };
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_perfhost"))
            .current_dir(&dir)
            .env("API_KEY", key)
            .env_remove("PERFHOST_LOG")
            .envs((!user_info).then_some(("API_TOKEN", token)))
            .args([
                "run",
                "-H",
                &host,
                "--plugin",
                &fixture("fixture_body_reader"),
            ])
            .args([
                "--config-value",
                &format!("path={path}"),
                "-u",
                "1",
                "-n",
                "3",
                "--trace",
                "-L",
                "debug",
            ])
            .args([
                "--json-file",
                "out.json",
                "--csv",
                "out",
                "--html",
                "out.html",
            ])
            .output()
            .unwrap();
        let mut everything = String::from_utf8_lossy(&out.stdout).into_owned();
        everything.push_str(&String::from_utf8_lossy(&out.stderr));
        everything.push_str(&all_text(&dir));
        assert!(
            everything.contains("[redacted]"),
            "the echo was seen and redacted: {everything}"
        );
        for secret in [token, key, password, basic.as_str()] {
            assert!(
                !everything.contains(secret),
                "{secret} leaked ({path}):\n{everything}"
            );
        }
        let print = std::process::Command::new(env!("CARGO_BIN_EXE_perfhost"))
            .args(["run", "--print-config", "-H", &url_with_user])
            .env("API_KEY", key)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&print.stdout);
        assert!(
            !printed.contains(password) && !printed.contains(key),
            "{printed}"
        );
        assert!(printed.contains("alice:(hidden)"), "{printed}");
    }
}

/// Peak RSS of a child process in KiB, sampled every 50 ms until it exits.
fn run_measuring_rss(mut cmd: Command) -> (i32, u64, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = text
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        peak,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Item 2: 20 users reading 100 MB bodies stay under 100 MiB RSS with `http_get` (bodies are
/// discarded), and a body above --max-body-size read by a plugin is a failure naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_bodies_keep_memory_bounded() {
    let _serial = support::serial().await;
    let faults = FaultServer::start().await;
    let url = faults.url();
    let dir = std::env::temp_dir().join(format!("perfhost-bigbody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("big.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_perfhost"));
    cmd.args([
        "run",
        "-H",
        &url,
        "--plugin",
        "http_get",
        "--config-value",
        "path=/big",
    ])
    .args(["-u", "20", "-t", "4s", "--no-report", "--json-file"])
    .arg(&json);
    let (code, peak_kib, stderr) = tokio::task::spawn_blocking(move || run_measuring_rss(cmd))
        .await
        .unwrap();
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let requests = result["total"]["requests"].as_u64().unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(requests >= 20, "{requests} bodies of 100 MB read");
    assert!(
        result["total"]["avg_content_bytes"].as_f64().unwrap() >= 100e6,
        "the full size is counted: {}",
        result["total"]
    );
    assert!(
        peak_kib < 100 * 1024,
        "peak RSS {peak_kib} KiB for 20 users reading 100 MB each"
    );

    let json = dir.join("read.json");
    let out = support::perfhost(
        &[
            "run",
            "-H",
            &url,
            "--plugin",
            &fixture("fixture_body_reader"),
            "--config-value",
            "path=/big",
            "-u",
            "1",
            "-n",
            "2",
            "--max-body-size",
            "1MiB",
            "--no-report",
            "--json-file",
            json.to_str().unwrap(),
        ],
        &dir,
    )
    .await;
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        result["total"]["failures"].as_u64(),
        Some(2),
        "{}",
        result["failures"]
    );
    let error = result["failures"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("--max-body-size 1 MiB") && error.contains("100 MiB"),
        "{error}"
    );
}

/// Item 4: a plugin spinning beside `burst_user` takes little from it — BurstUser's request
/// count stays within 10% of its count alone and its latency within a few milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_plugin_leaves_other_classes_alone() {
    let _serial = support::serial().await;
    let demo = perfhost_demo::start(Default::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let burst = |result: &perfhost_core::result::RunResult| {
        result
            .stats
            .iter()
            .find(|s| s.name == "/verify (burst)")
            .map(|s| (s.requests, s.max_ms))
            .unwrap_or((0, 0.0))
    };
    // BurstUser users get the same ids (0–3) in both runs, hence the same seeded waits: in the
    // second, the spinner's users come after them (weights put BurstUser first).
    let mut alone = support::plan(&demo.url(), &["burst_user"]);
    alone.load = perfhost_core::plan::LoadShape::ramp(4, 100.0);
    alone.stop.run_time = Some(Duration::from_secs(6));
    let alone = support::run(&alone).await;
    let mut both = support::plan(
        &demo.url(),
        &["burst_user", &fixture("fixture_infinite_loop")],
    );
    both.classes.only = vec!["BurstUser".into(), "Hostile".into()];
    both.classes.weights = [("BurstUser".to_string(), 2), ("Hostile".to_string(), 1)].into();
    both.load = perfhost_core::plan::LoadShape::ramp(6, 100.0);
    both.stop.run_time = Some(Duration::from_secs(6));
    let both = support::run(&both).await;
    assert!(
        support::task_error(&both, "CPU budget").is_some(),
        "the spinner spun: {:?}",
        both.task_errors
    );
    let ((n_alone, max_alone), (n_both, max_both)) = (burst(&alone), burst(&both));
    let ratio = n_both as f64 / n_alone as f64;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "BurstUser {n_both} requests beside the spinner vs {n_alone} alone"
    );
    assert!(
        max_both < max_alone + 50.0,
        "BurstUser max latency {max_both} ms beside the spinner, {max_alone} ms alone"
    );
}

/// Item 5: plugin output is capped — 4 MiB unique task errors keep the result small, and a
/// plugin flooding its log is rate-limited with a count of what was suppressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_output_is_capped() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = std::env::temp_dir().join(format!("perfhost-noisy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = server.url();
    let noisy = fixture("fixture_noisy");
    let json = dir.join("errors.json");
    let out = support::perfhost(
        &[
            "run",
            "-H",
            &url,
            "--plugin",
            &noisy,
            "--user-class",
            "BigErrors",
            "-u",
            "2",
            "-t",
            "3s",
            "--no-report",
            "--json-file",
            json.to_str().unwrap(),
        ],
        &dir,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "task errors fail the run");
    let size = std::fs::metadata(&json).unwrap().len();
    assert!(size < 2_000_000, "result of {size} bytes");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let errors = result["task_errors"].as_array().unwrap();
    assert!(!errors.is_empty());
    for e in errors {
        let message = e["message"].as_str().unwrap();
        assert!(message.len() < 2200, "a message of {} bytes", message.len());
        assert!(
            message.contains("more bytes cut") || message.contains("other task errors"),
            "{}",
            &message[..80.min(message.len())]
        );
    }

    let out = support::perfhost(
        &[
            "run",
            "-H",
            &url,
            "--plugin",
            &noisy,
            "--user-class",
            "Logger",
            "-u",
            "2",
            "-t",
            "3s",
            "--no-report",
        ],
        &dir,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        &stderr[..2000.min(stderr.len())]
    );
    assert!(
        stderr.len() < 200_000,
        "{} bytes of log in 3 s",
        stderr.len()
    );
    assert!(
        stderr.contains("log lines suppressed"),
        "{}",
        &stderr[..2000.min(stderr.len())]
    );
}

/// Item 6: a closed pipe ends printing, not the program: a listing command exits 0, a run
/// finishes and writes its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_does_not_panic() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = std::env::temp_dir().join(format!("perfhost-epipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let _ = std::fs::remove_file(&json);
    let url = server.url();
    let run_args = [
        "run",
        "-H",
        url.as_str(),
        "--plugin",
        "burst_user",
        "-u",
        "2",
        "-n",
        "4",
        "--json-file",
        json.to_str().unwrap(),
    ];
    for args in [
        &["plugin", "inspect", "burst_user"][..],
        &["scenario", "list"][..],
        &run_args[..],
    ] {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let shown = args.clone();
        let code = tokio::task::spawn_blocking(move || {
            // `perfhost … 2>&1 | head -0`: both streams a pipe whose reader is gone.
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            let mut child = Command::new(env!("CARGO_BIN_EXE_perfhost"))
                .args(&args)
                .stdout(writer.try_clone().unwrap())
                .stderr(writer)
                .spawn()
                .unwrap();
            child.wait().unwrap().code()
        })
        .await
        .unwrap();
        assert_eq!(code, Some(0), "{shown:?}");
    }
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(result["total"]["requests"].as_u64(), Some(4));
}

/// Item 7: a request body the sandbox cannot pass names its cause: 150 MiB is over the limit
/// of one guest→host call, 300 MiB over a 256 MiB memory cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_request_body_names_its_cause() {
    let server = RecordingServer::start(Mode::Auditor).await;
    for (mib, cap, cause) in [
        ("150", 1 << 30, "more than 128 MiB to the host in one call"),
        ("300", 256 << 20, "memory cap of 256 MiB"),
    ] {
        let mut plan = support::plan(&server.url(), &[&fixture("fixture_big_request")]);
        plan.config_values.insert("mib".into(), mib.into());
        plan.load = perfhost_core::plan::LoadShape::ramp(1, 10.0);
        plan.stop.run_time = None;
        plan.stop.iterations = Some(1);
        plan.limits.memory_cap = cap;
        let result = support::run(&plan).await;
        let error = result
            .task_errors
            .first()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        assert!(error.contains(cause), "{mib} MiB: {:?}", result.task_errors);
    }
}

/// Item 8: a base path in -H is kept and request paths join it, as Locust's `base_url + path`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_path_in_the_host_is_kept() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&format!("{}/api/v1/", server.url()), &["http_get"]);
    plan.config_values
        .insert("path".into(), "/verify?x=1".into());
    plan.load = perfhost_core::plan::LoadShape::ramp(1, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(2);
    let result = support::run(&plan).await;
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        ["/api/v1/verify?x=1", "/api/v1/verify?x=1"],
        "{:?}",
        result.failures
    );
}

/// `-H http://user:password@host` sends HTTP Basic auth on every request (as README says), and
/// the password reaches no output; an API_TOKEN's Bearer replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_in_the_host_sends_basic_auth() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let url = server
        .url()
        .replacen("http://", "http://alice:s3cr%40t@", 1);
    let mut plan = support::plan(&url, &["http_get"]);
    plan.config_values.insert("path".into(), "/health".into());
    plan.load = perfhost_core::plan::LoadShape::ramp(1, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(2);
    let result = support::run(&plan).await;
    // base64("alice:s3cr@t")
    let expected = Some("Basic YWxpY2U6czNjckB0".to_string());
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{:?}", result.failures);
    assert!(seen.iter().all(|s| s.authorization == expected), "{seen:?}");
    let json = serde_json::to_string(&result).expect("result serialises");
    assert!(!json.contains("s3cr"), "the password reached the result");

    plan.client.api_token = Some(perfhost_core::plan::Secret("tok".into()));
    support::run(&plan).await;
    let last = server.seen().pop().expect("a request");
    assert_eq!(last.authorization.as_deref(), Some("Bearer tok"));
}

/// Item 11: once the run stops, a plugin looping requests in on_start sends nothing more, and
/// its worker ends: the runtime that ran it shuts down without waiting for a thread still
/// running the plugin (a refused request that never yields kept it spinning).
#[test]
fn no_request_leaves_after_the_stop() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(loop_in_on_start_stops());
    let shutdown = Instant::now();
    runtime.shutdown_timeout(Duration::from_secs(20));
    assert!(
        shutdown.elapsed() < Duration::from_secs(20),
        "a worker still ran the plugin after the run returned"
    );
}

async fn loop_in_on_start_stops() {
    let faults = FaultServer::start().await;
    let mut plan = support::plan(&faults.url(), &[&fixture("fixture_start_loop")]);
    plan.load = perfhost_core::plan::LoadShape::ramp(2, 10.0);
    plan.stop.run_time = Some(Duration::from_secs(2));
    plan.stop.stop_timeout = Duration::from_secs(3);
    let started = Instant::now();
    let result = support::run(&plan).await;
    let at_stop = faults.requests.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = faults.requests.load(Ordering::Relaxed);
    assert!(
        result.total.requests > 10,
        "the loop ran: {}",
        result.total.requests
    );
    assert_eq!(at_stop, later, "requests after the run returned");
    // Every request the server saw was recorded, and none after the stop went out (the
    // server's count equals the result's, give or take the ones in flight at the stop).
    assert!(
        result.total.requests + 2 >= at_stop,
        "{} recorded, {at_stop} seen",
        result.total.requests
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
}

/// Item 11: a second Ctrl-C cancels in-flight requests at once (exit 130, result written),
/// instead of waiting for the stop timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_interrupt_forces_the_stop() {
    let faults = FaultServer::start().await;
    let dir = std::env::temp_dir().join(format!("perfhost-sigint2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let _ = std::fs::remove_file(&json);
    let mut child = Command::new(env!("CARGO_BIN_EXE_perfhost"))
        .args([
            "run",
            "-H",
            &faults.url(),
            "--plugin",
            "http_get",
            "--config-value",
            "path=/hang",
        ])
        .args([
            "-u",
            "2",
            "-t",
            "60s",
            "--stop-timeout",
            "60s",
            "--request-timeout",
            "60s",
            "--json-file",
        ])
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = child.id() as i32;
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe { libc::kill(pid, libc::SIGINT) };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(result["meta"]["interrupted"], true);
    let cancelled = result["failures"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["error"].as_str().unwrap_or("").contains("cancelled"));
    assert!(cancelled, "{}", result["failures"]);
}

/// A command that fails says so in one `error:` line, printed once; what is under it (the
/// errors of its chain, the innermost one's value) only at `-L debug` — also for a
/// configuration error, which comes before the plan's own level is known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_one_error_line_with_its_causes_only_at_debug() {
    let dir = support::TempDir::new("failure-debug");
    std::fs::write(dir.join("perfhost.toml"), "users = \"ten\"\n").unwrap();
    let config = dir.join("perfhost.toml").display().to_string();
    for (debug, level) in [(false, None), (false, Some("info")), (true, Some("debug"))] {
        let mut args = vec![RUN, "--config", &config, "--dry-run"];
        if let Some(level) = level {
            args.extend(["-L", level]);
        }
        let out = support::perfhost(&args, &dir.0).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{level:?}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{level:?}: one error line: {stderr}");
        assert!(
            errors[0].starts_with("error: ")
                && errors[0].contains("perfhost.toml:1")
                && errors[0].contains("expected a whole number, 0 or more"),
            "{level:?}: {stderr}"
        );
        let under: Vec<&str> = stderr.lines().filter(|l| l.starts_with("  ")).collect();
        if debug {
            // The field error's value: its file, line and field as the type holds them.
            assert!(
                under.iter().any(|l| l.starts_with("  debug: ")
                    && l.contains("FieldError")
                    && l.contains("field: \"users\"")),
                "{stderr}"
            );
        } else {
            assert!(
                under.is_empty(),
                "{level:?}: nothing under the error line: {stderr}"
            );
        }
    }
}
