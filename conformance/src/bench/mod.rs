//! `cni-conformance bench`: the one benchmark. Phases (each a module):
//! `verbs` (every plugin's ADD/CHECK/STATUS/GC/DEL, ours and the reference
//! taking turns invocation by invocation), `node` (N pods through the whole
//! chain in parallel via the runtime library), `scaling` (portmap with many
//! pods mapped, bandwidth with many shaped pods, connection rate through a
//! hostPort), `shaping` (achieved rates, first-second burst, latency through a
//! saturated TBF). The result is one JSON document; `report` renders it as
//! Markdown and `plot` draws its SVG figures. Everything runs inside
//! throwaway netns (one world per plugin directory), never on the real host.

pub mod error;
pub mod measure;
pub mod node;
pub mod plot;
pub mod report;
pub mod scaling;
pub mod series;
pub mod shaping;
pub mod side;
pub mod verbs;

use std::path::{Path, PathBuf};
use std::time::Instant;

use cni::CniVersion;
use serde_json::{json, Value};

use crate::scenarios::query_versions;
use crate::topology::Tools;
use measure::Probe;
use side::Side;

/// Why the benchmark could not run (a phase that fails records its error
/// in the document instead).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Not root, or no usable `ip`.
    #[error(transparent)]
    Privileges(#[from] crate::topology::TopologyError),
    /// This binary (the traffic tools) could not be located.
    #[error("locating this binary: {0}")]
    CurrentExe(std::io::Error),
    /// A side's world (host netns, dual-stack pod) could not be built.
    #[error("building the world of {side}: {source}")]
    World {
        side: String,
        source: error::StepError,
    },
    /// A figure could not be drawn.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
    /// The document could not be encoded as JSON.
    #[error("encoding the bench document: {0}")]
    Encode(serde_json::Error),
    /// The report or the JSON could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `cni-conformance bench` was asked.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Our plugins.
    pub plugins: PathBuf,
    /// The reference plugins to compare with.
    pub vs: Option<PathBuf>,
    /// Where bridge and host-local come from (both sides use the same ones).
    pub main_plugins: PathBuf,
    /// Numbers of pods mapped to measure portmap at.
    pub pods: Vec<usize>,
    /// Numbers of shaped pods to measure bandwidth at.
    pub shaped_pods: Vec<usize>,
    /// Pods ADDed (then DELed) in parallel through the whole chain.
    pub node_pods: usize,
    /// Rates (Mbit/s) the shaping phase configures.
    pub rates_mbit: Vec<u64>,
    /// Seconds each throughput run lasts (the first one is excluded).
    pub shaping_seconds: f64,
    pub iterations: usize,
    /// The binary with the hidden `tool` subcommand (default: this one).
    pub tool_exe: Option<PathBuf>,
    /// Progress lines on stderr.
    pub progress: bool,
    /// The command line recorded in the report.
    pub command: String,
    /// The phases to run ([`PHASES`]); the others are null in the document.
    pub phases: Vec<String>,
    /// The plugins the verbs phase measures (empty: all).
    pub only: Vec<String>,
    /// The portmap backend our side is configured with (`"backend"` in its
    /// conf; None: the plugin's default). The reference has one backend.
    pub portmap_backend: Option<String>,
}

/// Every phase, in the order they run.
pub const PHASES: [&str; 4] = ["verbs", "node", "scaling", "shaping"];

impl BenchOptions {
    pub fn new(plugins: PathBuf) -> BenchOptions {
        BenchOptions {
            plugins,
            vs: None,
            main_plugins: PathBuf::from("/usr/lib/cni"),
            pods: vec![1, 100, 1000],
            shaped_pods: vec![1, 1000],
            node_pods: 50,
            rates_mbit: vec![10, 50, 200],
            shaping_seconds: 3.0,
            iterations: 20,
            tool_exe: None,
            progress: true,
            command: String::new(),
            phases: PHASES.iter().map(|p| p.to_string()).collect(),
            only: Vec::new(),
            portmap_backend: None,
        }
    }
}

/// Rounds run after the timed ones, traced, only for the peak RSS column.
pub const RSS_ROUNDS: usize = 3;

