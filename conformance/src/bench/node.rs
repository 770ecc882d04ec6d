//! Phase 2: a node's worth of pods. N pods go through the whole chain
//! (bridge + host-local, portmap with a tcp and a udp hostPort, bandwidth,
//! tuning) via the runtime library, all ADDed in parallel, then all DELed in
//! parallel (from the cached results, with prevResult). Each side gets the
//! same main plugins; only the chained plugins differ. Pod netns are made
//! before the clock starts and removed after. The same N pods through the
//! main plugins alone give the floor that no chained plugin can go under:
//! what each side's chain adds is its wall time minus that floor.

use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::error::StepError;
use super::measure::{median, p99};
use super::series::round3;
use super::side::{main_conflist, no_dad, Side};
use super::Bench;
use crate::topology::Pod;
use cni_runtime::parse_conflist;
use cni_runtime::{Runtime, RuntimeConf};

/// Which conflist a node run uses.
#[derive(Clone, Copy)]
enum Chain {
    /// Main plugins, then portmap, bandwidth and tuning.
    Whole,
    /// bridge + host-local alone: the floor.
    MainOnly,
}

fn chain(side: &Side, which: Chain) -> Value {
    let mut list = main_conflist(&side.world, "benchnode", 78);
    if let (Chain::Whole, Some(plugins)) = (which, list["plugins"].as_array_mut()) {
        plugins.push(json!({"type": "portmap", "capabilities": {"portMappings": true}}));
        plugins.push(json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}));
        plugins.push(json!({
            "type": "tuning",
            "sysctl": {"net.core.somaxconn": "512"},
            "dataDir": side.world.dir.path().join("tuning-node").to_string_lossy(),
        }));
    }
    list
}

fn capability_args(i: usize) -> Map<String, Value> {
    let port = 30_000 + i;
    let mut m = Map::new();
    m.insert(
        "portMappings".into(),
        json!([
            {"hostPort": port, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": port, "containerPort": 53, "protocol": "udp"}
        ]),
    );
    m.insert(
        "bandwidth".into(),
        json!({
            "ingressRate": 100_000_000, "ingressBurst": 1_000_000,
            "egressRate": 100_000_000, "egressBurst": 1_000_000
        }),
    );
    m
}

/// Runs `op` for every pod at once; `{wall_s, p50_ms, p99_ms, errors, first_error}`.
fn all_at_once(
    pods: &[RuntimeConf],
    op: impl Fn(&RuntimeConf) -> Result<(), StepError> + Sync,
) -> Value {
    let times = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for rt in pods {
            let (op, times, errors) = (&op, &times, &errors);
            s.spawn(move || {
                let t = Instant::now();
                let r = op(rt);
                let ms = t.elapsed().as_secs_f64() * 1e3;
                if let Ok(mut v) = times.lock() {
                    v.push(ms);
                }
                if let (Err(e), Ok(mut v)) = (r, errors.lock()) {
                    v.push(e);
                }
            });
        }
    });
    let wall = start.elapsed().as_secs_f64();
    let times = times.into_inner().unwrap_or_default();
    let errors = errors.into_inner().unwrap_or_default();
    json!({
        "wall_s": round3(wall),
        "p50_ms": median(&times).map(round3),
        "p99_ms": p99(&times).map(round3),
        "errors": errors.len(),
        "first_error": errors.first().map(|e| cni_runtime::truncate(&e.to_string(), 300).to_string()),
    })
}

fn side_run(b: &Bench, side: &Side, which: Chain) -> Result<Value, StepError> {
    let n = b.opts.node_pods;
    let label = match which {
        Chain::Whole => side.label.clone(),
        Chain::MainOnly => "main plugins only".to_string(),
    };
    let runtime = Runtime::new(vec![side.dir.clone(), b.opts.main_plugins.clone()])
        .with_cache_dir(side.world.dir.path().join("cache-node"))
        .with_exec_netns(side.world.host.path());
    let bytes = serde_json::to_vec(&chain(side, which))
        .map_err(|e| StepError::json("encoding the node conflist", e))?;
    let list =
        parse_conflist(&bytes, None).map_err(|e| StepError::conflist("the node conflist", e))?;
    let mut pods = Vec::with_capacity(n);
    for _ in 0..n {
        let pod = Pod::new("bnq").map_err(|e| StepError::topology("creating a pod netns", e))?;
        no_dad(&pod.netns);
        pods.push(pod);
    }
    let confs: Vec<RuntimeConf> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut rt = RuntimeConf::new(&p.container_id, p.netns.path(), &p.ifname);
            rt.capability_args = capability_args(i);
            rt
        })
        .collect();
    b.progress(&format!("node: {n} pods ADD in parallel ({label})"));
    let add = all_at_once(&confs, |rt| {
        runtime
            .add_network_list(&list, rt)
            .map(|_| ())
            .map_err(|e| StepError::chain(format!("ADD of {}", rt.container_id), e))
    });
    b.progress(&format!("node: {n} pods DEL in parallel ({label})"));
    let del = all_at_once(&confs, |rt| {
        runtime
            .del_network_list(&list, rt)
            .map_err(|e| StepError::chain(format!("DEL of {}", rt.container_id), e))
    });
    drop(pods);
    Ok(json!({"add": add, "del": del}))
}

/// `{pods, ours: {add, del}, reference: {add, del}, main_only: {add, del}}`.
pub fn run(b: &Bench) -> Value {
    let mut out = json!({"pods": b.opts.node_pods});
    let failed = |e: StepError| json!({"error": e.to_string()});
    for side in &b.sides {
        out[&side.label] = side_run(b, side, Chain::Whole).unwrap_or_else(failed);
    }
    if let Some(side) = b.sides.first() {
        out["main_only"] = side_run(b, side, Chain::MainOnly).unwrap_or_else(failed);
    }
    out
}
