//! The memory profiler against real processes on this machine: the demo server with and
//! without its leak knob, a target that opens files and exits, finding a process by port,
//! the plot, and a run's result with the target's memory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support;

/// `perfhost demo-server ARGS` on a free port: (guard, port).
fn demo_server(args: &[&str]) -> (support::ChildGuard, u16) {
    let (guard, addr) = support::demo_child(args);
    (guard, addr.port())
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("perfhost-profile-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `perfhost profile ARGS -o DIR/p`: (exit code, stdout + stderr, the JSON).
async fn profile(args: &[&str], dir: &Path) -> (Option<i32>, String, Value) {
    let prefix = dir.join("p");
    let prefix_text = prefix.display().to_string();
    let mut all = vec!["profile"];
    all.extend(args);
    all.extend(["-o", &prefix_text]);
    let out = support::perfhost(&all, dir).await;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let json = std::fs::read_to_string(dir.join("p.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (out.status.code(), text, json)
}

/// 12 MB/min of leak is a high-growth warning with a slope within 25% of the rate and exit 4;
/// the same server without the leak is healthy, exit 0 (62 s at 1 s intervals, side by side).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leak_is_told_from_a_healthy_server() {
    let (_leaky, leaky_port) = demo_server(&["--leak", "12MB/min"]);
    let (_healthy, healthy_port) = demo_server(&[]);
    let (d1, d2) = (dir("leak"), dir("healthy"));
    let url1 = format!("http://127.0.0.1:{leaky_port}");
    let url2 = format!("http://127.0.0.1:{healthy_port}");
    let args = [
        "--duration",
        "62s",
        "--interval",
        "1s",
        "--request",
        "verify",
    ];
    let leak_args: Vec<&str> = ["--url", url1.as_str()].into_iter().chain(args).collect();
    let healthy_args: Vec<&str> = ["--url", url2.as_str()].into_iter().chain(args).collect();
    let (leak, healthy) = tokio::join!(profile(&leak_args, &d1), profile(&healthy_args, &d2));
    let (code, out, json) = leak;
    assert_eq!(code, Some(4), "{out}");
    let a = &json["analysis"];
    assert_eq!(a["verdict"], "high", "{out}");
    let slope = a["growth_rate_mb_per_min"].as_f64().unwrap();
    assert!(
        (9.0..=15.0).contains(&slope),
        "slope {slope} MB/min for a 12 MB/min leak"
    );
    assert!(a["warning"]
        .as_str()
        .unwrap()
        .contains("High memory growth"));
    assert!(json["samples"].as_array().unwrap().len() >= 60);
    assert!(
        json["samples"][0]["request_success"].as_bool().unwrap(),
        "the keep-alive request answered 200"
    );
    let (code, out, json) = healthy;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(json["analysis"]["verdict"], "healthy", "{out}");
    assert!(json["analysis"]["warning"].is_null());
    let schema: Value =
        serde_json::from_str(include_str!("../../docs/profile.schema.json")).unwrap();
    support::check_schema(&json, &schema, "profile");
}

/// A target that opens files and never closes them is flagged; when it exits mid-profile, the
/// samples so far are kept and the exit is said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rising_files_and_an_exit_are_reported() {
    // Timing-sensitive (a file every 0.1 s, a sample every 0.2 s): not beside the heavy tests.
    let _serial = support::serial().await;
    let d = dir("fds");
    // Listens on a free port, prints it, opens a file every 0.1 s for 4 s, then exits.
    let script = "import socket, sys, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\nprint(s.getsockname()[1], flush=True)\nfiles = []\nfor i in range(40):\n    files.append(open(sys.argv[1], 'w'))\n    time.sleep(0.1)\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(d.join("f.txt"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().to_string();
    let _guard = support::ChildGuard(child);
    let (code, out, json) = profile(
        &[
            "--port",
            &port,
            "--duration",
            "20s",
            "--interval",
            "0.2",
            "--request",
            "none",
            "--url",
            &format!("http://127.0.0.1:{port}"),
        ],
        &d,
    )
    .await;
    assert_eq!(code, Some(0), "too short to judge a leak: {out}");
    let a = &json["analysis"];
    assert_eq!(a["fds"]["rising"], true, "{a}");
    assert!(a["flags"].to_string().contains("open files rise"), "{a}");
    assert!(
        a["exited_at_seconds"].as_f64().is_some_and(|s| s < 10.0),
        "{a}"
    );
    assert!(a["flags"].to_string().contains("the process exited"), "{a}");
    assert!(
        json["samples"].as_array().unwrap().len() >= 10,
        "the samples are kept"
    );
    assert_eq!(a["verdict"], "too-short");
}

/// --port finds the process listening there (and --plot draws the profile with text, without
/// system fonts); a port nobody listens on is one line, exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_port_finds_the_process_and_the_plot_renders() {
    let (server, port) = demo_server(&[]);
    let d = dir("port");
    let url = format!("http://127.0.0.1:{port}");
    let (code, out, json) = profile(
        &[
            "--url",
            &url,
            "--port",
            &port.to_string(),
            "--duration",
            "2s",
            "--interval",
            "0.2",
            "--plot",
        ],
        &d,
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(json["metadata"]["target"]["pid"], server.0.id());
    assert_eq!(
        json["metadata"]["target"]["found_by"],
        format!("port {port}")
    );
    // The PNG: decodes, is not blank, has dark (text and line) pixels in its title band.
    let file = std::fs::File::open(d.join("p.png")).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let row = info.line_size;
    let title_dark = pixels[..row * 30]
        .chunks(3)
        .filter(|p| p.iter().all(|&c| c < 100))
        .count();
    assert!(
        title_dark > 50,
        "the title is drawn: {title_dark} dark pixels"
    );
    let distinct: std::collections::BTreeSet<&[u8]> = pixels.chunks(3).collect();
    assert!(distinct.len() > 10, "not blank");

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (code, out, _) = profile(
        &[
            "--port",
            &closed.to_string(),
            "--duration",
            "1s",
            "--request",
            "none",
        ],
        &d,
    )
    .await;
    assert_eq!(code, Some(2), "{out}");
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains(&format!("no process listens on TCP port {closed}")),
        "{out}"
    );
}

/// `perfhost run --profile-port` puts the target's samples and analysis in the result (which
/// validates against the schema) and memory charts in the HTML report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_profile_holds_the_targets_memory() {
    let (server, port) = demo_server(&[]);
    let d = dir("run");
    let url = format!("http://127.0.0.1:{port}");
    let json = d.join("run.json");
    let html = d.join("run.html");
    let out = support::perfhost(
        &[
            "run",
            "-H",
            &url,
            "--plugin",
            "burst_user",
            "-u",
            "2",
            "-t",
            "4s",
            "--profile-port",
            &port.to_string(),
            "--profile-interval",
            "200ms",
            "--json-file",
            json.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
        &d,
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a short run is too short to judge: {stdout}"
    );
    assert!(
        stdout.contains("Memory of the target") && stdout.contains("too short to judge"),
        "{stdout}"
    );
    let result = read_json(&json);
    let memory = &result["memory"];
    assert_eq!(memory["metadata"]["target"]["pid"], server.0.id());
    assert_eq!(memory["metadata"]["explicit"], true);
    assert!(
        memory["samples"].as_array().unwrap().len() >= 15,
        "{}",
        memory["samples"]
    );
    assert!(memory["analysis"]["rss"]["max_mb"].as_f64().unwrap() > 1.0);
    let schema: Value =
        serde_json::from_str(include_str!("../../docs/result.schema.json")).unwrap();
    support::check_schema(&result, &schema, "result");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("RSS of the server under test") && page.contains("Threads and open files")
    );
    assert!(page.contains("id=\"memory\""));
}