/// Timed rounds first, then [`RSS_ROUNDS`] traced ones.
pub fn probe_of(round: usize, iterations: usize) -> Probe {
    if round < iterations {
        Probe::Time
    } else {
        Probe::PeakRss
    }
}

/// A running benchmark: the options, the sides (ours first) and the tools.
pub struct Bench {
    pub opts: BenchOptions,
    pub sides: Vec<Side>,
    pub tools: Tools,
    started: Instant,
}

impl Bench {
    pub fn progress(&self, line: &str) {
        if self.opts.progress {
            eprintln!(
                "bench [{:>5.1}s]: {line}",
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// The newest version (≥ 0.4.0, so CHECK runs) every side's `plugin` supports.
pub fn common_version(sides: &[Side], plugin: &str) -> Option<CniVersion> {
    let mut common: Vec<CniVersion> = CniVersion::ALL
        .iter()
        .copied()
        .filter(|v| v.allows_check())
        .collect();
    for s in sides {
        let vs = query_versions(&s.dir.join(plugin)).ok()?;
        common.retain(|v| vs.contains(v));
    }
    common.into_iter().max()
}

/// Cores, kernel and load average of this machine now.
pub fn machine() -> Value {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let load: Vec<String> = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .map(String::from)
        .collect();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "kernel": read("/proc/sys/kernel/osrelease"),
        "loadavg": load.join(" "),
    })
}

/// Runs every phase and returns the JSON document.
pub fn run(opts: &BenchOptions) -> Result<Value, BenchError> {
    crate::topology::privileges()?;
    let exe = match &opts.tool_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(BenchError::CurrentExe)?,
    };
    let started = Instant::now();
    let mut bench = Bench {
        opts: opts.clone(),
        sides: Vec::new(),
        tools: Tools { exe },
        started,
    };
    bench.opts.iterations = bench.opts.iterations.max(1);
    let machine_start = machine();
    let mut dirs = vec![("ours", opts.plugins.clone())];
    if let Some(vs) = &opts.vs {
        dirs.push(("reference", vs.clone()));
    }
    for (label, dir) in &dirs {
        bench.progress(&format!(
            "building the world of {label} ({})",
            dir.display()
        ));
        let mut side =
            Side::new(label, dir, &opts.main_plugins).map_err(|source| BenchError::World {
                side: label.to_string(),
                source,
            })?;
        if *label == "ours" {
            side.portmap_backend = opts.portmap_backend.clone();
        }
        bench.sides.push(side);
    }
    let wanted = |phase: &str| bench.opts.phases.iter().any(|p| p == phase);
    let phase = |name: &str, run: fn(&Bench) -> Value| {
        if wanted(name) {
            run(&bench)
        } else {
            Value::Null
        }
    };
    let verbs = phase("verbs", verbs::run);
    let node = phase("node", node::run);
    let scaling = phase("scaling", scaling::run);
    let shaping = phase("shaping", shaping::run);
    bench.progress("done");
    Ok(json!({
        "command": opts.command,
        "machine": {"start": machine_start, "end": machine()},
        "sides": dirs.iter().map(|(l, d)| json!({"label": l, "dir": d.to_string_lossy()})).collect::<Vec<_>>(),
        "main_plugins": opts.main_plugins.to_string_lossy(),
        "portmap_backend": opts.portmap_backend,
        "iterations": bench.opts.iterations,
        "verbs": verbs,
        "node": node,
        "scaling": scaling,
        "shaping": shaping,
        "wall_s": series::round3(started.elapsed().as_secs_f64()),
    }))
}

/// Writes the JSON, the plots and the Markdown report where asked.
pub fn write_outputs(
    doc: &Value,
    json_path: Option<&Path>,
    report_path: Option<&Path>,
    plots: &Path,
) -> Result<String, BenchError> {
    let files = plot::draw_all(doc, plots)?;
    let md = report::render(doc, report_path.and_then(Path::parent), &files);
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|source| BenchError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    if let Some(p) = json_path {
        let text = serde_json::to_string_pretty(doc).map_err(BenchError::Encode)?;
        write(p, &(text + "\n"))?;
    }
    if let Some(p) = report_path {
        write(p, &md)?;
    }
    Ok(md)
}
