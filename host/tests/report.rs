//! Reports: Locust-compatible CSV (golden files), the live history file, the HTML report in
//! headless Chromium, PNG charts without system fonts, and `perfhost report`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use perfhost::report::{self, HistoryCsvWriter, ReportOutputs};
use perfhost_core::plan::LoadShape;
use perfhost_core::result::RunResult;

use crate::support::{self, TempDir};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const EXE: &str = env!("CARGO_BIN_EXE_perfhost");

fn fixture(path: &str) -> PathBuf {
    Path::new(FIXTURES).join(path)
}

fn fixture_result() -> RunResult {
    report::load_result(&fixture("result.json")).expect("the fixture result loads")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first line of a CSV file, with its `\r\n`.
fn header(text: &str) -> &str {
    let end = text.find("\r\n").expect("a CRLF-terminated header") + 2;
    &text[..end]
}

// ---------- golden CSV files ----------

/// Renders the fixture result's CSVs and compares one of them with its golden file and its
/// header with the one Locust 2.47.0 wrote.
fn golden(kind: &str) {
    let dir = TempDir::new(&format!("golden-{kind}"));
    let outputs = ReportOutputs {
        csv_prefix: Some(dir.join("result")),
        ..Default::default()
    };
    let written = report::write_reports(&fixture_result(), &outputs)
        .into_result()
        .expect("CSVs written");
    assert_eq!(written.len(), 4, "{written:?}");
    let ours = read(&dir.join(&format!("result_{kind}.csv")));
    let expected = read(&fixture(&format!("expected/result_{kind}.csv")));
    assert_eq!(
        ours, expected,
        "{kind}.csv differs from tests/fixtures/expected/result_{kind}.csv"
    );
    let locust = read(&fixture(&format!("locust-2.47.0/{kind}.csv")));
    assert_eq!(
        header(&ours),
        header(&locust),
        "{kind}.csv header differs from Locust's"
    );
    // Every golden file has rows (the fixture has failures and task errors).
    assert!(ours.lines().count() >= 2, "{kind}.csv has no rows");
}

#[test]
fn golden_stats_csv() {
    golden("stats");
    // Aggregated last, with an empty Type; rows sorted by name then method.
    let text = read(&fixture("expected/result_stats.csv"));
    let rows: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(rows.last().unwrap().starts_with(",Aggregated,"));
    let names: Vec<&str> = rows[1..rows.len() - 1]
        .iter()
        .map(|r| r.split(',').nth(1).unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[test]
fn golden_stats_history_csv() {
    golden("stats_history");
}

#[test]
fn golden_failures_csv() {
    golden("failures");
}

#[test]
fn golden_exceptions_csv() {
    golden("exceptions");
}

/// Plugin-chosen names with commas, quotes and newlines are quoted as Python's csv module does.
/// `perfhost report` renders the fixture result's HTML and Markdown byte for byte as the golden
/// files do: a refactor that changes a report's bytes shows up here, not in a user's diff.
#[test]
fn golden_html_and_markdown() {
    let dir = TempDir::new("golden-html-md");
    let out = Command::new(EXE)
        .arg("report")
        .arg(fixture("result.json"))
        .arg("--html")
        .arg(dir.join("result.html"))
        .arg("--markdown")
        .arg(dir.join("result.md"))
        .output()
        .expect("perfhost report runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["result.html", "result.md"] {
        assert!(
            read(&dir.join(name)) == read(&fixture(&format!("expected/{name}"))),
            "{name} differs from tests/fixtures/expected/{name}"
        );
    }
}

#[test]
fn csv_fields_are_quoted_like_pythons_csv_module() {
    let mut result = fixture_result();
    result.failures.truncate(1);
    result.failures[0].name = "/items, \"quoted\"\nline2".into();
    result.failures[0].error = "<script>alert(1)</script>".into();
    let text = report::csv::failures_csv(&result);
    // What `csv.writer(f).writerow([...])` writes for the same fields.
    assert!(
        text.contains("\r\nGET,\"/items, \"\"quoted\"\"\nline2\",<script>alert(1)</script>,"),
        "{text:?}"
    );
}

/// The live writer's file holds each row as soon as `append` returns; its rows are the golden
/// file's, except the last (a whole result's final row carries the exact totals).
#[test]
fn history_writer_flushes_every_row() {
    let result = fixture_result();
    let dir = TempDir::new("history-writer");
    let prefix = dir.join("sub/live");
    let mut writer = HistoryCsvWriter::create(&prefix, false).expect("created");
    let path = dir.join("sub/live_stats_history.csv");
    assert_eq!(writer.path(), path);
    let expected = read(&fixture("expected/result_stats_history.csv"));
    let expected_rows: Vec<&str> = expected.split_inclusive("\r\n").collect();
    assert_eq!(read(&path), expected_rows[0], "the header is there at once");
    for (i, point) in result.history.iter().enumerate() {
        writer.append(point).expect("appended");
        let text = read(&path);
        let rows: Vec<&str> = text.split_inclusive("\r\n").collect();
        assert_eq!(
            rows.len(),
            i + 2,
            "row {i} is in the file right after append"
        );
        if i + 1 < result.history.len() {
            assert_eq!(rows[i + 1], expected_rows[i + 1]);
        } else {
            // Same interval columns; the totals are estimates until the result is complete.
            let cols = |r: &str| r.split(',').take(19).collect::<Vec<_>>().join(",");
            assert_eq!(cols(rows[i + 1]), cols(expected_rows[i + 1]));
        }
    }
}

// ---------- the history file while a run goes ----------

/// `perfhost run --csv PREFIX` writes PREFIX_stats_history.csv while the run is still going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_history_csv_has_rows_while_the_run_goes() {
    let server = perfhost_demo::start(Default::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = TempDir::new("live-run");
    let prefix = dir.join("live");
    let mut child = Command::new(EXE)
        .args([
            "run",
            "-u",
            "2",
            "-t",
            "6s",
            "--plugin",
            "burst_user",
            "--config",
            "/dev/null",
            "--no-report",
            "-H",
            &server.url(),
            "--csv",
        ])
        .arg(&prefix)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let history = dir.join("live_stats_history.csv");
    let locust = read(&fixture("locust-2.47.0/stats_history.csv"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen_mid_run = None;
    while Instant::now() < deadline {
        let exited = child.try_wait().unwrap().is_some();
        let text = std::fs::read_to_string(&history).unwrap_or_default();
        let rows = text.split("\r\n").filter(|l| !l.is_empty()).count();
        if rows >= 2 && !exited {
            // Read while the run goes: the header and at least one interval.
            assert_eq!(header(&text), header(&locust));
            assert!(text.contains(",,Aggregated,"), "{text}");
            seen_mid_run = Some(rows - 1);
            break;
        }
        if exited {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("perfhost run did not end");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    let rows = seen_mid_run.unwrap_or_else(|| {
        panic!(
            "no row in {} while the run was going (exists: {}) — does `perfhost run --csv` append through report::HistoryCsvWriter on every tick?",
            history.display(),
            history.exists()
        )
    });
    assert_eq!(status.code(), Some(0));
    // At the end the four files are complete.
    let final_history = read(&history);
    assert!(
        final_history
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .count()
            > rows
    );
    for kind in ["stats", "failures", "exceptions"] {
        let text = read(&dir.join(&format!("live_{kind}.csv")));
        let locust = read(&fixture(&format!("locust-2.47.0/{kind}.csv")));
        assert_eq!(header(&text), header(&locust), "{kind}");
    }
    assert!(read(&dir.join("live_stats.csv")).contains("\r\n,Aggregated,"));
}

// ---------- HTML in headless Chromium ----------

fn find_chromium() -> Option<PathBuf> {
    support::find_on_path(&["chromium", "chromium-browser", "google-chrome"])
}

fn chromium() -> PathBuf {
    find_chromium().expect("checked by the test before it starts")
}

const INSTALL_CHROMIUM: &str = "headless Chromium is needed for the HTML report test and is not \
     installed: run `apt-get update && apt-get install -y chromium chromium-driver`";

/// Runs Chromium headless on `url` with `extra` flags; returns (stdout, stderr).
fn run_chromium(url: &str, extra: &[String], dir: &TempDir, tag: &str) -> (String, String) {
    let profile = dir.join(&format!("profile-{tag}"));
    let out_path = dir.join(&format!("{tag}.stdout"));
    let err_path = dir.join(&format!("{tag}.stderr"));
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s ({tag})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (read(&out_path), read(&err_path))
}

/// Console messages (errors, uncaught exceptions, failed loads) in Chromium's log.
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect()
}

fn decode_png(path: &Path) -> (u32, u32, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type.samples(), buf)
}

fn luminance(px: &[u8]) -> f64 {
    0.299 * px[0] as f64 + 0.587 * px[1] as f64 + 0.114 * px[2] as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_of_a_real_run_renders_in_chromium() {
    // CI (which installs Chromium) must run this; a developer's fresh machine without Chromium
    // gets a loud notice instead of a failure of the README's test command.
    if find_chromium().is_none() {
        assert!(std::env::var_os("CI").is_none(), "{INSTALL_CHROMIUM}");
        eprintln!(
            "NOTICE: html_report_of_a_real_run_renders_in_chromium did not run: {INSTALL_CHROMIUM}"
        );
        return;
    }
    let server = perfhost_demo::start(
        perfhost_demo::DemoConfig {
            error_rate: 0.3,
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let mut plan = support::plan(&server.url(), &["burst_user", "auditor_user"]);
    plan.load = LoadShape::ramp(3, 10.0);
    plan.stop.run_time = Some(Duration::from_secs(3));
    // The demo server runs in this process: its memory is this process's.
    plan.profile = Some(perfhost_core::plan::ProfilePlan {
        query: perfhost_core::plan::ProcessQuery::Pid(std::process::id()),
        children: false,
        interval: Duration::from_millis(200),
        explicit: true,
        tables: Default::default(),
    });
    // One threshold the 30% error rate fails, one it passes.
    plan.thresholds = ["failure-rate < 1%", "requests > 0"]
        .iter()
        .map(|t| perfhost_core::plan::parse_threshold(t).unwrap())
        .collect();
    let mut result = support::run(&plan).await;
    assert!(result.total.requests > 0 && result.total.failures > 0);
    // A plugin-chosen name and a server's body that try to inject markup.
    let evil = "<script>alert('pwned')</script>/verify";
    result.stats[0].name = evil.into();
    result.failures[0].name = evil.into();
    if let Some(sample) = result.failure_samples.first_mut() {
        sample.body = "<img src=x onerror=alert(1)>".into();
    }

    let dir = TempDir::new("html");
    let html_path = dir.join("report.html");
    let outputs = ReportOutputs {
        html: Some(html_path.clone()),
        ..Default::default()
    };
    report::write_reports(&result, &outputs)
        .into_result()
        .expect("HTML written");
    let html = read(&html_path);
    // Escaped, never live markup; nothing fetched from anywhere.
    assert!(html.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;/verify"));
    assert!(!html.contains("<script"), "the report has no script at all");
    assert!(!html.contains("<img"), "a body is shown as text");
    // Every attribute perfhost writes is quoted; an escaped body's `src=x` is text.
    for fetch in [" src=\"", "href=\"", "url(", "@import"] {
        assert!(
            !html.contains(fetch),
            "the report must not fetch anything ({fetch})"
        );
    }

    let url = format!("file://{}", html_path.display());
    let (dom, log) = run_chromium(&url, &["--dump-dom".to_string()], &dir, "dom");
    assert!(dom.contains("id=\"stats-table\""), "stats table in the DOM");
    let rows = dom.matches("<tr>").count();
    assert!(rows > result.stats.len(), "{rows} table rows");
    let charts = dom.matches("<svg class=\"chart\"").count();
    assert!(charts >= 4, "{charts} charts in the DOM");
    assert!(
        dom.contains("RSS of the server under test") && dom.contains("id=\"memory\""),
        "the memory charts and section render"
    );
    assert!(dom.matches("<text").count() > 20, "charts carry text");
    let thresholds = dom
        .split("id=\"thresholds\"")
        .nth(1)
        .and_then(|t| t.split("</section>").next())
        .expect("the thresholds section renders");
    assert!(
        thresholds.contains("failure-rate &lt; 1%")
            && thresholds.contains("FAILED")
            && thresholds.contains("passed"),
        "each threshold's verdict: {thresholds}"
    );
    assert!(
        dom.contains("&lt;script&gt;alert('pwned')&lt;/script&gt;/verify"),
        "the name is a text node in the DOM"
    );
    assert!(!dom.contains("<script"), "no script element in the DOM");
    assert!(!dom.contains("<img"), "no image element from a body");
    let console = console_lines(&log);
    assert!(console.is_empty(), "console output: {console:#?}");

    let shot = dir.join("shot.png");
    let (_, log) = run_chromium(
        &url,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000".to_string(),
        ],
        &dir,
        "shot",
    );
    assert!(console_lines(&log).is_empty(), "{log}");
    let (w, h, samples, pixels) = decode_png(&shot);
    assert_eq!((w, h), (1280, 2000));
    let lum: Vec<f64> = pixels.chunks(samples).map(luminance).collect();
    let mean = lum.iter().sum::<f64>() / lum.len() as f64;
    let variance = lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lum.len() as f64;
    let ink = lum.iter().filter(|&&l| l < 160.0).count() as f64 / lum.len() as f64;
    assert!(
        variance > 100.0,
        "screenshot looks blank (variance {variance:.1})"
    );
    assert!(ink > 0.005, "screenshot has almost no ink ({:.4})", ink);
    // Chart colours are on screen (the requests/s line is blue: 31, 119, 180).
    let blue = pixels
        .chunks(samples)
        .filter(|p| p[2] > 150 && p[0] < 90 && p[1] > 90 && p[1] < 150)
        .count();
    assert!(blue > 50, "no chart line on screen ({blue} blue pixels)");

    // The console check itself works: a page with a script error is caught.
    let bad = dir.join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><p>x</p><script>undefinedFn()</script>",
    )
    .unwrap();
    let (_, log) = run_chromium(
        &format!("file://{}", bad.display()),
        &["--dump-dom".to_string()],
        &dir,
        "control",
    );
    assert!(
        !console_lines(&log).is_empty(),
        "Chromium did not log a script error: the console check cannot be trusted\n{log}"
    );
}

// ---------- PNG charts without system fonts ----------

#[test]
fn png_charts_render_text_without_system_fonts() {
    // The font comes from the binary: no fontconfig crate anywhere in the build.
    let lock = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"));
    for crate_name in ["font-kit", "yeslogic-fontconfig-sys", "servo-fontconfig"] {
        assert!(
            !lock.contains(&format!("name = \"{crate_name}\"")),
            "{crate_name} is in Cargo.lock: plotters' `ttf` feature crept in"
        );
    }
    let dir = TempDir::new("png");
    let out = Command::new(EXE)
        .arg("report")
        .arg(fixture("result.json"))
        .arg("--png-dir")
        .arg(dir.join("png"))
        // Nothing fontconfig could find, should anything ask it.
        .env("FONTCONFIG_FILE", "/nonexistent/fonts.conf")
        .env("FONTCONFIG_PATH", "/nonexistent")
        .env("XDG_DATA_HOME", "/nonexistent")
        .env("XDG_DATA_DIRS", "/nonexistent")
        .env("HOME", dir.join("home"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "requests",
        "response_times",
        "users",
        "generator_cpu",
        "distribution",
    ] {
        let path = dir.join(&format!("png/{name}.png"));
        let (w, h, samples, pixels) = decode_png(&path);
        assert!(w >= 600 && h >= 300, "{name}: {w}x{h}");
        // The title band: dark text pixels in the middle, on a mostly white background.
        let (mut dark, mut light, mut total) = (0, 0, 0);
        for y in 2..30u32 {
            for x in (w / 4)..(3 * w / 4) {
                let i = ((y * w + x) as usize) * samples;
                let l = luminance(&pixels[i..i + 3]);
                total += 1;
                if l < 100.0 {
                    dark += 1;
                } else if l > 240.0 {
                    light += 1;
                }
            }
        }
        assert!(
            dark > 60,
            "{name}: no title text drawn ({dark} dark pixels)"
        );
        assert!(
            light > total / 2,
            "{name}: the title band is not text on white"
        );
    }
}

// ---------- perfhost report ----------

#[test]
fn report_command_writes_every_format() {
    let dir = TempDir::new("command");
    let out = Command::new(EXE)
        .arg("report")
        .arg(fixture("result.json"))
        .arg("--html")
        .arg(dir.join("out/report.html"))
        .arg("--csv")
        .arg(dir.join("out/csv/run"))
        .arg("--markdown")
        .arg(dir.join("out/summary.md"))
        .arg("--png-dir")
        .arg(dir.join("out/png"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for file in [
        "report.html",
        "csv/run_stats.csv",
        "csv/run_stats_history.csv",
        "csv/run_failures.csv",
        "csv/run_exceptions.csv",
        "summary.md",
        "png/requests.png",
        "png/distribution.png",
    ] {
        let path = dir.join(&format!("out/{file}"));
        assert!(path.is_file(), "{file} missing; stderr: {stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    }
    assert_eq!(
        read(&dir.join("out/csv/run_stats.csv")),
        read(&fixture("expected/result_stats.csv"))
    );
    let md = read(&dir.join("out/summary.md"));
    assert!(md.starts_with("### perfhost: fixture — **FAILED**"), "{md}");
    assert!(
        md.contains("| POST | /verify (burst) | 14 | 4 (28.57%) |"),
        "{md}"
    );
    assert!(md.contains("**Aggregated**"));
    assert!(
        md.contains("Hostile.other\\_origin"),
        "markdown escaped: {md}"
    );

    // `--markdown -` prints to stdout, for CI job summaries.
    let out = Command::new(EXE)
        .arg("report")
        .arg(fixture("result.json"))
        .args(["--markdown", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), md);
}

#[test]
fn report_command_names_the_file_and_the_problem_on_bad_input() {
    let dir = TempDir::new("bad-input");
    let invalid = dir.join("invalid.json");
    std::fs::write(&invalid, "{\"schema\": \"perfhost-result/1\", ").unwrap();
    let not_result = dir.join("other.json");
    std::fs::write(&not_result, "{\"stats\": []}").unwrap();
    let wrong_shape = dir.join("shape.json");
    std::fs::write(
        &wrong_shape,
        "{\"schema\": \"perfhost-result/1\", \"meta\": 3}",
    )
    .unwrap();
    let missing = dir.join("missing.json");
    for (path, needle) in [
        (&missing, "cannot read"),
        (&invalid, "is not valid JSON"),
        (&not_result, "is not a perfhost result"),
        (&wrong_shape, "is not a perfhost result"),
    ] {
        let out = Command::new(EXE)
            .arg("report")
            .arg(path)
            .arg("--html")
            .arg(dir.join("never.html"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].starts_with("error: "), "{stderr}");
        assert!(lines[0].contains(&path.display().to_string()), "{stderr}");
        assert!(lines[0].contains(needle), "{stderr}");
        assert!(!dir.join("never.html").exists());
    }
}
