//! Benchmark (not a test): median wall-clock latency of ADD (and DEL) for our
//! `bandwidth` binary and a reference binary (default /usr/lib/cni/bandwidth),
//! interleaved, both shaping ingress + egress of the same veth in throwaway
//! netns. Run as root:
//! `cargo run --release -p bandwidth --example add_latency -- [iterations] [reference]`
//! (build the plugin first: `cargo build --release -p bandwidth`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use cni::testing::{veth_pair, Invocation, TestNetns};
use serde_json::json;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args.next().map_or(200, |s| s.parse().unwrap());
    let reference = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "/usr/lib/cni/bandwidth".into()),
    );
    let exe = std::env::current_exe().unwrap();
    let ours = exe.parent().unwrap().parent().unwrap().join("bandwidth");
    assert!(ours.exists(), "build the plugin first: {}", ours.display());

    let host = TestNetns::new("bb");
    let pod = TestNetns::new("bb");
    veth_pair(&host, "veth0", &pod, "eth0");
    let conf = json!({
        "cniVersion": "1.0.0", "name": "bwbench", "type": "bandwidth",
        "ingressRate": 10_000_000, "ingressBurst": 100_000, "egressRate": 10_000_000, "egressBurst": 100_000,
        "prevResult": {"cniVersion": "1.0.0", "interfaces": [
            {"name": "veth0"}, {"name": "eth0", "sandbox": pod.path()}]}
    })
    .to_string();
    let inv = |cmd: &str| {
        let mut i = Invocation::new(cmd);
        i.container_id = "bench1".into();
        i.netns = pod.path().display().to_string();
        i.host_netns = Some(host.name.clone());
        i
    };
    let (add, del) = (inv("ADD"), inv("DEL"));
    // `ip netns exec` itself costs time; measure it to subtract.
    let mut base = Vec::new();
    let mut times: Vec<(Vec<f64>, Vec<f64>)> =
        vec![(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    let bins = [ours.clone(), reference.clone()];
    let truth = PathBuf::from("/bin/true");
    for _ in 0..iterations {
        let t = Instant::now();
        inv("VERSION").run(&truth, "");
        base.push(t.elapsed().as_secs_f64() * 1e3);
        for (i, bin) in bins.iter().enumerate() {
            let t = Instant::now();
            add.run(bin, &conf).assert_ok();
            times[i].0.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            del.run(bin, &conf).assert_ok();
            times[i].1.push(t.elapsed().as_secs_f64() * 1e3);
            // The reference DEL leaves the veth's qdiscs (they normally die
            // with the veth); clear them, untimed, so the next ADD can run.
            for parent in ["root", "ingress"] {
                let _ = host.try_exec(&["tc", "qdisc", "del", "dev", "veth0", parent]);
            }
        }
    }
    let b = median(base);
    println!(
        "iterations: {iterations}; `ip netns exec /bin/true` median {b:.2} ms (subtracted below)"
    );
    let mut adds = Vec::new();
    for (bin, (a, d)) in bins.iter().zip(times) {
        let (a, d) = (median(a) - b, median(d) - b);
        adds.push(a);
        println!(
            "{:<40} ADD median {a:.2} ms   DEL median {d:.2} ms",
            bin.display()
        );
    }
    println!("ADD ratio ours/reference: {:.2}", adds[0] / adds[1]);
}
