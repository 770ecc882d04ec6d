//! Phase 4: what the shaping does on the wire, on each side's main pod.
//! Achieved/configured rate at each rate in both directions (the bytes the
//! TBF released, read from its kernel counter; the first second excluded); bytes in the first second
//! (ingress) with containerd's 4294967295-bit burst, without and with
//! `maxBurst`; and the latency a packet sees through the saturated ingress
//! TBF against `latencyMs` (the reference ignores that key and uses its
//! hard-coded 25 ms), saturated by a UDP flood at twice the rate: the TBF's
//! queueing delay (its backlog over the rate, read from the kernel) and,
//! for context, a UDP probe's round trip.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cni::CniVersion;
use serde_json::{json, Value};

use super::error::StepError;
use super::measure::{median, p95};
use super::series::round3;
use super::side::{shaping_conf, Side};
use super::{common_version, Bench};
use crate::throughput::{udp_flood, CountAt, Counter, Throughput};
use crate::topology::TopologyError;

/// containerd's burst when the pod sets none (bits).
pub const CONTAINERD_BURST: u64 = 4_294_967_295;
/// The `maxBurst` the burst rows configure (bits): 0.1 s at 10 Mbit/s.
pub const MAX_BURST: u64 = 1_000_000;
/// The `latencyMs` the latency row configures.
pub const LATENCY_MS: u32 = 10;
const FIRST_SECOND: Duration = Duration::from_secs(1);

/// The devices one shaped ADD put its TBFs on: the pod's host veth (traffic
/// to the pod) and the IFB (traffic from it), from the ADD result.
struct ShapedDevices {
    veth: String,
    ifb: Option<String>,
}

impl ShapedDevices {
    fn of(result: &Value) -> Result<ShapedDevices, StepError> {
        let ifaces = result["interfaces"].as_array().cloned().unwrap_or_default();
        let host = |prefix: &str| {
            ifaces
                .iter()
                .filter(|i| i.get("sandbox").is_none_or(Value::is_null))
                .filter_map(|i| i["name"].as_str())
                .find(|n| n.starts_with(prefix))
                .map(str::to_string)
        };
        let veth = host("veth").ok_or_else(|| StepError::NoDevice {
            device: "host veth",
            result: result.to_string(),
        })?;
        Ok(ShapedDevices {
            veth,
            ifb: host("bwp"),
        })
    }
}

/// Shapes the main pod with `conf` (type bandwidth), runs `f` with the
/// shaped devices, unshapes.
fn shaped<T>(
    side: &Side,
    mut conf: Value,
    f: impl FnOnce(&ShapedDevices) -> T,
) -> Result<T, StepError> {
    let version =
        common_version(std::slice::from_ref(side), "bandwidth").unwrap_or(CniVersion::V1_0_0);
    conf["cniVersion"] = json!(version.as_str());
    conf["name"] = json!("bench");
    conf["prevResult"] = super::side::convert(&side.prev, version);
    side.reset_host_qdiscs();
    let add = side.invoke_ok("bandwidth", "ADD", "bench-shape", "eth0", &conf)?;
    let devices = serde_json::from_str::<Value>(&add.stdout)
        .map_err(|e| StepError::json("bandwidth ADD result", e))
        .and_then(|r| ShapedDevices::of(&r));
    let out = devices.map(|d| f(&d));
    let _ = side.invoke_ok("bandwidth", "DEL", "bench-shape", "eth0", &conf);
    side.reset_host_qdiscs();
    out
}

fn pod_addr(side: &Side, port: u16) -> SocketAddr {
    SocketAddr::new(side.pod_ip(4).unwrap_or(IpAddr::from([10, 77, 0, 2])), port)
}

/// TCP throughput host → pod (`ingress`) or pod → host gateway, counted at
/// the shaping TBF itself (veth for ingress, IFB for egress) over a window of
/// `seconds` that opens `warmup` after the TBF first releases bytes.
fn flow(
    b: &Bench,
    side: &Side,
    devices: &ShapedDevices,
    ingress: bool,
    seconds: f64,
    warmup: Duration,
) -> Result<Throughput, StepError> {
    let host = side.world.host.path();
    let dev = if ingress {
        devices.veth.clone()
    } else {
        devices.ifb.clone().ok_or_else(|| StepError::NoDevice {
            device: "IFB",
            result: format!("(host veth {})", devices.veth),
        })?
    };
    let counter = Counter::open(&host, CountAt::Tbf(dev.clone()))
        .map_err(|e| StepError::counter(format!("the TBF on {dev}"), e))?;
    let r = if ingress {
        b.tools.throughput(
            &side.world.host,
            &side.pod.netns,
            pod_addr(side, 5201),
            &counter,
            seconds,
            warmup,
        )
    } else {
        let gw = SocketAddr::from(([10, 77, 0, 1], 5202));
        b.tools.throughput(
            &side.pod.netns,
            &side.world.host,
            gw,
            &counter,
            seconds,
            warmup,
        )
    };
    let way = if ingress { "into" } else { "out of" };
    r.map_err(|e| StepError::topology(format!("TCP flow {way} the pod via {dev}"), e))
}

