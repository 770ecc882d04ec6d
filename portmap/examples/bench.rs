//! Benchmark (not a test): ADD and DEL median latency of a portmap plugin at
//! 1, 100 and 1000 existing mapped pods, and the TCP connection rate through
//! one hostPort with 1 vs 1000 mappings — for our plugin and for Debian's
//! reference `/usr/lib/cni/portmap` (iptables), each in its own throwaway
//! "host" netns (never the real host). Fair by construction: both plugins
//! are spawned the same way (this thread enters the plugin's host netns
//! before the clock starts and the child inherits it; no `ip netns exec`),
//! and their invocations alternate (fills pod by pod, probes in ABBA order).
//! Run as root:
//!
//! `cargo run --release -p portmap --example bench -- [--counts 1,100,1000] [--samples 15]
//!  [--ours PATH] [--reference PATH]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cni::netns::NetnsGuard;
use cni::testing::{veth_pair, TestNetns};

struct Bed {
    host: TestNetns,
    peer: TestNetns,
    ext: TestNetns,
}

impl Bed {
    fn new() -> Bed {
        let host = TestNetns::new("bh");
        let peer = TestNetns::new("bp");
        let ext = TestNetns::new("bx");
        veth_pair(&host, "bv0", &peer, "bv1");
        veth_pair(&host, "up0", &ext, "up1");
        host.exec(&["ip", "addr", "add", "10.64.0.1/16", "dev", "bv0"]);
        host.exec(&["ip", "addr", "add", "198.18.0.1/24", "dev", "up0"]);
        host.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        peer.exec(&["ip", "addr", "add", "10.64.0.2/16", "dev", "bv1"]);
        peer.exec(&["ip", "route", "add", "default", "via", "10.64.0.1"]);
        ext.exec(&["ip", "addr", "add", "198.18.0.2/24", "dev", "up1"]);
        Bed { host, peer, ext }
    }
}

fn pod_ip(i: usize) -> String {
    format!("10.64.{}.{}", i / 250, i % 250 + 2)
}

fn conf(ip: &str, host_port: usize, sandbox: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0", "name": "benchnet", "type": "portmap",
        "runtimeConfig": {"portMappings": [{"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]},
        "prevResult": {"cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": sandbox}],
            "ips": [{"address": format!("{ip}/16"), "interface": 0}]}
    })
    .to_string()
}

/// Runs the plugin inside `host` (this thread enters it before the clock
/// starts; the child inherits the thread's netns).
fn invoke(
    plugin: &Path,
    host: &Path,
    command: &str,
    id: &str,
    netns: &Path,
    stdin: &str,
) -> Duration {
    let _g = NetnsGuard::enter(host).unwrap();
    let t0 = Instant::now();
    let mut child = Command::new(plugin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let took = t0.elapsed();
    assert!(
        out.status.success(),
        "{} {command} {id}: {} {}",
        plugin.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// TCP connections per second from `ext` to 198.18.0.1:`port` (a server in
/// `peer` answers), over a bounded window.
fn conn_rate(bed: &Bed, port: u16) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let (peer, s2) = (bed.peer.path(), stop.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let _g = NetnsGuard::enter(&peer).unwrap();
        let l = TcpListener::bind("10.64.0.2:80").unwrap();
        l.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        while !s2.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.write_all(b"x");
                }
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    });
    rx.recv().unwrap();
    let ext = bed.ext.path();
    let rate = std::thread::spawn(move || {
        let _g = NetnsGuard::enter(&ext).unwrap();
        let to = format!("198.18.0.1:{port}").parse().unwrap();
        let window = Duration::from_millis(1500);
        let t0 = Instant::now();
        let mut n = 0u32;
        while t0.elapsed() < window && n < 20_000 {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(1)).unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            n += 1;
        }
        f64::from(n) / t0.elapsed().as_secs_f64()
    })
    .join()
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    rate
}

struct Row {
    pods: usize,
    add: Duration,
    del: Duration,
}

/// One plugin under test with its own bed.
struct Subject {
    label: &'static str,
    plugin: PathBuf,
    bed: Bed,
    rows: Vec<Row>,
    rates: Vec<(usize, f64)>,
    adds: Vec<Duration>,
    dels: Vec<Duration>,
}

impl Subject {
    fn new(label: &'static str, plugin: PathBuf) -> Subject {
        Subject {
            label,
            plugin,
            bed: Bed::new(),
            rows: Vec::new(),
            rates: Vec::new(),
            adds: Vec::new(),
            dels: Vec::new(),
        }
    }

