//! Charts drawn with `plotters`: inline SVG for the HTML report, PNG files for `--png-dir`.
//!
//! Text is laid out (and, in PNGs, rasterised) with DejaVu Sans embedded in the binary
//! (`host/assets/fonts/`, registered once through plotters' `ab_glyph` feature), so charts
//! render the same on a machine with no system fonts: nothing here asks fontconfig.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use perfhost_core::result::memory::{MemoryProfile, MemorySample};
use perfhost_core::result::RunResult;
use perfhost_core::stats::{deserialize_histogram, Percentile};

/// DejaVu Sans 2.37 (Bitstream Vera license, `host/assets/fonts/LICENSE-DejaVu.txt`).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The family every chart asks for.
const FAMILY: &str = "sans-serif";
/// At most this many endpoints get a distribution panel (the busiest ones).
pub const MAX_DISTRIBUTION_PANELS: usize = 12;
/// Log-spaced buckets per distribution panel.
const DISTRIBUTION_BUCKETS: usize = 24;

/// Line charts sit two abreast in the HTML report on a laptop screen.
const LINE_WIDTH: u32 = 640;
const LINE_HEIGHT: u32 = 360;
/// The distribution grid spans the page.
const WIDTH: u32 = 960;
const PANEL_HEIGHT: u32 = 240;
const PANEL_COLUMNS: usize = 3;

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const RED: RGBColor = RGBColor(214, 39, 40);
const PURPLE: RGBColor = RGBColor(148, 103, 189);
const GREY: RGBColor = RGBColor(90, 90, 90);

/// Registers the embedded font under the families plotters uses (once per process).
fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            for family in [FAMILY, "serif", "monospace"] {
                for style in [FontStyle::Normal, FontStyle::Bold] {
                    plotters::style::register_font(family, style, FONT).map_err(|_| {
                        "the embedded chart font is not a valid TrueType font".to_string()
                    })?;
                }
            }
            Ok(())
        })
        .clone()
}

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: RGBColor,
    /// (seconds since the start, value); `None` values break the line.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A time-series line chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// One endpoint's response-time distribution: (from ms, to ms, requests) per bucket.
#[derive(Debug, Clone)]
pub struct DistributionPanel {
    pub label: String,
    pub requests: u64,
    pub buckets: Vec<(f64, f64, u64)>,
}

/// What a chart shows.
#[derive(Debug, Clone)]
pub enum ChartKind {
    Line(LineChart),
    Distribution {
        title: String,
        panels: Vec<DistributionPanel>,
        /// Endpoints left out (beyond `MAX_DISTRIBUTION_PANELS`).
        omitted: usize,
    },
}

/// A chart with its file stem (for `--png-dir`) and size.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File name without extension, e.g. `requests`.
    pub id: &'static str,
    pub kind: ChartKind,
}

impl Chart {
    pub fn title(&self) -> &str {
        match &self.kind {
            ChartKind::Line(c) => &c.title,
            ChartKind::Distribution { title, .. } => title,
        }
    }

    pub fn size(&self) -> (u32, u32) {
        match &self.kind {
            ChartKind::Line(_) => (LINE_WIDTH, LINE_HEIGHT),
            ChartKind::Distribution { panels, .. } => {
                let rows = panels.len().div_ceil(PANEL_COLUMNS).max(1) as u32;
                (WIDTH, 40 + rows * PANEL_HEIGHT)
            }
        }
    }

    /// The chart as an SVG document.
    pub fn to_svg(&self) -> Result<String, String> {
        ensure_font()?;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size()).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }

    /// The chart as PNG bytes (RGB, 8 bits).
    pub fn to_png(&self) -> Result<Vec<u8>, String> {
        ensure_font()?;
        let (w, h) = self.size();
        let mut pixels = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(|e| e.to_string())?;
        }
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, w, h);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
            writer
                .write_image_data(&pixels)
                .map_err(|e| e.to_string())?;
            writer.finish().map_err(|e| e.to_string())?;
        }
        Ok(out)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        match &self.kind {
            ChartKind::Line(chart) => draw_line_chart(root, chart),
            ChartKind::Distribution {
                title,
                panels,
                omitted,
            } => draw_distribution(root, title, panels, *omitted),
        }
    }
}

fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        1.0
    } else {
        v * 1.1
    }
}

