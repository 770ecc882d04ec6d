//! Suite results: one PASS/FAIL/SKIP line per check with its reason, the
//! final `N passed, M failed, K skipped` line, and the text/json/junit
//! renderings. Pure: never runs a scenario, never prints by itself.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail(_) => "FAIL",
            Outcome::Skip(_) => "SKIP",
        }
    }
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Pass => None,
            Outcome::Fail(r) | Outcome::Skip(r) => Some(r),
        }
    }
}

/// One reported check of one scenario at one cniVersion.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Scenario (world) name, e.g. `portmap`.
    pub scenario: String,
    /// What was checked, e.g. `tcp-from-other-pod`.
    pub check: String,
    /// The cniVersion the conflist declared, when the scenario is versioned.
    pub version: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Extra facts worth showing on a PASS (measured rates, versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub millis: u64,
}

impl CaseResult {
    /// `scenario/check@version`.
    pub fn id(&self) -> String {
        match &self.version {
            Some(v) => format!("{}/{}@{v}", self.scenario, self.check),
            None => format!("{}/{}", self.scenario, self.check),
        }
    }
}

/// Output formats of `cni-conformance run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Junit,
}

/// A `--format` that is not text, json or junit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?} (expected text, json or junit)")]
pub struct UnknownFormat(pub String);

impl std::str::FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "junit" => Ok(Format::Junit),
            other => Err(UnknownFormat(other.to_string())),
        }
    }
}

/// Everything one suite run produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SuiteReport {
    pub cases: Vec<CaseResult>,
    pub seconds: f64,
}

impl SuiteReport {
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Pass))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail(_)))
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skip(_)))
    }
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.outcome)).count()
    }

    /// `N passed, M failed, K skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }

    /// 0 when nothing failed, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failed() > 0)
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.to_text(),
            Format::Json => self.to_json(),
            Format::Junit => self.to_junit(),
        }
    }

    /// One line per check, then the summary line.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for c in &self.cases {
            let _ = write!(s, "{} {}", c.outcome.label(), c.id());
            if let Some(r) = c.outcome.reason() {
                let _ = write!(s, ": {r}");
            } else if let Some(d) = &c.detail {
                let _ = write!(s, " ({d})");
            }
            s.push('\n');
        }
        s.push_str(&self.summary());
        s.push('\n');
        s
    }

    pub fn to_json(&self) -> String {
        let body = serde_json::json!({
            "cases": self.cases,
            "passed": self.passed(),
            "failed": self.failed(),
            "skipped": self.skipped(),
            "seconds": self.seconds,
            "summary": self.summary(),
        });
        serde_json::to_string_pretty(&body).unwrap_or_default() + "\n"
    }

    /// JUnit XML: one testsuite per scenario, one testcase per check.
    pub fn to_junit(&self) -> String {
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            s,
            "<testsuites name=\"cni-conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            self.cases.len(),
            self.failed(),
            self.skipped(),
            self.seconds
        );
        let mut scenarios: Vec<&str> = Vec::new();
        for c in &self.cases {
            if !scenarios.contains(&c.scenario.as_str()) {
                scenarios.push(&c.scenario);
            }
        }
        for name in scenarios {
            let cases: Vec<&CaseResult> =
                self.cases.iter().filter(|c| c.scenario == name).collect();
            let failures = cases
                .iter()
                .filter(|c| matches!(c.outcome, Outcome::Fail(_)))
                .count();
            let skipped = cases
                .iter()
                .filter(|c| matches!(c.outcome, Outcome::Skip(_)))
                .count();
            let _ = writeln!(
                s,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
                xml_escape(name),
                cases.len()
            );
            for c in cases {
                let case_name = match &c.version {
                    Some(v) => format!("{}@{v}", c.check),
                    None => c.check.clone(),
                };
                let _ = write!(
                    s,
                    "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                    xml_escape(name),
                    xml_escape(&case_name),
                    Duration::from_millis(c.millis).as_secs_f64()
                );
                match &c.outcome {
                    Outcome::Pass => s.push_str("/>\n"),
                    Outcome::Fail(r) => {
                        let _ = writeln!(
                            s,
                            ">\n      <failure message=\"{}\"/>\n    </testcase>",
                            xml_escape(r)
                        );
                    }
                    Outcome::Skip(r) => {
                        let _ = writeln!(
                            s,
                            ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                            xml_escape(r)
                        );
                    }
                }
            }
            s.push_str("  </testsuite>\n");
        }
        s.push_str("</testsuites>\n");
        s
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SuiteReport {
        let case = |check: &str, outcome: Outcome| CaseResult {
            scenario: "portmap".into(),
            check: check.into(),
            version: Some("1.0.0".into()),
            outcome,
            detail: None,
            millis: 12,
        };
        SuiteReport {
            cases: vec![
                case("tcp-from-host", Outcome::Pass),
                case(
                    "udp",
                    Outcome::Fail("no reply from 10.0.0.1:53 <udp>".into()),
                ),
                case("ipv6", Outcome::Skip("portmap binary missing".into())),
            ],
            seconds: 1.5,
        }
    }

    #[test]
    fn text_ends_with_the_summary_line() {
        let r = sample();
        let text = r.to_text();
        assert!(text.contains("PASS portmap/tcp-from-host@1.0.0\n"));
        assert!(text.contains("FAIL portmap/udp@1.0.0: no reply"));
        assert!(text.ends_with("1 passed, 1 failed, 1 skipped\n"));
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn json_and_junit_carry_every_case() {
        let r = sample();
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["cases"].as_array().unwrap().len(), 3);
        assert_eq!(v["cases"][1]["outcome"], "fail");
        assert_eq!(v["failed"], 1);
        let x = r.to_junit();
        assert!(x.contains("tests=\"3\" failures=\"1\" skipped=\"1\""));
        assert!(x.contains("&lt;udp&gt;"));
        assert_eq!(x.matches("<testcase").count(), 3);
    }

    #[test]
    fn formats_parse() {
        assert_eq!("junit".parse::<Format>(), Ok(Format::Junit));
        assert!("yaml".parse::<Format>().is_err());
    }

    #[test]
    fn nothing_failed_exits_zero() {
        assert_eq!(SuiteReport::default().exit_code(), 0);
        assert_eq!(
            SuiteReport::default().summary(),
            "0 passed, 0 failed, 0 skipped"
        );
    }
}
