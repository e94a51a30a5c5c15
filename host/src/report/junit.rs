//! JUnit XML, so any CI shows a run, a benchmark or a comparison as passed and failed tests:
//! one test case per threshold (or one for the run's failures), per benchmark case, per
//! compared metric.

use std::fmt::Write as _;

use perfhost_core::result::RunResult;

/// One test case.
pub struct TestCase {
    pub name: String,
    pub classname: String,
    pub seconds: f64,
    /// `Some((message, details))` when it failed.
    pub failure: Option<(String, String)>,
}

/// XML-escapes text for attributes and element content.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no place for most control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A `<testsuites>` document of one suite.
pub fn document(suite: &str, cases: &[TestCase]) -> String {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let time: f64 = cases.iter().map(|c| c.seconds).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"perfhost\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">",
        cases.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{time:.3}\">",
        xml(suite),
        cases.len()
    );
    for case in cases {
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
            xml(&case.name),
            xml(&case.classname),
            case.seconds
        );
        match &case.failure {
            None => out.push_str("/>\n"),
            Some((message, details)) => {
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\" type=\"perfhost\">{}</failure>\n    </testcase>",
                    xml(message),
                    xml(details)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// A run: one case per threshold; without thresholds, one case for the failure rule.
pub fn run(result: &RunResult) -> String {
    let suite = format!("perfhost run {}", result.meta.run_name);
    let seconds = result.meta.duration_s;
    let mut cases: Vec<TestCase> = result
        .thresholds
        .iter()
        .map(|t| TestCase {
            name: t.text.clone(),
            classname: "thresholds".into(),
            seconds,
            failure: (!t.passed).then(|| (t.describe(), t.describe())),
        })
        .collect();
    if result.thresholds.is_empty() {
        let failed = result.has_failures();
        cases.push(TestCase {
            name: "no failed request or task".into(),
            classname: "run".into(),
            seconds,
            failure: failed.then(|| {
                let message = format!(
                    "{} of {} requests failed, {} task errors",
                    result.total.failures,
                    result.total.requests,
                    result
                        .task_errors
                        .iter()
                        .map(|e| e.occurrences)
                        .sum::<u64>()
                );
                let details = result
                    .failures
                    .iter()
                    .take(20)
                    .map(|f| format!("{} × {} {}: {}", f.occurrences, f.method, f.name, f.error))
                    .collect::<Vec<_>>()
                    .join("\n");
                (message, details)
            }),
        });
    }
    for class in &result.stopped_classes {
        cases.push(TestCase {
            name: format!("user class {class}"),
            classname: "run".into(),
            seconds,
            failure: Some((
                "the class was stopped: its users kept trapping".into(),
                class.clone(),
            )),
        });
    }
    document(&suite, &cases)
}