fn rate_rows(b: &Bench, side: &Side) -> Vec<Value> {
    let mut rows = Vec::new();
    for &mbit in &b.opts.rates_mbit {
        let rate = mbit * 1_000_000;
        b.progress(&format!("shaping: {mbit} Mbit/s each way ({})", side.label));
        let conf = shaping_conf(rate, (rate / 50).max(160_000), None);
        let got = shaped(side, conf, |d| {
            [true, false].map(|ingress| {
                let t = flow(b, side, d, ingress, b.opts.shaping_seconds, FIRST_SECOND);
                (ingress, t)
            })
        });
        let Ok(both) = got.map_err(|e| {
            rows.push(json!({"side": side.label, "mbit": mbit, "error": e.to_string()}))
        }) else {
            continue;
        };
        for (ingress, t) in both {
            let dir = if ingress { "ingress" } else { "egress" };
            rows.push(match t {
                Ok(t) => {
                    let achieved = t.rates().mean;
                    json!({"side": side.label, "mbit": mbit, "direction": dir,
                           "achieved_mbit": round3(achieved / 1e6), "ratio": round3(achieved / rate as f64)})
                }
                Err(e) => json!({"side": side.label, "mbit": mbit, "direction": dir, "error": e.to_string()}),
            });
        }
    }
    rows
}

fn burst_rows(b: &Bench, side: &Side) -> Vec<Value> {
    let rate = 10_000_000u64;
    let mut rows = Vec::new();
    for max_burst in [None, Some(MAX_BURST)] {
        b.progress(&format!(
            "shaping: first second, burst {CONTAINERD_BURST} bits, maxBurst {max_burst:?} ({})",
            side.label
        ));
        let mut conf = shaping_conf(rate, CONTAINERD_BURST, None);
        if let Some(m) = max_burst {
            conf["maxBurst"] = json!(m);
        }
        // A one-second window from the TBF's first released byte: exactly
        // the first second.
        let t = shaped(side, conf, |d| flow(b, side, d, true, 1.0, Duration::ZERO)).and_then(|t| t);
        rows.push(match t {
            Ok(t) => {
                let first = t.window.bytes;
                json!({"side": side.label, "max_burst_bits": max_burst, "first_second_bytes": first,
                       "ratio_to_rate": round3(first as f64 * 8.0 / rate as f64)})
            }
            Err(e) => {
                json!({"side": side.label, "max_burst_bits": max_burst, "error": e.to_string()})
            }
        });
    }
    rows
}

/// What a packet sees through the saturated ingress TBF: UDP round trips
/// (ms) from the host netns to the pod, and the TBF's queueing delay (ms),
/// its backlog read from the kernel at each probe over the configured rate.
struct Latencies {
    rtts: Vec<f64>,
    queue: Vec<f64>,
}

/// The rate the latency row shapes at (bit/s).
const LATENCY_RATE: u64 = 10_000_000;
/// The UDP flood that saturates it: twice the rate, so the TBF's queue is
/// full and its limit alone decides the wait. (A TCP sender backs off
/// before that: it held the queue at 21.8 ms on both sides, below both
/// limits.)
const FLOOD_RATE: u64 = 2 * LATENCY_RATE;
/// The pod's port the flood goes to: a bound socket that never reads (the
/// datagrams are dropped in its full receive buffer, no ICMP comes back).
const FLOOD_PORT: u16 = 9054;
/// How long the flood runs before the first probe: the queue fills in
/// (limit / (flood − rate)), a few tens of ms.
const FLOOD_WARMUP: Duration = Duration::from_millis(500);
const PROBES: usize = 20;

fn io_step(what: impl Into<String>, source: std::io::Error) -> StepError {
    let what = what.into();
    StepError::topology(what.clone(), TopologyError::Io { what, source })
}

