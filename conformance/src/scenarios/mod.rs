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
mod interleave;
mod lifecycle;
mod loopback;
mod portmap;
mod tuning;

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cni::CniVersion;
use serde_json::{json, Map, Value};

use crate::report::{CaseResult, Format, Outcome, SuiteReport};
use crate::topology::{HostSnapshot, HostWorld, Netns, Pod, Reach, Tools};
use cni_runtime::{parse_conflist, NetworkConfigList, Runtime, RuntimeConf};

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

fn registry() -> Vec<Scenario> {
    let v0 = CniVersion::V0_1_0;
    vec![
        Scenario {
            name: "version",
            plugins: &[],
            needs_main: false,
            min_version: v0,
            run: bad_input::version_scenario,
        },
        Scenario {
            name: "bad-input",
            plugins: &[],
            needs_main: false,
            min_version: v0,
            run: bad_input::bad_input_scenario,
        },
        Scenario {
            name: "loopback",
            plugins: &["loopback"],
            needs_main: false,
            min_version: v0,
            run: loopback::run,
        },
        Scenario {
            name: "portmap",
            plugins: &["portmap"],
            needs_main: true,
            min_version: v0,
            run: portmap::run,
        },
        Scenario {
            name: "bandwidth",
            plugins: &["bandwidth"],
            needs_main: true,
            min_version: v0,
            run: bandwidth::run,
        },
        Scenario {
            name: "tuning",
            plugins: &["tuning"],
            needs_main: true,
            min_version: v0,
            run: tuning::run,
        },
        Scenario {
            name: "chain",
            plugins: &["tuning", "portmap", "bandwidth"],
            needs_main: true,
            min_version: v0,
            run: chain::run,
        },
        Scenario {
            name: "del-without-cache",
            plugins: &["tuning", "portmap", "bandwidth"],
            needs_main: true,
            min_version: v0,
            run: chain::del_without_cache,
        },
        Scenario {
            name: "parallel-pods",
            plugins: &["tuning", "portmap", "bandwidth"],
            needs_main: true,
            min_version: v0,
            run: concurrency::run,
        },
        Scenario {
            name: "interleavings",
            plugins: &["tuning", "portmap", "bandwidth"],
            needs_main: true,
            min_version: v0,
            run: interleave::run,
        },
        Scenario {
            name: "gc",
            plugins: &["tuning", "portmap", "bandwidth"],
            needs_main: true,
            min_version: CniVersion::V1_1_0,
            run: lifecycle::gc,
        },
        Scenario {
            name: "status",
            plugins: &["tuning", "portmap", "bandwidth", "loopback"],
            needs_main: true,
            min_version: CniVersion::V1_1_0,
            run: lifecycle::status,
        },
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
                outcome: Outcome::Fail(reason),
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
    versions: Mutex<HashMap<PathBuf, Result<Vec<CniVersion>, String>>>,
}

impl Ctx {
    fn new(opts: &SuiteOptions) -> Result<Ctx, String> {
        crate::topology::privileges().map_err(|e| e.to_string())?;
        let exe = match &opts.tool_exe {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| format!("locating this binary: {e}"))?,
        };
        let fixture_dir = match &opts.fixture_dir {
            Some(d) => d.clone(),
            None => exe
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        if !opts.plugins.is_dir() {
            return Err(format!(
                "plugin directory {} does not exist",
                opts.plugins.display()
            ));
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
    pub fn versions_of(&self, path: &Path) -> Result<Vec<CniVersion>, String> {
        if let Ok(cache) = self.versions.lock() {
            if let Some(v) = cache.get(path) {
                return v.clone();
            }
        }
        let v = query_versions(path);
        if let Ok(mut cache) = self.versions.lock() {
            cache.insert(path.to_path_buf(), v.clone());
        }
        v
    }

    fn main_path(&self, main: MainPlugin) -> Option<PathBuf> {
        match main {
            MainPlugin::Bridge => Some(self.opts.main_plugins.join("bridge")),
            MainPlugin::TestVeth => Some(self.fixture_dir.join("cni-test-veth")),
            MainPlugin::None => None,
        }
    }

    /// (version, main plugin) pairs a scenario runs at, or why it cannot run.
    fn matrix(&self, s: &Scenario) -> Result<Vec<(CniVersion, MainPlugin)>, String> {
        let mut common: Vec<CniVersion> = CniVersion::ALL
            .iter()
            .copied()
            .filter(|v| *v >= s.min_version)
            .collect();
        for p in s.plugins {
            let path = self.plugin_path(p);
            if !path.is_file() {
                return Err(format!("plugin binary {} is missing", path.display()));
            }
            let vs = self.versions_of(&path)?;
            common.retain(|v| vs.contains(v));
        }
        if common.is_empty() {
            return Err(format!(
                "{} share no cniVersion ≥ {}",
                s.plugins.join(", "),
                s.min_version
            ));
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
            return Err(format!(
                "no main plugin supports any of {:?} (bridge+host-local in {}: {:?}; cni-test-veth in {}: {:?})",
                common.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
                self.opts.main_plugins.display(),
                bridge.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
                self.fixture_dir.display(),
                veth.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
            ));
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
                r.skip("all", &reason);
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
            Err(format!(
                "the real host changed (isolation broken): {}",
                diff.join("; ")
            ))
        }
    });
}

/// Runs VERSION on a binary and parses `supportedVersions`.
pub(crate) fn query_versions(path: &Path) -> Result<Vec<CniVersion>, String> {
    let run = invoke(
        None,
        path,
        &[("CNI_COMMAND", "VERSION")],
        br#"{"cniVersion":"1.1.0"}"#,
    )?;
    if run.code != Some(0) {
        return Err(format!(
            "{} VERSION failed ({:?}): {}",
            path.display(),
            run.code,
            run.stdout.trim()
        ));
    }
    let v: Value = serde_json::from_str(run.stdout.trim())
        .map_err(|e| format!("{} VERSION printed no JSON: {e}", path.display()))?;
    let list = v["supportedVersions"]
        .as_array()
        .ok_or_else(|| format!("{} VERSION has no supportedVersions", path.display()))?;
    Ok(list
        .iter()
        .filter_map(|s| s.as_str()?.parse().ok())
        .collect())
}

/// Collects the checks of one scenario run.
pub(crate) struct Recorder {
    scenario: String,
    version: Option<String>,
    progress: bool,
    pub cases: Vec<CaseResult>,
}

impl Recorder {
    fn new(scenario: &str, version: Option<CniVersion>, progress: bool) -> Recorder {
        Recorder {
            scenario: scenario.into(),
            version: version.map(|v| v.as_str().to_string()),
            progress,
            cases: Vec::new(),
        }
    }

    fn push(&mut self, check: &str, outcome: Outcome, detail: Option<String>, millis: u64) {
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
    pub fn check(
        &mut self,
        name: &str,
        f: impl FnOnce() -> Result<Option<String>, String>,
    ) -> bool {
        let start = Instant::now();
        let outcome = f();
        let millis = start.elapsed().as_millis() as u64;
        match outcome {
            Ok(detail) => {
                self.push(name, Outcome::Pass, detail, millis);
                true
            }
            Err(reason) => {
                self.push(name, Outcome::Fail(reason), None, millis);
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

/// One direct plugin invocation's outcome.
#[derive(Debug, Clone)]
pub(crate) struct PluginRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a plugin binary directly (inside `host` when given) with exactly the
/// CNI variables in `env`; bounded to 30 s.
pub(crate) fn invoke(
    host: Option<&Netns>,
    plugin: &Path,
    env: &[(&str, &str)],
    stdin: &[u8],
) -> Result<PluginRun, String> {
    let mut cmd = match host {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name]).arg(plugin);
            c
        }
        None => Command::new(plugin),
    };
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("running {}: {e}", plugin.display()))?;
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin);
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} did not finish within 30s", plugin.display()));
            }
            Err(e) => return Err(format!("waiting for {}: {e}", plugin.display())),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("collecting output of {}: {e}", plugin.display()))?;
    Ok(PluginRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The world of one versioned scenario: host netns + temp dir + runtime.
pub(crate) struct Net<'c> {
    pub ctx: &'c Ctx,
    pub world: HostWorld,
    pub version: CniVersion,
    pub main: MainPlugin,
    pub name: String,
    pub runtime: Runtime,
}

