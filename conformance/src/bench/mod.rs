//! `cni-conformance bench`: each chained plugin's ADD, CHECK and DEL timed as
//! whole processes (median and p95 of untraced runs; peak RSS of the plugin
//! process itself from a few extra traced rounds, see `measure`), one
//! or two plugin directories taking turns invocation by invocation (ABBA) so
//! machine drift cancels, with ratios; portmap ADD/DEL with N mappings
//! already installed; and the achieved/configured bandwidth per direction.
//! Everything runs inside throwaway host netns (one world per directory).

pub mod measure;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cni::CniVersion;
use serde_json::{json, Value};

use crate::scenarios::{query_versions, PLUGINS};
use crate::topology::{HostWorld, Pod, Tools, TopologyError};
use cni_runtime::{parse_conflist, ConfError, Runtime, RuntimeConf, RuntimeError};
use measure::{alternation, median, p95, run_measured, MeasureError, Probe, Sample};

/// What `cni-conformance bench` was asked.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub plugins: PathBuf,
    pub vs: Option<PathBuf>,
    /// Numbers of existing portmap mappings to measure at.
    pub pods: Vec<usize>,
    pub iterations: usize,
    /// The binary with the hidden `tool` subcommand (default: this one).
    pub tool_exe: Option<PathBuf>,
    /// Where `cni-test-veth` lives (default: next to this binary).
    pub fixture_dir: Option<PathBuf>,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl BenchOptions {
    pub fn new(plugins: PathBuf) -> BenchOptions {
        BenchOptions {
            plugins,
            vs: None,
            pods: vec![1, 10, 100],
            iterations: 20,
            tool_exe: None,
            fixture_dir: None,
            progress: true,
        }
    }
}

const LIMIT: Duration = Duration::from_secs(120);

/// Rounds run after the timed ones, traced, only for the peak RSS column.
const RSS_ROUNDS: usize = 3;

/// Timed rounds first, then [`RSS_ROUNDS`] traced ones.
fn probe_of(round: usize, iterations: usize) -> Probe {
    if round < iterations {
        Probe::Time
    } else {
        Probe::PeakRss
    }
}

