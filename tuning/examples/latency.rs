//! A tiny latency measurement, not a test: median wall time of one tuning ADD
//! (process spawn to exit) for our binary and a reference binary, with the
//! same configuration against a veth in a private netns, interleaved.
//!
//! Build the plugin first, then run as root:
//!   cargo build --release -p tuning
//!   cargo run --release -p tuning --example latency -- [ours] [reference] [iterations]
//! Defaults: `<this example's dir>/../tuning`, `/usr/lib/cni/tuning`, 200.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cni::testing::{privileged, veth_pair, Invocation, TestNetns};
use serde_json::json;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(mut v: Vec<Duration>, p: usize) -> Duration {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn main() {
    if !privileged("tuning latency example") {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let ours = args.get(1).map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().join("tuning")
    });
    let reference = args
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/cni/tuning"));
    let iterations: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200);
    assert!(ours.exists(), "build it first: {}", ours.display());

    let ctr = TestNetns::new("lt");
    let peer = TestNetns::new("lp");
    veth_pair(&ctr, "eth0", &peer, "veth0");
    let data = std::env::temp_dir().join(format!("tuning-latency-{}", std::process::id()));
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "latnet",
        "type": "tuning",
        "dataDir": data.display().to_string(),
        "mac": "02:11:22:33:44:55",
        "mtu": 1400,
        "promisc": true,
        "sysctl": {"net.core.somaxconn": "1234"},
        "prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": ctr.path().display().to_string()}],
            "ips": [{"address": "10.1.2.3/24", "interface": 0}]
        }
    })
    .to_string();
    let mut inv = Invocation::new("ADD");
    inv.netns = ctr.path().display().to_string();
    inv.container_id = "latency".into();
    inv.extra_env.insert(
        "TUNING_ALLOWLIST_FILE".into(),
        data.join("no-allowlist").display().to_string(),
    );

    let run = |plugin: &Path, command: &str| -> Duration {
        let mut i = inv.clone();
        i.command = command.into();
        let start = Instant::now();
        let r = i.run(plugin, &conf);
        let took = start.elapsed();
        assert_eq!(r.code, 0, "{} {command}: {}", plugin.display(), r.stdout);
        took
    };
    let mut times = [Vec::new(), Vec::new()];
    for n in 0..iterations + 10 {
        for (slot, plugin) in [&ours, &reference].into_iter().enumerate() {
            let t = run(plugin, "ADD");
            run(plugin, "DEL");
            // The reference never restores sysctls; reset so every ADD writes.
            ctr.exec(&["sh", "-c", "printf 4096 > /proc/sys/net/core/somaxconn"]);
            if n >= 10 {
                times[slot].push(t);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&data);
    for (name, t) in [("ours", &times[0]), ("reference", &times[1])] {
        println!(
            "{name:>9}: ADD median {:>7.3} ms  p90 {:>7.3} ms  (n={})",
            median(t.clone()).as_secs_f64() * 1e3,
            percentile(t.clone(), 90).as_secs_f64() * 1e3,
            t.len()
        );
    }
    let ratio = median(times[0].clone()).as_secs_f64() / median(times[1].clone()).as_secs_f64();
    println!("ratio ours/reference (median): {ratio:.2}");
}
