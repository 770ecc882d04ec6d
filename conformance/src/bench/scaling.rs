//! Phase 3: how the plugins grow. portmap ADD/DEL of one more pod (tcp+udp
//! mappings, `PORTMAP_ROUNDS_PER_ITERATION` times the run's iterations)
//! with N pods already mapped, and the TCP connection rate through
//! a hostPort at each N; bandwidth ADD/DEL with N pods already shaped (in
//! `shaped`). Fillers are installed with 4 parallel ADDs and never DELed:
//! the world's netns takes them with it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cni::CniVersion;
use serde_json::{json, Value};

use super::error::StepError;
use super::measure::{alternation, Probe};
use super::series::{ratio, round3, Series};
use super::side::{convert, Side};
use super::{common_version, probe_of, Bench, RSS_ROUNDS};

pub mod shaped;

/// The mapping number of the measured extra pod (its own IP and port).
const PROBE: usize = 60_000;

/// The stdin of portmap for pod number `k` (its own container IP and port).
fn fill_conf(version: CniVersion, k: usize, side: &Side, udp: bool) -> Value {
    let ip = format!("10.99.{}.{}/16", 1 + k / 250, 2 + k % 250);
    let prev = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "sandbox": side.pod.netns.path().to_string_lossy()}],
        "ips": [{"address": ip, "interface": 0}],
    });
    let port = 20_000 + (k % 40_000);
    let mut maps = vec![json!({"hostPort": port, "containerPort": 80, "protocol": "tcp"})];
    if udp {
        maps.push(json!({"hostPort": port, "containerPort": 53, "protocol": "udp"}));
    }
    side.with_portmap_backend(json!({
        "cniVersion": version.as_str(),
        "name": "bench",
        "type": "portmap",
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": maps},
        "prevResult": convert(&prev, version),
    }))
}

