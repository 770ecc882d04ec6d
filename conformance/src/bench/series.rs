//! The samples of one measured cell (a plugin verb on one side) and their
//! JSON summary: median, p95, p99 of the untraced runs, peak RSS of the
//! traced ones, failures with the first error and the median time a timed
//! failure took (what a side spent before giving up).

use serde_json::{json, Value};

use super::error::StepError;
use super::measure::{median, p95, p99, Probe, Sample};

/// Timings of one (plugin, verb) on one side.
#[derive(Debug, Default, Clone)]
pub struct Series {
    pub wall_ms: Vec<f64>,
    pub rss_kib: Vec<f64>,
    pub failures: usize,
    pub first_error: Option<String>,
    /// Wall time of the timed runs that failed.
    pub failed_ms: Vec<f64>,
}

impl Series {
    pub fn push(&mut self, s: Result<Sample, StepError>) {
        match s {
            Ok(s) if s.exit_code == Some(0) => match s.probe {
                Probe::Time => self.wall_ms.push(s.wall.as_secs_f64() * 1e3),
                Probe::PeakRss => self.rss_kib.extend(s.peak_rss_kib.map(|r| r as f64)),
            },
            Ok(s) => {
                if s.probe == Probe::Time {
                    self.failed_ms.push(s.wall.as_secs_f64() * 1e3);
                }
                self.fail(format!("exit {:?}: {}", s.exit_code, s.output_line()));
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    pub fn fail(&mut self, e: String) {
        self.failures += 1;
        self.first_error
            .get_or_insert_with(|| cni_runtime::truncate(&e, 200).to_string());
    }

    pub fn median(&self) -> Option<f64> {
        median(&self.wall_ms)
    }

    /// Median wall time of the timed runs that failed.
    pub fn failed_median(&self) -> Option<f64> {
        median(&self.failed_ms)
    }

    /// `{n, median_ms, p95_ms, p99_ms, peak_rss_kib, failures, first_error, failed_median_ms}`.
    pub fn to_json(&self) -> Value {
        let peak = self
            .rss_kib
            .iter()
            .cloned()
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        json!({
            "n": self.wall_ms.len(),
            "median_ms": self.median().map(round3),
            "p95_ms": p95(&self.wall_ms).map(round3),
            "p99_ms": p99(&self.wall_ms).map(round3),
            "peak_rss_kib": peak,
            "failures": self.failures,
            "first_error": self.first_error,
            "failed_median_ms": self.failed_median().map(round3),
        })
    }
}

/// `ours / reference` of two medians, when both exist.
pub fn ratio(ours: Option<f64>, reference: Option<f64>) -> Option<f64> {
    match (ours, reference) {
        (Some(a), Some(b)) if b > 0.0 => Some(round3(a / b)),
        _ => None,
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