/// One plugin directory with its throwaway world.
struct Side {
    label: String,
    dir: PathBuf,
    world: HostWorld,
    pod: Pod,
    /// The main plugin's result for `pod`.
    prev: Value,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Not root, or no usable `ip`.
    #[error(transparent)]
    Privileges(#[from] TopologyError),
    /// This binary (the traffic tools) could not be located.
    #[error("locating this binary: {0}")]
    CurrentExe(std::io::Error),
    /// The `cni-test-veth` main-plugin fixture is missing or broken.
    #[error("the cni-test-veth fixture is needed: {0}")]
    NoFixture(String),
    /// A side's world could not be built.
    #[error("{what}: {source}")]
    World {
        /// What was being built.
        what: &'static str,
        /// Why it failed.
        source: TopologyError,
    },
    /// The main plugin's conflist could not be encoded.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The main plugin's conflist is invalid.
    #[error(transparent)]
    Conf(#[from] ConfError),
    /// The main plugin's ADD failed.
    #[error("main plugin ADD: {0}")]
    MainAdd(RuntimeError),
    /// Installing the existing pods' mappings failed.
    #[error("side {side}: {failed} of {of} filler mappings failed, first: {first}")]
    Fill {
        /// The side (A or B).
        side: String,
        /// How many failed.
        failed: usize,
        /// Of how many.
        of: usize,
        /// The first failure.
        first: String,
    },
}

impl BenchError {
    fn world(what: &'static str, source: TopologyError) -> BenchError {
        BenchError::World { what, source }
    }
}

impl Side {
    fn new(
        label: &str,
        dir: &Path,
        fixture_dir: &Path,
        version: CniVersion,
    ) -> Result<Side, BenchError> {
        let world =
            HostWorld::new("bn").map_err(|e| BenchError::world("building the host netns", e))?;
        let pod = Pod::new("bnp").map_err(|e| BenchError::world("creating the pod netns", e))?;
        let runtime = Runtime::new(vec![fixture_dir.to_path_buf()])
            .with_cache_dir(world.cache_dir())
            .with_exec_netns(world.host.path());
        let list = json!({
            "cniVersion": version.as_str(),
            "name": "bench",
            "plugins": [{
                "type": "cni-test-veth",
                "ips": [{"address": "10.77.1.2/24", "hostAddress": "10.77.1.1/24"}]
            }]
        });
        let bytes = serde_json::to_vec(&list)?;
        let list = parse_conflist(&bytes, None)?;
        let rt = RuntimeConf::new(&pod.container_id, pod.netns.path(), &pod.ifname);
        let added = runtime
            .add_network_list(&list, &rt)
            .map_err(BenchError::MainAdd)?;
        // Ready for 20000+ mappings' route lookups (portmap's route_localnet).
        world
            .host
            .ip(&[
                "link", "add", "fill0", "type", "veth", "peer", "name", "fill0p",
            ])
            .and_then(|_| {
                world
                    .host
                    .ip(&["addr", "add", "10.99.0.1/16", "dev", "fill0"])
            })
            .and_then(|_| world.host.ip(&["link", "set", "fill0", "up"]))
            .and_then(|_| world.host.ip(&["link", "set", "fill0p", "up"]))
            .map_err(|e| BenchError::world("fill link", e))?;
        Ok(Side {
            label: label.into(),
            dir: dir.to_path_buf(),
            world,
            pod,
            prev: added.raw,
        })
    }

    /// What deleting the pod's veth would do after a bandwidth DEL: drop
    /// the qdiscs on the host side (the reference leaves them to the main
    /// plugin, so its next ADD would fail with "file exists"). Unmeasured.
    fn reset_host_qdiscs(&self) {
        let Some(veth) = self.prev["interfaces"][0]["name"].as_str() else {
            return;
        };
        for parent in ["root", "ingress"] {
            let _ = crate::topology::run(&[
                "tc",
                "-n",
                &self.world.host.name,
                "qdisc",
                "del",
                "dev",
                veth,
                parent,
            ]);
        }
    }

    fn env(&self, command: &str, container: &str, ifname: &str) -> Vec<(String, String)> {
        vec![
            ("CNI_COMMAND".into(), command.into()),
            ("CNI_CONTAINERID".into(), container.into()),
            (
                "CNI_NETNS".into(),
                self.pod.netns.path().to_string_lossy().into_owned(),
            ),
            ("CNI_IFNAME".into(), ifname.into()),
            ("CNI_PATH".into(), self.dir.to_string_lossy().into_owned()),
        ]
    }

    fn invoke(
        &self,
        plugin: &str,
        command: &str,
        container: &str,
        ifname: &str,
        stdin: &Value,
        probe: Probe,
    ) -> Result<Sample, MeasureError> {
        run_measured(
            &self.dir.join(plugin),
            Some(&self.world.host.path()),
            &self.env(command, container, ifname),
            stdin.to_string().as_bytes(),
            LIMIT,
            probe,
        )
    }
}

/// The stdin of `plugin` for this side (prevResult injected when given).
fn plugin_conf(plugin: &str, version: CniVersion, side: &Side, prev: Option<&Value>) -> Value {
    let mut conf = match plugin {
        "portmap" => json!({
            "type": "portmap",
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
        }),
        "bandwidth" => json!({
            "type": "bandwidth",
            "ingressRate": 10_000_000, "ingressBurst": 160_000,
            "egressRate": 10_000_000, "egressBurst": 160_000,
        }),
        "tuning" => json!({
            "type": "tuning",
            "mtu": 1400,
            "sysctl": {"net.core.somaxconn": "512"},
            "dataDir": side.world.dir.path().join("tuning").to_string_lossy(),
        }),
        other => json!({"type": other}),
    };
    conf["cniVersion"] = json!(version.as_str());
    conf["name"] = json!("bench");
    if let Some(p) = prev {
        conf["prevResult"] = convert(p, version);
    }
    conf
}

/// `result` in the layout of `version` (unchanged when it cannot convert).
fn convert(result: &Value, version: CniVersion) -> Value {
    cni::CniResult::from_value(result, version)
        .ok()
        .and_then(|(r, _)| r.to_value(version).ok())
        .unwrap_or_else(|| result.clone())
}

/// Timings of one (plugin, verb) on one side.
#[derive(Debug, Default, Clone)]
struct Series {
    wall_ms: Vec<f64>,
    rss_kib: Vec<f64>,
    failures: usize,
    first_error: Option<String>,
}

impl Series {
    fn push(&mut self, s: Result<Sample, MeasureError>) {
        match s {
            Ok(s) if s.exit_code == Some(0) => match s.probe {
                Probe::Time => self.wall_ms.push(s.wall.as_secs_f64() * 1e3),
                Probe::PeakRss => self.rss_kib.extend(s.peak_rss_kib.map(|r| r as f64)),
            },
            Ok(s) => {
                self.failures += 1;
                self.first_error.get_or_insert(format!(
                    "exit {:?}: {}",
                    s.exit_code,
                    s.stdout.trim().replace('\n', " ")
                ));
            }
            Err(e) => {
                self.failures += 1;
                self.first_error.get_or_insert(e.to_string());
            }
        }
    }

    fn cells(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
        let rss = self
            .rss_kib
            .iter()
            .cloned()
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        let mut s = format!(
            "{:>9} {:>9} {:>9}",
            ms(median(&self.wall_ms)),
            ms(p95(&self.wall_ms)),
            rss.map_or("-".into(), |r| format!("{:.1}", r / 1024.0))
        );
        if self.failures > 0 {
            let _ = write!(
                s,
                "  ({} failed: {})",
                self.failures,
                cni_runtime::truncate(self.first_error.as_deref().unwrap_or(""), 160)
            );
        }
        s
    }
}

fn ratio(a: &Series, b: &Series) -> String {
    match (median(&a.wall_ms), median(&b.wall_ms)) {
        (Some(x), Some(y)) if y > 0.0 => format!("{:.3}", x / y),
        _ => "-".into(),
    }
}

fn progress(opts: &BenchOptions, line: &str) {
    if opts.progress {
        eprintln!("bench: {line}");
    }
}

/// The newest version every side's `plugin` and the fixture support (≥ 0.4.0
/// so CHECK can run).
fn common_version(sides: &[Side], plugin: &str, fixture: &[CniVersion]) -> Option<CniVersion> {
    let mut common: Vec<CniVersion> = fixture
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

/// Runs the benchmark and returns the printable report.
pub fn run(opts: &BenchOptions) -> Result<String, BenchError> {
    crate::topology::privileges()?;
    let exe = match &opts.tool_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(BenchError::CurrentExe)?,
    };
    let fixture_dir = opts
        .fixture_dir
        .clone()
        .or_else(|| exe.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let fixture =
        query_versions(&fixture_dir.join("cni-test-veth")).map_err(BenchError::NoFixture)?;
    let fixture_version = fixture.iter().copied().max().unwrap_or(CniVersion::V1_0_0);
    let mut dirs = vec![("A".to_string(), opts.plugins.clone())];
    if let Some(vs) = &opts.vs {
        dirs.push(("B".to_string(), vs.clone()));
    }
    let iterations = opts.iterations.max(1);
    let mut out = String::new();
    let _ = writeln!(out, "cni-conformance bench: {iterations} iterations per cell, sides alternating invocation by invocation (ABBA)");
    for (label, dir) in &dirs {
        let _ = writeln!(out, "  {label} = {}", dir.display());
    }
    let _ = writeln!(
        out,
        "  times in ms (median, p95, wall clock spawn→reap, untraced); rss = peak RSS of the plugin process itself in MiB (VmHWM at exit, from {RSS_ROUNDS} extra traced rounds; not counting programs it runs)"
    );
    let mut sides = Vec::new();
    for (label, dir) in &dirs {
        sides.push(Side::new(label, dir, &fixture_dir, fixture_version)?);
    }

    // Per-plugin ADD / CHECK / DEL.
    let _ = writeln!(
        out,
        "\n{:<10} {:<6} {:>6}    median       p95   rss(MiB)",
        "plugin", "verb", "side"
    );
    for plugin in PLUGINS {
        let missing: Vec<String> = sides
            .iter()
            .filter(|s| !s.dir.join(plugin).is_file())
            .map(|s| s.label.clone())
            .collect();
        if !missing.is_empty() {
            let _ = writeln!(
                out,
                "{plugin:<10} skipped: binary missing on side {}",
                missing.join(", ")
            );
            continue;
        }
        let Some(version) = common_version(&sides, plugin, &fixture) else {
            let _ = writeln!(out, "{plugin:<10} skipped: no common cniVersion ≥ 0.4.0");
            continue;
        };
        progress(opts, &format!("{plugin} at cniVersion {version}"));
        let ifname = if *plugin == "loopback" { "lo" } else { "eth0" };
        let container = |s: &Side| format!("bench-{}", s.label);
        let mut series: Vec<[Series; 3]> = vec![Default::default(); sides.len()];
        let mut results: Vec<Option<Value>> = vec![None; sides.len()];
        for round in alternation(iterations + RSS_ROUNDS, sides.len()).chunks(sides.len()) {
            let probe = probe_of(round[0].0, iterations);
            let order: Vec<usize> = round.iter().map(|(_, s)| *s).collect();
            for (verb_index, verb) in ["ADD", "CHECK", "DEL"].iter().enumerate() {
                for &k in &order {
                    let side = &sides[k];
                    let prev = if *plugin == "loopback" {
                        None
                    } else if verb_index == 0 {
                        Some(&side.prev)
                    } else {
                        results[k].as_ref().or(Some(&side.prev))
                    };
                    let conf = plugin_conf(plugin, version, side, prev);
                    let sample = side.invoke(plugin, verb, &container(side), ifname, &conf, probe);
                    if verb_index == 0 {
                        results[k] = sample
                            .as_ref()
                            .ok()
                            .filter(|s| s.exit_code == Some(0))
                            .and_then(|s| serde_json::from_str(s.stdout.trim()).ok());
                    }
                    series[k][verb_index].push(sample);
                    if verb_index == 2 && *plugin == "bandwidth" {
                        side.reset_host_qdiscs();
                    }
                }
            }
        }
        for (verb_index, verb) in ["ADD", "CHECK", "DEL"].iter().enumerate() {
            for (k, side) in sides.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{plugin:<10} {verb:<6} {:>6} {}",
                    side.label,
                    series[k][verb_index].cells()
                );
            }
            if sides.len() == 2 {
                let _ = writeln!(
                    out,
                    "{plugin:<10} {verb:<6} {:>6} {:>9}",
                    "A/B",
                    ratio(&series[0][verb_index], &series[1][verb_index])
                );
            }
        }
    }

    // portmap with N mappings already installed.
    if sides.iter().all(|s| s.dir.join("portmap").is_file()) {
        let version = common_version(&sides, "portmap", &fixture).unwrap_or(CniVersion::V1_0_0);
        let _ = writeln!(
            out,
            "\nportmap ADD/DEL of one more pod with N mappings installed (cniVersion {version}):"
        );
        let _ = writeln!(
            out,
            "{:<8} {:<6} {:>6}    median       p95   rss(MiB)",
            "N", "verb", "side"
        );
        let mut pods = opts.pods.clone();
        pods.sort_unstable();
        pods.dedup();
        let mut installed = vec![0usize; sides.len()];
        for n in pods {
            for (k, side) in sides.iter().enumerate() {
                progress(
                    opts,
                    &format!("portmap: installing {} mappings on side {}", n, side.label),
                );
                fill(side, version, installed[k], n)?;
                installed[k] = n;
            }
            let mut series: Vec<[Series; 2]> = vec![Default::default(); sides.len()];
            for (round, k) in alternation(iterations + RSS_ROUNDS, sides.len()) {
                let side = &sides[k];
                let probe = probe_of(round, iterations);
                let (conf, _) = fill_conf(version, PROBE, side);
                series[k][0].push(side.invoke("portmap", "ADD", "probe", "eth0", &conf, probe));
                series[k][1].push(side.invoke("portmap", "DEL", "probe", "eth0", &conf, probe));
            }
            for (v, verb) in ["ADD", "DEL"].iter().enumerate() {
                for (k, side) in sides.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{n:<8} {verb:<6} {:>6} {}",
                        side.label,
                        series[k][v].cells()
                    );
                }
                if sides.len() == 2 {
                    let _ = writeln!(
                        out,
                        "{n:<8} {verb:<6} {:>6} {:>9}",
                        "A/B",
                        ratio(&series[0][v], &series[1][v])
                    );
                }
            }
        }
    }

    // Bandwidth: achieved / configured per direction.
    let tools = Tools { exe };
    let _ = writeln!(
        out,
        "\nbandwidth rate check (10 Mbit/s configured each way; link-layer rate from TCP goodput):"
    );
    for side in &sides {
        if !side.dir.join("bandwidth").is_file() {
            let _ = writeln!(out, "  {}: skipped (bandwidth binary missing)", side.label);
            continue;
        }
        let version = common_version(std::slice::from_ref(side), "bandwidth", &fixture)
            .unwrap_or(CniVersion::V1_0_0);
        let conf = plugin_conf("bandwidth", version, side, Some(&side.prev));
        side.reset_host_qdiscs();
        let added = side.invoke("bandwidth", "ADD", "bench-rate", "eth0", &conf, Probe::Time);
        match added {
            Ok(s) if s.exit_code == Some(0) => {
                let line = rate_line(&tools, side);
                let _ = writeln!(out, "  {}: {line}", side.label);
            }
            Ok(s) => {
                let _ = writeln!(out, "  {}: ADD failed: {}", side.label, s.stdout.trim());
            }
            Err(e) => {
                let _ = writeln!(out, "  {}: ADD failed: {e}", side.label);
            }
        }
        let _ = side.invoke("bandwidth", "DEL", "bench-rate", "eth0", &conf, Probe::Time);
    }
    Ok(out)
}

