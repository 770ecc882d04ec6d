//! The [`Recorder`]: collects the checks of one scenario run (name, version,
//! outcome, detail, time), printing each as it completes when asked.

use std::io::Write;
use std::time::Instant;

use cni::CniVersion;

use super::Checked;
use crate::report::{CaseResult, Outcome};

/// Collects the checks of one scenario run.
pub(crate) struct Recorder {
    scenario: String,
    version: Option<String>,
    progress: bool,
    pub cases: Vec<CaseResult>,
}

impl Recorder {
    pub(super) fn new(scenario: &str, version: Option<CniVersion>, progress: bool) -> Recorder {
        Recorder {
            scenario: scenario.into(),
            version: version.map(|v| v.as_str().to_string()),
            progress,
            cases: Vec::new(),
        }
    }

    pub(super) fn push(
        &mut self,
        check: &str,
        outcome: Outcome,
        detail: Option<String>,
        millis: u64,
    ) {
        let case = CaseResult {
            scenario: self.scenario.clone(),
            check: check.into(),
            version: self.version.clone(),
            outcome,
            detail,
            millis,
        };
        if self.progress {
            let mut line = format!("{} {}", case.outcome.label(), case.id());
            if let Some(r) = case.outcome.reason() {
                line.push_str(&format!(": {r}"));
            } else if let Some(d) = &case.detail {
                line.push_str(&format!(" ({d})"));
            }
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        self.cases.push(case);
    }

    /// Runs one check: `Ok(detail)` passes, `Err(reason)` fails. Returns
    /// whether it passed.
    pub fn check(&mut self, name: &str, f: impl FnOnce() -> Checked<Option<String>>) -> bool {
        let start = Instant::now();
        let outcome = f();
        let millis = start.elapsed().as_millis() as u64;
        match outcome {
            Ok(detail) => {
                self.push(name, Outcome::Pass, detail, millis);
                true
            }
            Err(reason) => {
                self.push(name, Outcome::Fail(reason.to_string()), None, millis);
                false
            }
        }
    }

    pub fn skip(&mut self, name: &str, reason: &str) {
        self.push(name, Outcome::Skip(reason.into()), None, 0);
    }

    /// Records a setup failure (the world could not be built).
    pub fn setup_failed(&mut self, reason: impl std::fmt::Display) {
        self.push("setup", Outcome::Fail(reason.to_string()), None, 0);
    }
}
