//! The conformance suite: a registry of scenarios, each run for every
//! cniVersion its plugins and a main plugin share, each in its own world (a
//! throwaway host netns in which every plugin process runs, pod netns, a temp
//! dir for cache/IPAM/state), with the REAL host snapshotted before and after
//! to prove isolation. Plugins missing from `--plugins` make their scenarios
//! SKIP with that reason, never PASS. Checks look at the wire (traffic tools)
//! and at the kernel inside the namespaces; this module owns the shared
//! plumbing (options, version matrix, runtime adapter, direct plugin exec),
//! the scenario modules own the checks.

mod bad_input;
pub(crate) mod bandwidth;
mod chain;
mod concurrency;
mod error;
mod exec;
mod interleave;
mod lifecycle;
mod loopback;
mod net;
mod portmap;
mod recorder;
mod tuning;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use cni::CniVersion;

pub(crate) use error::{CheckError, Checked};
pub(crate) use exec::{invoke, query_versions, version_document, PluginRun};
pub(crate) use net::{
    bandwidth_caps, expect_no_reply_from, expect_reply, full_chain, host_owns_port, nothing_left,
    one_line, port_mappings, sock, Attached, Net,
};
pub(crate) use recorder::Recorder;

use crate::report::{CaseResult, Format, Outcome, SuiteReport};
use crate::topology::{HostSnapshot, Tools};

/// What `cni-conformance run` was asked.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// The directory of the plugins under test.
    pub plugins: PathBuf,
    /// Main plugins (bridge, host-local); Debian's by default.
    pub main_plugins: PathBuf,
    /// Run only scenarios whose name contains this.
    pub only: Option<String>,
    pub format: Format,
    /// The binary with the hidden `tool` subcommand (default: this one).
    pub tool_exe: Option<PathBuf>,
    /// Where `cni-test-veth` lives (default: next to this binary).
    pub fixture_dir: Option<PathBuf>,
    /// Print each result line to stderr as it completes.
    pub progress: bool,
    /// Our portmap's `"backend"`, forced into every portmap conf that does
    /// not name one (None: each scenario's own, nftables by default).
    pub portmap_backend: Option<String>,
}

impl SuiteOptions {
    pub fn new(plugins: PathBuf) -> SuiteOptions {
        SuiteOptions {
            plugins,
            main_plugins: PathBuf::from("/usr/lib/cni"),
            only: None,
            format: Format::Text,
            tool_exe: None,
            fixture_dir: None,
            progress: false,
            portmap_backend: None,
        }
    }
}

/// The plugins a suite judges (chained meta plugins plus loopback).
pub const PLUGINS: &[&str] = &["portmap", "bandwidth", "tuning", "loopback"];

/// The main plugin a world uses for a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MainPlugin {
    /// Debian's bridge + host-local (≤ 1.0.0 for v1.1.1).
    Bridge,
    /// This crate's `cni-test-veth` fixture (0.3.0–1.1.0).
    TestVeth,
    /// The scenario needs no main plugin (loopback).
    None,
}

/// One scenario: its plugins and the function that runs one world.
struct Scenario {
    name: &'static str,
    /// Plugin binaries (from `--plugins`) it needs.
    plugins: &'static [&'static str],
    /// Needs a main plugin that puts an interface in the pod.
    needs_main: bool,
    /// Only versions ≥ this (GC/STATUS need 1.1.0).
    min_version: CniVersion,
    run: fn(&Ctx, &mut Recorder, CniVersion, MainPlugin),
}

impl Scenario {
    /// A scenario of `plugins` at every version, without a main plugin.
    fn new(
        name: &'static str,
        plugins: &'static [&'static str],
        run: fn(&Ctx, &mut Recorder, CniVersion, MainPlugin),
    ) -> Scenario {
        Scenario {
            name,
            plugins,
            needs_main: false,
            min_version: CniVersion::V0_1_0,
            run,
        }
    }

    /// Needs a main plugin that puts an interface in the pod.
    fn main(mut self) -> Scenario {
        self.needs_main = true;
        self
    }

    /// Only versions ≥ `v`.
    fn since(mut self, v: CniVersion) -> Scenario {
        self.min_version = v;
        self
    }
}