fn rate_line(tools: &Tools, side: &Side) -> String {
    use crate::scenarios::bandwidth::{shaped_rate, RATE};
    let (host, pod) = (&side.world.host, &side.pod.netns);
    let pod_ip = std::net::SocketAddr::from(([10, 77, 1, 2], 5201));
    let host_ip = std::net::SocketAddr::from(([10, 77, 1, 1], 5202));
    let show = |r: Result<String, String>| r.unwrap_or_else(|e| format!("failed: {e}"));
    let ingress = show(shaped_rate(tools, host, (host, pod, pod_ip), true, RATE));
    let egress = show(shaped_rate(tools, host, (pod, host, host_ip), false, RATE));
    format!("ingress {ingress}; egress {egress}")
}

/// The mapping number of the measured extra pod (its own IP and port).
const PROBE: usize = 60_000;

/// The stdin of a filler mapping number `k` (its own container IP and port).
fn fill_conf(version: CniVersion, k: usize, side: &Side) -> (Value, String) {
    let ip = format!("10.99.{}.{}/16", 1 + k / 250, 2 + k % 250);
    let prev = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "sandbox": side.pod.netns.path().to_string_lossy()}],
        "ips": [{"address": ip, "interface": 0}],
    });
    let prev = convert(&prev, version);
    let port = 20_000 + (k % 40_000);
    let conf = json!({
        "cniVersion": version.as_str(),
        "name": "bench",
        "type": "portmap",
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]},
        "prevResult": prev,
    });
    (conf, format!("fill-{k}"))
}

/// Installs mappings `from..to` with 4 parallel portmap ADDs.
fn fill(side: &Side, version: CniVersion, from: usize, to: usize) -> Result<(), BenchError> {
    let next = std::sync::atomic::AtomicUsize::new(from);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= to {
                    return;
                }
                let (conf, id) = fill_conf(version, k, side);
                match side.invoke("portmap", "ADD", &id, "eth0", &conf, Probe::Time) {
                    Ok(s) if s.exit_code == Some(0) => {}
                    Ok(s) => {
                        if let Ok(mut e) = errors.lock() {
                            e.push(format!("mapping {k}: {}", s.stdout.trim()));
                        }
                    }
                    Err(e) => {
                        if let Ok(mut v) = errors.lock() {
                            v.push(format!("mapping {k}: {e}"));
                        }
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_default();
    match errors.first() {
        None => Ok(()),
        Some(e) => Err(BenchError::Fill {
            side: side.label.clone(),
            failed: errors.len(),
            of: to - from,
            first: e.clone(),
        }),
    }
}
