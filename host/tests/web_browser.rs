//! The web UI in a real browser: headless Chromium driven through chromedriver (WebDriver).
//! Starts a test from the form, watches the request counter rise, changes the user count,
//! pauses, resumes, reloads mid-run (the charts keep their history), stops; the screenshot
//! shows drawn charts and the console has no error.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::{self, ChildGuard, Mode, RecordingServer, TempDir};
use crate::web_ui::Ui;

const INSTALL: &str = "the web UI's browser test needs headless Chromium and chromedriver: run \
     `apt-get update && apt-get install -y chromium chromium-driver`";

/// chromedriver's browser log (`goog:loggingPrefs`), not part of W3C WebDriver.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// Starts chromedriver on a free loopback port and waits (≤ 10 s) until it accepts sessions.
fn chromedriver(driver: &PathBuf) -> (ChildGuard, u16) {
    let port = support::free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let guard = ChildGuard(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "chromedriver did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (guard, port)
}

async fn text(c: &Client, id: &str) -> String {
    match c.find(Locator::Id(id)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn number(c: &Client, id: &str) -> u64 {
    text(c, id).await.trim().parse().unwrap_or(0)
}

async fn points(c: &Client, id: &str) -> u64 {
    match c.find(Locator::Id(id)).await {
        Ok(e) => e
            .attr("data-points")
            .await
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// Polls until `f` holds, for at most `limit`.
macro_rules! wait_until {
    ($limit:expr, $what:expr, $cond:expr) => {{
        let started = Instant::now();
        loop {
            if $cond {
                break;
            }
            assert!(
                started.elapsed() < $limit,
                "timed out waiting for {}",
                $what
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }};
}

async fn fill(c: &Client, id: &str, value: &str) {
    let input = c.find(Locator::Id(id)).await.expect(id);
    input.clear().await.expect("clear");
    input.send_keys(value).await.expect("type");
}

async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .expect(id)
        .click()
        .await
        .unwrap_or_else(|e| panic!("click #{id}: {e}"));
}

/// Distinct colours in a PNG: a blank canvas has one or two, a drawn chart dozens.
fn colours(png_bytes: &[u8]) -> usize {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let step = info.color_type.samples();
    let mut seen = std::collections::HashSet::new();
    for px in buf[..info.buffer_size()].chunks(step) {
        seen.insert(px.to_vec());
    }
    seen.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_runs_a_test_in_chromium() {
    let (Some(chromium), Some(driver)) = (
        support::find_on_path(&["chromium", "chromium-browser", "google-chrome"]),
        support::find_on_path(&["chromedriver"]),
    ) else {
        assert!(std::env::var_os("CI").is_none(), "{INSTALL}");
        eprintln!("NOTICE: the_page_runs_a_test_in_chromium did not run: {INSTALL}");
        return;
    };
    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = TempDir::new("web-browser");
    // The recording server runs in this test process: its memory is the target's.
    let pid = std::process::id().to_string();
    let ui = Ui::start(
        &[
            "ui",
            "--web-port",
            "0",
            "-H",
            &server.url(),
            "-f",
            "burst_user",
            "--profile-pid",
            &pid,
        ],
        &dir.0,
        &[],
    );
    let (_driver, driver_port) = chromedriver(&driver);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--window-size=1280,800",
                     format!("--user-data-dir={}", dir.join("profile").display())],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session");
    let page = format!("http://127.0.0.1:{}/", ui.port);
    c.goto(&page).await.expect("the page loads");
    let limit = Duration::from_secs(20);
    wait_until!(limit, "the ready state", text(&c, "state").await == "ready");

    // Start from the form.
    fill(&c, "users", "3").await;
    fill(&c, "spawn-rate", "100").await;
    fill(&c, "run-time", "90s").await;
    click(&c, "start").await;
    wait_until!(limit, "running", text(&c, "state").await == "running");
    wait_until!(limit, "requests", number(&c, "request-count").await > 0);
    let first = number(&c, "request-count").await;
    wait_until!(
        limit,
        "the counter to rise",
        number(&c, "request-count").await > first
    );

    // More users.
    fill(&c, "edit-users", "6").await;
    fill(&c, "edit-spawn-rate", "100").await;
    click(&c, "apply-users").await;
    wait_until!(limit, "6 users", number(&c, "user-count").await == 6);

    click(&c, "pause").await;
    wait_until!(limit, "paused", text(&c, "state").await == "paused");
    click(&c, "resume").await;
    wait_until!(limit, "resumed", text(&c, "state").await == "running");

    // A reload mid-run keeps the charts' history (kept on the server).
    wait_until!(limit, "5 points", points(&c, "chart-rps").await >= 5);
    let before = points(&c, "chart-rps").await;
    c.refresh().await.expect("reload");
    wait_until!(
        limit,
        "the history after the reload",
        points(&c, "chart-rps").await >= before
    );
    assert!(points(&c, "chart-latency").await >= before);
    wait_until!(limit, "the memory chart", {
        match c.find(Locator::Id("chart-memory")).await {
            Ok(e) => e.is_displayed().await.unwrap_or(false),
            Err(_) => false,
        }
    });

    // The screenshot shows drawn charts: many colours in the chart areas.
    let shot = c.screenshot().await.expect("a screenshot");
    let saved = std::env::temp_dir().join("perfhost-web-ui.png");
    let _ = std::fs::write(&saved, &shot);
    for chart in ["chart-rps", "chart-latency", "chart-users"] {
        let png = c
            .find(Locator::Id(chart))
            .await
            .expect(chart)
            .screenshot()
            .await
            .expect("an element screenshot");
        assert!(
            colours(&png) > 8,
            "#{chart} looks blank (see {})",
            saved.display()
        );
    }
    let rows = c
        .find_all(Locator::Css("#stats-table tbody tr"))
        .await
        .expect("the statistics rows");
    assert!(rows.len() >= 2, "an endpoint row and Aggregated");

    click(&c, "stop").await;
    wait_until!(
        Duration::from_secs(30),
        "stopped",
        text(&c, "state").await == "stopped"
    );
    let link = c.find(Locator::Id("dl-html")).await.expect("#dl-html");
    assert!(link
        .attr("href")
        .await
        .unwrap()
        .is_some_and(|h| h.contains("/stats/report")));

    let log = c.issue_cmd(BrowserLog).await.expect("the browser log");
    let errors: Vec<_> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    c.close().await.expect("the session ends");
}