/// How long a request waits for its answer. Generous, because a check that
/// expects an answer must not fail on a slow machine and one that expects
/// none costs this only for UDP or a dropped TCP SYN (a closed TCP port
/// refuses at once).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One pod attached (or to be attached) to a `Net`.
pub(crate) struct Attached {
    pub pod: Pod,
    pub list: NetworkConfigList,
    pub rt: RuntimeConf,
    pub result: Option<Value>,
}

impl Attached {
    pub fn ip(&self, family: u8) -> Option<IpAddr> {
        self.pod.address(family)
    }
}

pub(crate) fn sock(ip: &str, port: u16) -> SocketAddr {
    let ip: IpAddr = ip
        .parse()
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    SocketAddr::new(ip, port)
}

impl<'c> Net<'c> {
    pub fn new(
        ctx: &'c Ctx,
        tag: &str,
        version: CniVersion,
        main: MainPlugin,
    ) -> Result<Net<'c>, String> {
        let world = HostWorld::new(tag).map_err(|e| format!("building the host netns: {e}"))?;
        if main == MainPlugin::Bridge {
            world
                .add_bridge()
                .map_err(|e| format!("creating the bridge with a fixed MAC: {e}"))?;
        }
        let mut dirs = vec![ctx.opts.plugins.clone(), ctx.opts.main_plugins.clone()];
        dirs.push(ctx.fixture_dir.clone());
        let runtime = Runtime::new(dirs)
            .with_cache_dir(world.cache_dir())
            .with_exec_netns(world.host.path())
            .with_timeout(Duration::from_secs(60));
        Ok(Net {
            ctx,
            world,
            version,
            main,
            name: format!("conf-{tag}"),
            runtime,
        })
    }

    pub fn host(&self) -> &Netns {
        &self.world.host
    }

    pub fn dir(&self, sub: &str) -> PathBuf {
        self.world
            .sub(sub)
            .unwrap_or_else(|_| self.world.dir.path().join(sub))
    }

    /// The main plugin object for pod number `index` (0-based).
    pub fn main_conf(&self, index: usize) -> Value {
        match self.main {
            MainPlugin::Bridge => json!({
                "type": "bridge",
                "bridge": crate::topology::BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.88.0.0/24"}], [{"subnet": "fd00:88::/64"}]],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                    "dataDir": self.dir("ipam").to_string_lossy(),
                }
            }),
            MainPlugin::TestVeth | MainPlugin::None => {
                let n = index + 1;
                json!({
                    "type": "cni-test-veth",
                    "ips": [
                        {"address": format!("10.77.{n}.2/24"), "hostAddress": format!("10.77.{n}.1/24")},
                        {"address": format!("fd00:77:{n}::2/64"), "hostAddress": format!("fd00:77:{n}::1/64")},
                    ]
                })
            }
        }
    }

    /// The host-side address pods use as their gateway (`family` 4 or 6).
    pub fn gateway(&self, index: usize, family: u8) -> String {
        match (self.main, family) {
            (MainPlugin::Bridge, 4) => "10.88.0.1".into(),
            (MainPlugin::Bridge, _) => "fd00:88::1".into(),
            (_, 4) => format!("10.77.{}.1", index + 1),
            (_, _) => format!("fd00:77:{}::1", index + 1),
        }
    }

    /// A conflist `[main, chain...]` for pod `index`, written to the world's
    /// conf dir and parsed by the runtime's loader.
    pub fn list(&self, index: usize, chain: &[Value]) -> Result<NetworkConfigList, String> {
        let mut plugins = Vec::new();
        if self.main != MainPlugin::None {
            plugins.push(self.main_conf(index));
        }
        plugins.extend(chain.iter().cloned());
        self.list_of(index, plugins)
    }

    /// A conflist of exactly `plugins`.
    pub fn list_of(&self, index: usize, plugins: Vec<Value>) -> Result<NetworkConfigList, String> {
        let body = json!({
            "cniVersion": self.version.as_str(),
            "name": self.name,
            "plugins": plugins,
        });
        let bytes = serde_json::to_vec_pretty(&body).map_err(|e| e.to_string())?;
        let path = self
            .dir("conf")
            .join(format!("{}-{index}.conflist", self.name));
        let _ = std::fs::write(&path, &bytes);
        parse_conflist(&bytes, Some(&path)).map_err(|e| format!("conflist: {e}"))
    }

    /// A new pod with a conflist and runtime arguments (not yet added).
    pub fn pod(
        &self,
        tag: &str,
        index: usize,
        chain: &[Value],
        caps: Map<String, Value>,
    ) -> Result<Attached, String> {
        let pod = Pod::new(tag).map_err(|e| format!("creating pod netns: {e}"))?;
        let list = self.list(index, chain)?;
        let mut rt = RuntimeConf::new(&pod.container_id, pod.netns.path(), &pod.ifname);
        rt.args = vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAME".into(), tag.into()),
        ];
        rt.capability_args = caps;
        Ok(Attached {
            pod,
            list,
            rt,
            result: None,
        })
    }

    pub fn add(&self, a: &mut Attached) -> Result<Value, String> {
        let r = self
            .runtime
            .add_network_list(&a.list, &a.rt)
            .map_err(|e| format!("ADD: {e}"))?;
        a.result = Some(r.raw.clone());
        Ok(r.raw)
    }

    /// CHECK; `Ok(false)` when the version does not allow CHECK.
    pub fn check(&self, a: &Attached) -> Result<bool, String> {
        if !self.version.allows_check() {
            return Ok(false);
        }
        self.runtime
            .check_network_list(&a.list, &a.rt)
            .map(|_| true)
            .map_err(|e| format!("CHECK: {e}"))
    }

    pub fn del(&self, a: &Attached) -> Result<(), String> {
        self.runtime
            .del_network_list(&a.list, &a.rt)
            .map_err(|e| format!("DEL: {e}"))
    }

    /// Names of IFB links in the host netns.
    pub fn ifbs(&self) -> Vec<String> {
        self.host()
            .ip_json(&["link", "show", "type", "ifb"])
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }

    /// Names of IFB links in the host netns once teardown is over: a plugin
    /// may unregister an IFB after its DEL replied (the kernel's
    /// unregistration is slow), so this waits up to [`IFB_SETTLE`] for them
    /// to go and returns what is left then.
    pub fn ifbs_settled(&self) -> Vec<String> {
        let start = std::time::Instant::now();
        loop {
            let left = self.ifbs();
            if left.is_empty() || start.elapsed() > IFB_SETTLE {
                return left;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Files left in the runtime's result cache.
    pub fn cached(&self) -> Vec<String> {
        crate::topology::files_under(&self.world.cache_dir())
            .into_iter()
            .collect()
    }

    /// TCP/UDP request from `ns`, waiting up to [`REQUEST_TIMEOUT`].
    pub fn request(&self, from: &Netns, udp: bool, to: SocketAddr) -> Reach {
        self.ctx.tools.request(from, udp, to, REQUEST_TIMEOUT)
    }
}

/// Plugin output on one line (spec errors are printed indented).
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Asserts a request got exactly `want`.
pub(crate) fn expect_reply(got: Reach, want: &str) -> Result<Option<String>, String> {
    match got {
        Reach::Reply(r) if r == want => Ok(None),
        other => Err(format!("expected reply {want:?}, got {other}")),
    }
}

/// Asserts a request was NOT answered by the pod (refused, timed out, or
/// answered by someone else).
pub(crate) fn expect_no_reply_from(got: Reach, pod_reply: &str) -> Result<Option<String>, String> {
    match got {
        Reach::Reply(r) if r.starts_with(pod_reply) => {
            Err(format!("still answered by the pod: {r:?}"))
        }
        other => Ok(Some(other.to_string())),
    }
}

/// `{"portMappings": [...]}` capability arguments.
pub(crate) fn port_mappings(maps: &[(u16, u16, &str, Option<&str>)]) -> Map<String, Value> {
    let list: Vec<Value> = maps
        .iter()
        .map(|(host, container, proto, host_ip)| {
            let mut m = json!({"hostPort": host, "containerPort": container, "protocol": proto});
            if let Some(ip) = host_ip {
                m["hostIP"] = json!(ip);
            }
            m
        })
        .collect();
    let mut caps = Map::new();
    caps.insert("portMappings".into(), Value::Array(list));
    caps
}

/// After DEL: the host's own listener on `port` answers (no DNAT left),
/// from the host itself and from `also` (another pod), v4 and v6.
pub(crate) fn host_owns_port(
    net: &Net,
    port: u16,
    also: Option<&Netns>,
) -> Result<Option<String>, String> {
    let host = net.host();
    let _server = net
        .ctx
        .tools
        .serve(host, &[port], &[], "host", 30)
        .map_err(|e| e.to_string())?;
    let want = format!("host tcp/{port}");
    for ip in [crate::topology::NODE_V4, crate::topology::NODE_V6] {
        expect_reply(net.request(host, false, sock(ip, port)), &want)
            .map_err(|e| format!("from the host to {ip}: {e}"))?;
        if let Some(ns) = also {
            expect_reply(net.request(ns, false, sock(ip, port)), &want)
                .map_err(|e| format!("from another pod to {ip}: {e}"))?;
        }
    }
    Ok(None)
}

/// How long teardown may take after DEL replied (an IFB deleted in the
/// background).
pub const IFB_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Nothing of the attachment is left in the host netns or the state dirs.
pub(crate) fn nothing_left(net: &Net, tuning_dir: Option<&Path>) -> Result<Option<String>, String> {
    let mut problems = Vec::new();
    let ifbs = net.ifbs_settled();
    if !ifbs.is_empty() {
        problems.push(format!("IFB links left: {ifbs:?}"));
    }
    let cached = net.cached();
    if !cached.is_empty() {
        problems.push(format!("cache files left: {cached:?}"));
    }
    if let Some(d) = tuning_dir {
        let left = crate::topology::files_under(d);
        if !left.is_empty() {
            problems.push(format!("tuning backups left: {left:?}"));
        }
    }
    if problems.is_empty() {
        Ok(None)
    } else {
        Err(problems.join("; "))
    }
}

/// `{"bandwidth": {...}}` capability arguments (both directions).
pub(crate) fn bandwidth_caps(rate: u64, burst: u64) -> Map<String, Value> {
    let mut caps = Map::new();
    caps.insert(
        "bandwidth".into(),
        json!({"ingressRate": rate, "ingressBurst": burst, "egressRate": rate, "egressBurst": burst}),
    );
    caps
}

/// The full chain after the main plugin: tuning, portmap, bandwidth.
pub(crate) fn full_chain(net: &Net) -> Vec<Value> {
    vec![
        json!({
            "type": "tuning",
            "mtu": 1400,
            "sysctl": {"net.core.somaxconn": "512"},
            "dataDir": net.dir("tuning").to_string_lossy(),
        }),
        json!({"type": "portmap", "capabilities": {"portMappings": true}}),
        json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}),
    ]
}
