//! bandwidth ADD/DEL of the main pod with N other pods already shaped (each
//! filler a veth pair of its own with its TBF and IFB; 1 and 1000 by
//! default, about 10 s on 2 cores for 1000 on both sides).

use cni::CniVersion;
use serde_json::{json, Value};

use super::super::error::StepError;
use super::super::measure::alternation;
use super::super::series::Series;
use super::super::side::{convert, shaping_conf, Side};
use super::super::{common_version, probe_of, Bench, RSS_ROUNDS};
use super::{add_del_rows, grow};

/// Creates filler pod `k`'s veth pair and shapes it.
fn shape_filler(side: &Side, version: CniVersion, k: usize) -> Result<(), StepError> {
    let (host, cont) = (format!("bf{k}h"), format!("bf{k}c"));
    side.world
        .host
        .ip(&[
            "link",
            "add",
            &host,
            "type",
            "veth",
            "peer",
            "name",
            &cont,
            "netns",
            &side.pod.netns.name,
        ])
        .map_err(|e| StepError::topology(format!("veth {host} for filler {k}"), e))?;
    let prev = json!({
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": host},
            {"name": cont, "sandbox": side.pod.netns.path().to_string_lossy()}
        ],
        "ips": [{"address": format!("10.98.{}.{}/16", k / 250, 2 + k % 250), "interface": 1}],
    });
    let mut conf = shaping_conf(10_000_000, 160_000, None);
    conf["cniVersion"] = json!(version.as_str());
    conf["name"] = json!("bench");
    conf["prevResult"] = convert(&prev, version);
    side.invoke_ok("bandwidth", "ADD", &format!("fill-bw-{k}"), &cont, &conf)
        .map(drop)
}

/// ADD and DEL of the main pod with `n - 1` others shaped.
fn at(b: &Bench, n: usize, version: CniVersion) -> Vec<Value> {
    let mut series: Vec<[Series; 2]> = vec![Default::default(); b.sides.len()];
    for (round, k) in alternation(b.opts.iterations + RSS_ROUNDS, b.sides.len()) {
        let side = &b.sides[k];
        let probe = probe_of(round, b.opts.iterations);
        let conf = side.plugin_conf("bandwidth", version, Some(&side.prev));
        series[k][0].push(side.invoke("bandwidth", "ADD", "probe-bw", "eth0", &conf, probe));
        series[k][1].push(side.invoke("bandwidth", "DEL", "probe-bw", "eth0", &conf, probe));
        side.reset_host_qdiscs();
    }
    add_del_rows(b, n, &series)
}

/// The bandwidth rows: ADD and DEL of the main pod at each N.
pub fn run(b: &Bench) -> Vec<Value> {
    if b.sides.iter().any(|s| !s.dir.join("bandwidth").is_file()) {
        return Vec::new();
    }
    let version = common_version(&b.sides, "bandwidth").unwrap_or(CniVersion::V1_0_0);
    let filler = |side: &Side, k: usize| shape_filler(side, version, k);
    grow(
        b,
        &b.opts.shaped_pods,
        "bandwidth with pods shaped:",
        filler,
        |n| at(b, n, version),
    )
}