/// Decimals for axis labels of a range reaching `max`.
fn decimals(max: f64) -> usize {
    if max >= 20.0 {
        0
    } else if max >= 2.0 {
        1
    } else if max >= 0.2 {
        2
    } else {
        3
    }
}

fn axis_label(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}

/// Seconds as `m:ss` for long runs.
fn time_label(v: f64, long: bool, decimals: usize) -> String {
    if long {
        let s = v.max(0.0).round() as u64;
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{v:.decimals$}")
    }
}

/// Distinct 1-2-5 values within [lo, hi] for a log axis (at most `max` of them).
fn log_key_points(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let mut points = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi && points.len() < 64 {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= lo && v <= hi {
                points.push(v);
            }
        }
        decade *= 10.0;
    }
    while points.len() > max {
        // Keep every other point, always the first.
        points = points.into_iter().step_by(2).collect();
    }
    if points.len() < 2 {
        points = vec![lo, hi];
    }
    points
}

fn ms_label(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{}", (v * 10.0).round() / 10.0)
    } else {
        format!("{}", (v * 1000.0).round() / 1000.0)
    }
}

fn draw_line_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    spec: &LineChart,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let x_max = spec
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let y_max = nice_max(
        spec.series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.1))
            .fold(0.0_f64, f64::max),
    );
    let empty = spec.series.iter().all(|s| s.points.is_empty());
    let title = if empty {
        format!("{} (no data)", spec.title)
    } else {
        spec.title.clone()
    };
    let long = x_max >= 120.0;
    let x_decimals = decimals(x_max);
    let y_decimals = decimals(y_max);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 20))
        .margin(10)
        .x_label_area_size(42)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(if long {
            "time since start (m:ss)"
        } else {
            "seconds since start"
        })
        .y_desc(spec.y_label.as_str())
        .x_label_formatter(&|v| time_label(*v, long, x_decimals))
        .y_label_formatter(&|v| axis_label(*v, y_decimals))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    for series in &spec.series {
        let color = series.color;
        // Split at gaps so a missing value does not draw a misleading line.
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for &(x, y) in &series.points {
            match y {
                Some(y) => {
                    if let Some(last) = segments.last_mut() {
                        last.push((x, y));
                    }
                }
                None => {
                    if segments.last().is_some_and(|s| !s.is_empty()) {
                        segments.push(Vec::new());
                    }
                }
            }
        }
        let mut labelled = false;
        for segment in segments.into_iter().filter(|s| !s.is_empty()) {
            let single = segment.len() == 1;
            let drawn = chart
                .draw_series(LineSeries::new(segment.clone(), color.stroke_width(2)))
                .map_err(err)?;
            if !labelled {
                labelled = true;
                drawn.label(series.name.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                });
            }
            if single {
                chart
                    .draw_series(segment.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(err)?;
            }
        }
    }
    if spec.series.len() > 1 && !empty {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font((FAMILY, 14))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

fn draw_distribution<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[DistributionPanel],
    omitted: usize,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut caption = title.to_string();
    if panels.is_empty() {
        caption.push_str(" (no data)");
    } else if omitted > 0 {
        caption.push_str(&format!(" ({omitted} quieter endpoints not shown)"));
    }
    let root = root.titled(&caption, (FAMILY, 22)).map_err(err)?;
    let rows = panels.len().div_ceil(PANEL_COLUMNS).max(1);
    let areas = root.split_evenly((rows, PANEL_COLUMNS));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let lo = panel
            .buckets
            .first()
            .map(|b| b.0)
            .unwrap_or(0.001)
            .max(0.001);
        let hi = panel
            .buckets
            .last()
            .map(|b| b.1)
            .unwrap_or(1.0)
            .max(lo * 1.5);
        let top = panel.buckets.iter().map(|b| b.2).max().unwrap_or(0);
        let y_max = top + (top / 10).max(1);
        let keys = log_key_points(lo, hi, 5);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{} ({} req)", short(&panel.label, 38), panel.requests),
                (FAMILY, 13),
            )
            .margin(6)
            .x_label_area_size(30)
            .y_label_area_size(44)
            .build_cartesian_2d((lo..hi).log_scale().with_key_points(keys), 0u64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("ms (log scale)")
            .y_labels(5)
            .x_label_formatter(&|v| ms_label(*v))
            .y_label_formatter(&|v| v.to_string())
            .label_style((FAMILY, 11))
            .axis_desc_style((FAMILY, 11))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                panel
                    .buckets
                    .iter()
                    .filter(|b| b.2 > 0)
                    .map(|&(from, to, n)| {
                        Rectangle::new([(from, 0), (to, n)], BLUE.mix(0.75).filled())
                    }),
            )
            .map_err(err)?;
    }
    Ok(())
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Seconds since the run's start for each history point.
fn elapsed(result: &RunResult) -> Vec<f64> {
    let start = result
        .history
        .first()
        .map(|_| result.meta.start_time)
        .unwrap_or(0.0);
    result
        .history
        .iter()
        .map(|p| (p.time - start).max(0.0))
        .collect()
}