/// Runs `job(k)` for `k` in `from..to` on 4 threads; the first error wins.
pub fn parallel_fill(
    from: usize,
    to: usize,
    job: impl Fn(usize) -> Result<(), StepError> + Sync,
) -> Result<(), StepError> {
    let next = AtomicUsize::new(from);
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= to {
                    return;
                }
                if let Err(e) = job(k) {
                    if let Ok(mut v) = errors.lock() {
                        v.push((k, e));
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_default();
    let failed = errors.len();
    match errors.into_iter().next() {
        None => Ok(()),
        Some((pod, first)) => Err(StepError::Fillers {
            failed,
            of: to - from,
            pod,
            first: Box::new(first),
        }),
    }
}

/// Successful TCP request/replies per second through hostPort 8080 of the
/// main pod, from the host netns, over one second.
fn connection_rate(b: &Bench, side: &Side, version: CniVersion) -> Result<f64, StepError> {
    let conf = side.plugin_conf("portmap", version, Some(&side.prev));
    side.invoke_ok("portmap", "ADD", "bench-conn", "eth0", &conf)?;
    let server = b
        .tools
        .serve(&side.pod.netns, &[80], &[], "bench", 30)
        .map_err(|e| StepError::topology("server in the pod", e))?;
    let addr = crate::topology::NODE_V4;
    let node: std::net::IpAddr = addr
        .parse()
        .map_err(|source| StepError::NodeAddress { addr, source })?;
    let to = SocketAddr::new(node, 8080);
    let counted = cni::netns::run_in(&side.world.host.path(), || {
        let (mut n, mut failed, start) = (0u32, 0u32, Instant::now());
        while start.elapsed() < Duration::from_secs(1) && failed < 50 {
            match crate::tools::tcp_request(to, Duration::from_millis(500)) {
                Ok(_) => n += 1,
                Err(_) => failed += 1,
            }
        }
        (n, failed, start.elapsed().as_secs_f64())
    });
    drop(server);
    let _ = side.invoke("portmap", "DEL", "bench-conn", "eth0", &conf, Probe::Time);
    let (n, failed, secs) =
        counted.map_err(|e| StepError::netns(side.world.host.name.clone(), e))?;
    if n == 0 {
        return Err(StepError::NoConnection { to, failed });
    }
    Ok(f64::from(n) / secs)
}

/// Timed rounds of one more portmap pod per N, per timed iteration of the
/// run: the growth figure divides two medians (1 and 1000 pods) of a
/// distribution with a long tail (p95 about three times the median on 2
/// cores: under `perf trace` a verb's nf_tables batch sometimes blocks
/// 8-12 ms in the kernel while earlier verbs' background children run),
/// and 20 samples per median moved it by more than a millisecond between
/// runs.
const PORTMAP_ROUNDS_PER_ITERATION: usize = 2;

/// The portmap rows at `n` pods mapped: ADD, DEL and connection rate.
fn portmap_at(b: &Bench, n: usize, version: CniVersion) -> Vec<Value> {
    let mut series: Vec<[Series; 2]> = vec![Default::default(); b.sides.len()];
    let timed = b.opts.iterations * PORTMAP_ROUNDS_PER_ITERATION;
    for (round, k) in alternation(timed + RSS_ROUNDS, b.sides.len()) {
        let side = &b.sides[k];
        let probe = probe_of(round, timed);
        let conf = fill_conf(version, PROBE, side, true);
        series[k][0].push(side.invoke("portmap", "ADD", "probe", "eth0", &conf, probe));
        series[k][1].push(side.invoke("portmap", "DEL", "probe", "eth0", &conf, probe));
    }
    let mut rows = add_del_rows(b, n, &series);
    let rate = |k: usize| match b.sides.get(k).map(|s| connection_rate(b, s, version)) {
        None => Value::Null,
        Some(Ok(r)) => json!({"per_s": round3(r)}),
        Some(Err(e)) => json!({"error": e.to_string()}),
    };
    rows.push(json!({"pods": n, "verb": "connect", "ours": rate(0), "reference": rate(1)}));
    rows
}

/// For each N of `counts` (sorted): installs fillers up to N - 1 on every
/// side with `filler(side, k)` (the probe pod is the N-th), then `at(N)`.
pub fn grow(
    b: &Bench,
    counts: &[usize],
    what: &str,
    filler: impl Fn(&Side, usize) -> Result<(), StepError> + Sync,
    at: impl Fn(usize) -> Vec<Value>,
) -> Vec<Value> {
    let mut counts = counts.to_vec();
    counts.sort_unstable();
    counts.dedup();
    let (mut rows, mut installed) = (Vec::new(), 0usize);
    for n in counts {
        let fill_to = n.saturating_sub(1);
        b.progress(&format!("scaling: {what} {n} pods (installing {fill_to})"));
        for side in &b.sides {
            if let Err(e) = parallel_fill(installed, fill_to, |k| filler(side, k)) {
                rows.push(json!({"pods": n, "error": format!("{}: {e}", side.label)}));
            }
        }
        installed = installed.max(fill_to);
        rows.extend(at(n));
    }
    rows
}

/// The ADD and DEL rows at `n` from `series[side][0 = ADD, 1 = DEL]`.
pub fn add_del_rows(b: &Bench, n: usize, series: &[[Series; 2]]) -> Vec<Value> {
    let mut rows = Vec::new();
    for (v, verb) in ["ADD", "DEL"].iter().enumerate() {
        let cell = |k: usize| series.get(k).map_or(Value::Null, |s| s[v].to_json());
        let r = (b.sides.len() > 1)
            .then(|| ratio(series[0][v].median(), series[1][v].median()))
            .flatten();
        rows.push(
            json!({"pods": n, "verb": verb, "ours": cell(0), "reference": cell(1), "ratio": r}),
        );
    }
    rows
}

/// `{portmap: [...], bandwidth: [...]}`.
pub fn run(b: &Bench) -> Value {
    let mut portmap = Vec::new();
    if b.sides.iter().all(|s| s.dir.join("portmap").is_file()) {
        let version = common_version(&b.sides, "portmap").unwrap_or(CniVersion::V1_0_0);
        let filler = |side: &Side, k: usize| {
            let conf = fill_conf(version, k, side, false);
            side.invoke_ok("portmap", "ADD", &format!("fill-{k}"), "eth0", &conf)
                .map(drop)
        };
        portmap = grow(b, &b.opts.pods, "portmap with pods mapped:", filler, |n| {
            portmap_at(b, n, version)
        });
    }
    json!({"portmap": portmap, "bandwidth": shaped::run(b)})
}