/// The meta-plugin chain the cross-plugin scenarios run.
const CHAIN: &[&str] = &["tuning", "portmap", "bandwidth"];

fn registry() -> Vec<Scenario> {
    let v1_1 = CniVersion::V1_1_0;
    vec![
        Scenario::new("version", &[], bad_input::version_scenario),
        Scenario::new("bad-input", &[], bad_input::bad_input_scenario),
        Scenario::new("loopback", &["loopback"], loopback::run),
        Scenario::new("portmap", &["portmap"], portmap::run).main(),
        Scenario::new("portmap-iptables", &["portmap"], portmap::run_iptables).main(),
        Scenario::new("bandwidth", &["bandwidth"], bandwidth::run).main(),
        Scenario::new("tuning", &["tuning"], tuning::run).main(),
        Scenario::new("chain", CHAIN, chain::run).main(),
        Scenario::new("del-without-cache", CHAIN, chain::del_without_cache).main(),
        Scenario::new("parallel-pods", CHAIN, concurrency::run).main(),
        Scenario::new("interleavings", CHAIN, interleave::run).main(),
        Scenario::new("gc", CHAIN, lifecycle::gc).main().since(v1_1),
        Scenario::new(
            "status",
            &["tuning", "portmap", "bandwidth", "loopback"],
            lifecycle::status,
        )
        .main()
        .since(v1_1),
    ]
}