/// The distribution panel of one endpoint from its serialized histogram.
pub fn distribution_panel(label: &str, histogram: &str) -> Option<DistributionPanel> {
    let h = deserialize_histogram(histogram)?;
    if h.is_empty() {
        return None;
    }
    let lo = (h.min().max(1) as f64) / 1000.0;
    let hi = (h.max().max(1) as f64) / 1000.0;
    let (lo, hi) = if hi <= lo * 1.01 {
        (lo / 1.5, hi * 1.5)
    } else {
        (lo, hi * 1.0001)
    };
    let ratio = (hi / lo).ln();
    let edges: Vec<f64> = (0..=DISTRIBUTION_BUCKETS)
        .map(|i| lo * (ratio * i as f64 / DISTRIBUTION_BUCKETS as f64).exp())
        .collect();
    let mut counts = vec![0u64; DISTRIBUTION_BUCKETS];
    for v in h.iter_recorded() {
        let ms = h.median_equivalent(v.value_iterated_to()) as f64 / 1000.0;
        let i = edges
            .windows(2)
            .position(|w| ms < w[1])
            .unwrap_or(DISTRIBUTION_BUCKETS - 1);
        counts[i] += v.count_at_value();
    }
    Some(DistributionPanel {
        label: label.to_string(),
        requests: h.len(),
        buckets: edges
            .windows(2)
            .zip(counts)
            .map(|(w, n)| (w[0], w[1], n))
            .collect(),
    })
}

/// The charts of a memory profile: RSS (the target's and perfhost's), VMS, threads and open
/// files; `start` (Unix seconds) is time 0 of the x axis.
pub fn profile_charts(profile: &MemoryProfile, start: f64) -> Vec<Chart> {
    let s = &profile.samples;
    let line = |name: &str, color: RGBColor, f: &dyn Fn(&MemorySample) -> f64| Series {
        name: name.to_string(),
        color,
        points: s
            .iter()
            .map(|x| ((x.time - start).max(0.0), Some(f(x))))
            .collect(),
    };
    let who = format!("pid {}", profile.metadata.target.pid);
    vec![
        Chart {
            id: "memory_rss",
            kind: ChartKind::Line(LineChart {
                title: format!("RSS of the server under test ({who})"),
                y_label: "MB".into(),
                series: vec![
                    line("server RSS", BLUE, &|x| x.rss_mb),
                    line("perfhost RSS", GREY, &|x| x.perfhost_rss_mb),
                ],
            }),
        },
        Chart {
            id: "memory_vms",
            kind: ChartKind::Line(LineChart {
                title: format!("Virtual memory of the server under test ({who})"),
                y_label: "MB".into(),
                series: vec![line("server VMS", GREEN, &|x| x.vms_mb)],
            }),
        },
        Chart {
            id: "threads_fds",
            kind: ChartKind::Line(LineChart {
                title: format!("Threads and open files of the server under test ({who})"),
                y_label: "count".into(),
                series: vec![
                    line("threads", PURPLE, &|x| x.num_threads as f64),
                    line("open files", ORANGE, &|x| x.num_fds as f64),
                ],
            }),
        },
    ]
}