    fn run(&self, command: &str, id: &str, conf: &str) -> Duration {
        let sandbox = self.bed.peer.path();
        invoke(
            &self.plugin,
            &self.bed.host.path(),
            command,
            id,
            &sandbox,
            conf,
        )
    }

    fn fill_one(&self, i: usize) {
        let c = conf(&pod_ip(i), 10000 + i, &self.bed.peer.path());
        self.run("ADD", &format!("pod{i}"), &c);
    }

    fn probe(&mut self, k: usize) {
        let c = conf(
            &format!("10.64.200.{}", k + 2),
            30000 + k,
            &self.bed.peer.path(),
        );
        let id = format!("probe{k}");
        let add = self.run("ADD", &id, &c);
        let del = self.run("DEL", &id, &c);
        self.adds.push(add);
        self.dels.push(del);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let counts: Vec<usize> = arg("--counts")
        .unwrap_or_else(|| "1,100,1000".into())
        .split(',')
        .map(|c| c.parse().unwrap())
        .collect();
    let samples: usize = arg("--samples").map(|s| s.parse().unwrap()).unwrap_or(15);
    let exe = std::env::current_exe().unwrap();
    let ours = arg("--ours")
        .map(PathBuf::from)
        .unwrap_or_else(|| exe.parent().unwrap().parent().unwrap().join("portmap"));
    let reference =
        PathBuf::from(arg("--reference").unwrap_or_else(|| "/usr/lib/cni/portmap".into()));
    assert!(ours.exists(), "build the plugin first: {}", ours.display());

    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_before = load();
    let mut subjects = [
        Subject::new("ours", ours),
        Subject::new("reference", reference),
    ];
    let mut existing = 0;
    for &target in &counts {
        let fill = Instant::now();
        while existing < target {
            for s in &subjects {
                s.fill_one(existing);
            }
            existing += 1;
        }
        eprintln!(
            "{target} pods mapped in both beds (fill took {:?})",
            fill.elapsed()
        );
        for k in 0..samples {
            // ABBA: neither plugin always runs right after the other.
            let order = if k % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                subjects[i].probe(k);
            }
        }
        for s in &mut subjects {
            let (adds, dels) = (std::mem::take(&mut s.adds), std::mem::take(&mut s.dels));
            s.rows.push(Row {
                pods: target,
                add: median(adds),
                del: median(dels),
            });
            if target == counts[0] || target == *counts.last().unwrap() {
                let rate = conn_rate(&s.bed, 10000);
                s.rates.push((target, rate));
            }
        }
    }
    let [ours, reference] = &subjects;
    let (our_rows, our_rates) = (&ours.rows, &ours.rates);
    let (ref_rows, ref_rates) = (&reference.rows, &reference.rates);

    println!(
        "load average (1/5/15 min) before: {}, after: {}",
        load_before.trim(),
        load().trim()
    );
    println!(
        "| pods | ours ADD | ours DEL | reference ADD | reference DEL | ADD ratio | DEL ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (o, r) in our_rows.iter().zip(ref_rows) {
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.3} | {:.3} |",
            o.pods,
            o.add.as_secs_f64() * 1e3,
            o.del.as_secs_f64() * 1e3,
            r.add.as_secs_f64() * 1e3,
            r.del.as_secs_f64() * 1e3,
            o.add.as_secs_f64() / r.add.as_secs_f64(),
            o.del.as_secs_f64() / r.del.as_secs_f64(),
        );
    }
    for s in &subjects {
        let (first, last) = (&s.rows[0], &s.rows[s.rows.len() - 1]);
        println!(
            "{} scaling {}→{} pods: ADD {:.2}x, DEL {:.2}x",
            s.label,
            first.pods,
            last.pods,
            last.add.as_secs_f64() / first.add.as_secs_f64(),
            last.del.as_secs_f64() / first.del.as_secs_f64()
        );
    }
    for (label, rates) in [(ours.label, our_rates), (reference.label, ref_rates)] {
        let text: Vec<String> = rates
            .iter()
            .map(|(n, r)| format!("{n} mappings: {r:.0} conn/s"))
            .collect();
        let ratio = rates.last().unwrap().1 / rates[0].1;
        println!(
            "{label} connection rate: {} (ratio {ratio:.2})",
            text.join(", ")
        );
    }
}