/// Runs every (selected) scenario and returns the report.
pub fn run_suite(opts: &SuiteOptions) -> SuiteReport {
    let start = Instant::now();
    let mut report = SuiteReport::default();
    let ctx = match Ctx::new(opts) {
        Ok(c) => c,
        Err(reason) => {
            report.cases.push(CaseResult {
                scenario: "suite".into(),
                check: "setup".into(),
                version: None,
                outcome: Outcome::Fail(reason.to_string()),
                detail: None,
                millis: 0,
            });
            return report;
        }
    };
    for scenario in registry() {
        if let Some(only) = &opts.only {
            if !scenario.name.contains(only.as_str()) {
                continue;
            }
        }
        for case in ctx.run_scenario(&scenario) {
            report.cases.push(case);
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    report
}

/// Shared, read-only state of one suite run.
pub(crate) struct Ctx {
    pub opts: SuiteOptions,
    pub tools: Tools,
    pub fixture_dir: PathBuf,
    /// Versions each binary reported (failed queries are not kept).
    versions: Mutex<HashMap<PathBuf, Vec<CniVersion>>>,
}

impl Ctx {
    fn new(opts: &SuiteOptions) -> Checked<Ctx> {
        crate::topology::privileges()?;
        let exe = match &opts.tool_exe {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|source| CheckError::Exec {
                what: "locating",
                plugin: PathBuf::from("/proc/self/exe"),
                source,
            })?,
        };
        let fixture_dir = match &opts.fixture_dir {
            Some(d) => d.clone(),
            None => exe
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        if !opts.plugins.is_dir() {
            return Err(CheckError::unexpected(format!(
                "plugin directory {} does not exist",
                opts.plugins.display()
            )));
        }
        Ok(Ctx {
            opts: opts.clone(),
            tools: Tools { exe },
            fixture_dir,
            versions: Mutex::new(HashMap::new()),
        })
    }

    pub fn plugin_path(&self, plugin: &str) -> PathBuf {
        self.opts.plugins.join(plugin)
    }

    /// The versions a binary reports (VERSION), cached per path.
    pub fn versions_of(&self, path: &Path) -> Checked<Vec<CniVersion>> {
        if let Ok(cache) = self.versions.lock() {
            if let Some(v) = cache.get(path) {
                return Ok(v.clone());
            }
        }
        let v = query_versions(path)?;
        if let Ok(mut cache) = self.versions.lock() {
            cache.insert(path.to_path_buf(), v.clone());
        }
        Ok(v)
    }

    fn main_path(&self, main: MainPlugin) -> Option<PathBuf> {
        match main {
            MainPlugin::Bridge => Some(self.opts.main_plugins.join("bridge")),
            MainPlugin::TestVeth => Some(self.fixture_dir.join("cni-test-veth")),
            MainPlugin::None => None,
        }
    }

    /// (version, main plugin) pairs a scenario runs at, or why it cannot run.
    fn matrix(&self, s: &Scenario) -> Checked<Vec<(CniVersion, MainPlugin)>> {
        let mut common: Vec<CniVersion> = CniVersion::ALL
            .iter()
            .copied()
            .filter(|v| *v >= s.min_version)
            .collect();
        for p in s.plugins {
            let path = self.plugin_path(p);
            if !path.is_file() {
                return Err(CheckError::unexpected(format!(
                    "plugin binary {} is missing",
                    path.display()
                )));
            }
            let vs = self.versions_of(&path)?;
            common.retain(|v| vs.contains(v));
        }
        if common.is_empty() {
            return Err(CheckError::unexpected(format!(
                "{} share no cniVersion ≥ {}",
                s.plugins.join(", "),
                s.min_version
            )));
        }
        if !s.needs_main {
            return Ok(common.into_iter().map(|v| (v, MainPlugin::None)).collect());
        }
        let bridge = self
            .main_path(MainPlugin::Bridge)
            .filter(|p| p.is_file() && self.opts.main_plugins.join("host-local").is_file())
            .and_then(|p| self.versions_of(&p).ok())
            .unwrap_or_default();
        let veth = self
            .main_path(MainPlugin::TestVeth)
            .filter(|p| p.is_file())
            .and_then(|p| self.versions_of(&p).ok())
            .unwrap_or_default();
        let out: Vec<(CniVersion, MainPlugin)> = common
            .iter()
            .filter_map(|v| {
                if bridge.contains(v) {
                    Some((*v, MainPlugin::Bridge))
                } else if veth.contains(v) {
                    Some((*v, MainPlugin::TestVeth))
                } else {
                    None
                }
            })
            .collect();
        if out.is_empty() {
            return Err(CheckError::unexpected(format!(
                "no main plugin supports any of {:?} (bridge+host-local in {}: {:?}; cni-test-veth in {}: {:?})",
                common.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
                self.opts.main_plugins.display(),
                bridge.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
                self.fixture_dir.display(),
                veth.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
            )));
        }
        Ok(out)
    }

    /// Runs one world; a panic in the scenario code becomes a FAIL (its
    /// namespaces are still dropped while unwinding).
    fn guarded(&self, s: &Scenario, r: &mut Recorder, version: CniVersion, main: MainPlugin) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (s.run)(self, r, version, main)
        }));
        if let Err(panic) = outcome {
            let what = panic
                .downcast_ref::<&str>()
                .map(|m| m.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            r.push(
                "scenario",
                Outcome::Fail(format!("the scenario code panicked: {what}")),
                None,
                0,
            );
        }
    }

    fn run_scenario(&self, s: &Scenario) -> Vec<CaseResult> {
        if s.plugins.is_empty() {
            // Per-plugin scenarios (VERSION, bad input) pick versions themselves.
            let mut r = Recorder::new(s.name, None, self.opts.progress);
            let before = HostSnapshot::take();
            self.guarded(s, &mut r, CniVersion::CURRENT, MainPlugin::None);
            host_unchanged(&mut r, &before);
            return r.cases;
        }
        let matrix = match self.matrix(s) {
            Ok(m) => m,
            Err(reason) => {
                let mut r = Recorder::new(s.name, None, self.opts.progress);
                r.skip("all", &reason.to_string());
                return r.cases;
            }
        };
        let mut cases = Vec::new();
        for (version, main) in matrix {
            let mut r = Recorder::new(s.name, Some(version), self.opts.progress);
            let before = HostSnapshot::take();
            self.guarded(s, &mut r, version, main);
            host_unchanged(&mut r, &before);
            cases.extend(r.cases);
        }
        cases
    }
}

/// Compares the real host with `before` (after the world was dropped).
fn host_unchanged(r: &mut Recorder, before: &HostSnapshot) {
    let diff = HostSnapshot::take().diff(before);
    r.check("host-unchanged", || {
        if diff.is_empty() {
            Ok(None)
        } else {
            Err(CheckError::unexpected(format!(
                "the real host changed (isolation broken): {}",
                diff.join("; ")
            )))
        }
    });
}