/// `perfhost profile --plot`: the profile's charts stacked in one PNG.
pub fn profile_png(profile: &MemoryProfile) -> Result<Vec<u8>, String> {
    ensure_font()?;
    let start = profile.samples.first().map_or(0.0, |s| s.time);
    let charts = profile_charts(profile, start);
    let (w, h) = (LINE_WIDTH + 320, LINE_HEIGHT * charts.len() as u32);
    let mut pixels = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        for (area, chart) in root.split_evenly((charts.len(), 1)).iter().zip(&charts) {
            if let ChartKind::Line(spec) = &chart.kind {
                draw_line_chart(area, spec)?;
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Every chart of a result, in report order.
pub fn charts(result: &RunResult) -> Vec<Chart> {
    let t = elapsed(result);
    let series = |name: &str, color: RGBColor, f: &dyn Fn(usize) -> Option<f64>| Series {
        name: name.to_string(),
        color,
        points: t.iter().enumerate().map(|(i, &x)| (x, f(i))).collect(),
    };
    let h = &result.history;
    let pct = |i: usize, p: Percentile| -> Option<f64> {
        // Over the 10-s window where the result has it: one second at a low rate holds too
        // few samples for a p95 that differs from the p99.
        let point = &h[i];
        match &point.window_ms {
            Some(w) => Some(w.get(p)),
            None => (point.requests > 0).then(|| point.percentiles_ms.get(p)),
        }
    };
    let mut out = vec![
        Chart {
            id: "requests",
            kind: ChartKind::Line(LineChart {
                title: "Requests per second".into(),
                y_label: "per second".into(),
                series: vec![
                    series("requests/s", BLUE, &|i| Some(h[i].rps)),
                    series("failures/s", RED, &|i| Some(h[i].failures_per_s)),
                ],
            }),
        },
        Chart {
            id: "response_times",
            kind: ChartKind::Line(LineChart {
                title: "Response times (10-s window)".into(),
                y_label: "ms".into(),
                series: vec![
                    series("p50", GREEN, &|i| pct(i, Percentile::P50)),
                    series("p95", ORANGE, &|i| pct(i, Percentile::P95)),
                    series("p99", PURPLE, &|i| pct(i, Percentile::P99)),
                ],
            }),
        },
        Chart {
            id: "users",
            kind: ChartKind::Line(LineChart {
                title: "Users".into(),
                y_label: "active users".into(),
                series: vec![series("users", GREY, &|i| Some(h[i].users as f64))],
            }),
        },
    ];
    let cpu = &result.generator.cpu_percent;
    if !cpu.is_empty() {
        out.push(Chart {
            id: "generator_cpu",
            kind: ChartKind::Line(LineChart {
                title: format!(
                    "perfhost CPU ({} cores = {}%)",
                    result.generator.cores,
                    result.generator.cores * 100
                ),
                y_label: "% of one core".into(),
                series: vec![Series {
                    name: "perfhost CPU".into(),
                    color: GREY,
                    points: cpu
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| (t.get(i).copied().unwrap_or(i as f64 + 1.0), Some(v)))
                        .collect(),
                }],
            }),
        });
    }
    if let Some(memory) = &result.memory {
        out.extend(profile_charts(memory, result.meta.start_time));
    }
    let mut endpoints: Vec<_> = result.stats.iter().filter(|s| s.requests > 0).collect();
    endpoints.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.name.cmp(&b.name)));
    let omitted = endpoints.len().saturating_sub(MAX_DISTRIBUTION_PANELS);
    let panels = endpoints
        .iter()
        .take(MAX_DISTRIBUTION_PANELS)
        .filter_map(|s| distribution_panel(&format!("{} {}", s.method, s.name), &s.histogram))
        .collect();
    if let Some(c) = &result.total.corrected {
        // Both curves of the run: from the send, and from the intended start.
        let panels = [
            distribution_panel("service time (from the send)", &result.total.histogram),
            distribution_panel("from the intended start (corrected)", &c.histogram),
        ];
        out.push(Chart {
            id: "corrected",
            kind: ChartKind::Distribution {
                title: "Service time and corrected response time (all requests)".into(),
                panels: panels.into_iter().flatten().collect(),
                omitted: 0,
            },
        });
    }
    out.push(Chart {
        id: "distribution",
        kind: ChartKind::Distribution {
            title: "Response-time distribution per endpoint".into(),
            panels,
            omitted,
        },
    });
    out
}

/// Writes every chart as `DIR/<id>.png` into `written` (a chart that cannot be drawn or
/// written is an error there; the others are still written).
pub fn write_pngs(result: &RunResult, dir: &Path, written: &mut super::outcome::Written) {
    for chart in charts(result) {
        let path = dir.join(format!("{}.png", chart.id));
        let outcome = chart
            .to_png()
            .map_err(|message| super::ReportError::Chart {
                chart: chart.id.to_string(),
                message,
            })
            .and_then(|bytes| {
                perfhost_core::outfile::write(&path, &bytes).map_err(|e| {
                    super::ReportError::Write {
                        path: e.path,
                        source: e.source,
                    }
                })
            });
        written.add(&path, outcome);
    }
}