/// Probes while a UDP flood from the host netns saturates the ingress TBF.
///
/// The round trip also holds what is not the TBF: the scheduling of the
/// probe and of the echo server on a loaded machine, the reply's path
/// through the egress shaper, and a probe the full TBF dropped (resent
/// after 300 ms). The queueing delay is the TBF's own part, independent of
/// load: the bytes queued ahead of a packet joining the tail, drained at
/// the configured rate.
fn probe_latencies(
    b: &Bench,
    side: &Side,
    devices: &ShapedDevices,
) -> Result<Latencies, StepError> {
    let server = b
        .tools
        .serve(&side.pod.netns, &[], &[9053], "probe", 30)
        .map_err(|e| StepError::topology("UDP echo server in the pod", e))?;
    let to = pod_addr(side, 9053);
    let flood_to = pod_addr(side, FLOOD_PORT);
    let veth = &devices.veth;
    let backlog = Counter::open(&side.world.host.path(), CountAt::Tbf(veth.clone()))
        .map_err(|e| StepError::counter(format!("the TBF backlog on {veth}"), e))?;
    let bind = |ns: &std::path::Path, at: SocketAddr| {
        cni::netns::run_in(ns, || UdpSocket::bind(at))
            .map_err(|e| StepError::netns(ns.display().to_string(), e))?
            .map_err(|e| io_step(format!("binding udp {at}"), e))
    };
    let sink = bind(&side.pod.netns.path(), flood_to)?;
    let source = bind(&side.world.host.path(), SocketAddr::from(([0, 0, 0, 0], 0)))?;
    let stop = AtomicBool::new(false);
    let limit = FLOOD_WARMUP + Duration::from_secs(10) + PROBES as u32 * Duration::from_secs(1);
    let sampled = std::thread::scope(|s| {
        let flood = s.spawn(|| udp_flood(&source, flood_to, FLOOD_RATE, limit, &stop));
        std::thread::sleep(FLOOD_WARMUP);
        let sampled = cni::netns::run_in(&side.world.host.path(), || {
            let mut l = Latencies {
                rtts: Vec::new(),
                queue: Vec::new(),
            };
            for _ in 0..PROBES {
                if let Ok(bytes) = backlog.backlog() {
                    l.queue.push(bytes as f64 * 8.0 / LATENCY_RATE as f64 * 1e3);
                }
                let t = Instant::now();
                if crate::tools::udp_request(to, Duration::from_secs(1)).is_ok() {
                    l.rtts.push(t.elapsed().as_secs_f64() * 1e3);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            l
        });
        stop.store(true, Ordering::Relaxed);
        let flooded = flood.join();
        (sampled, flooded)
    });
    drop((server, sink));
    let (sampled, flooded) = sampled;
    let flood_error = match flooded {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("its thread panicked".to_string()),
    };
    if let Some(e) = flood_error {
        return Err(io_step(
            "the UDP flood into the pod",
            std::io::Error::other(e),
        ));
    }
    sampled.map_err(|e| StepError::netns(side.world.host.name.clone(), e))
}

fn latency_row(b: &Bench, side: &Side) -> Value {
    b.progress(&format!(
        "shaping: probe latency through a saturated TBF, latencyMs {LATENCY_MS} ({})",
        side.label
    ));
    let conf = shaping_conf(LATENCY_RATE, 160_000, Some(LATENCY_MS));
    match shaped(side, conf, |d| probe_latencies(b, side, d)).and_then(|r| r) {
        Ok(l) => {
            json!({"side": side.label, "latency_ms_configured": LATENCY_MS, "probes": l.rtts.len(),
                        "rtt_p50_ms": median(&l.rtts).map(round3), "rtt_p95_ms": p95(&l.rtts).map(round3),
                        "queue_samples": l.queue.len(),
                        "queue_p50_ms": median(&l.queue).map(round3), "queue_p95_ms": p95(&l.queue).map(round3)})
        }
        Err(e) => {
            json!({"side": side.label, "latency_ms_configured": LATENCY_MS, "error": e.to_string()})
        }
    }
}

/// `{rates: [...], first_second: [...], latency: [...]}`.
pub fn run(b: &Bench) -> Value {
    let (mut rates, mut first, mut latency) = (Vec::new(), Vec::new(), Vec::new());
    for side in b.sides.iter().filter(|s| s.dir.join("bandwidth").is_file()) {
        rates.extend(rate_rows(b, side));
        first.extend(burst_rows(b, side));
        latency.push(latency_row(b, side));
    }
    json!({"rates": rates, "first_second": first, "latency": latency})
}
