//! Shared world for bandwidth's privileged tests: a "host" netns (where the
//! plugin runs) and "pod" netns joined by veths, the real plugin binary, tc/ip
//! JSON readers, and a bounded TCP throughput probe whose threads enter the
//! namespaces with `NetnsGuard`. Never touches the real host.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cni::netns::NetnsGuard;
use cni::testing::{Invocation, PluginRun, TestNetns};
use serde_json::{json, Value};

pub const VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
pub const HOST_VETH: &str = "veth0";

pub fn plugin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bandwidth"))
}

/// One pod attached to the host by `veth<n>` ↔ `eth0`, with 10.77.<n>.2/24
/// and 10.78.<n>.2/24 in the pod and .1 on the host side.
pub struct Pod {
    pub ns: TestNetns,
    pub host_veth: String,
    pub n: u8,
    pub container_id: String,
}

pub struct World {
    pub host: TestNetns,
    pub pods: Vec<Pod>,
}

impl World {
    pub fn new(pods: u8) -> World {
        let host = TestNetns::new("bh");
        let mut world = World {
            host,
            pods: Vec::new(),
        };
        for n in 0..pods {
            world.add_pod(n);
        }
        world
    }

    fn add_pod(&mut self, n: u8) {
        let ns = TestNetns::new("bp");
        let host_veth = format!("veth{n}");
        cni::testing::veth_pair(&self.host, &host_veth, &ns, "eth0");
        self.host
            .exec(&["ip", "link", "set", &host_veth, "mtu", "1400"]);
        ns.exec(&["ip", "link", "set", "eth0", "mtu", "1400"]);
        for net in [77, 78] {
            self.host.exec(&[
                "ip",
                "addr",
                "add",
                &format!("10.{net}.{n}.1/24"),
                "dev",
                &host_veth,
            ]);
            ns.exec(&[
                "ip",
                "addr",
                "add",
                &format!("10.{net}.{n}.2/24"),
                "dev",
                "eth0",
            ]);
        }
        self.pods.push(Pod {
            ns,
            host_veth,
            n,
            container_id: format!("ctr{n}"),
        });
    }

    pub fn pod(&self, n: usize) -> &Pod {
        &self.pods[n]
    }

    /// Stdin for `pod`: `extra` merged over name/type/version + prevResult.
    pub fn conf(&self, pod: &Pod, version: &str, extra: Value) -> String {
        let mut c = json!({
            "cniVersion": version,
            "name": "bwnet",
            "type": "bandwidth",
            "prevResult": {
                "cniVersion": version,
                "interfaces": [
                    {"name": pod.host_veth, "mac": "02:00:00:00:00:01"},
                    {"name": "eth0", "sandbox": pod.ns.path()},
                ],
                "ips": [{"address": format!("10.77.{}.2/24", pod.n), "gateway": format!("10.77.{}.1", pod.n), "interface": 1}],
            }
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c.to_string()
    }

    pub fn inv(&self, pod: &Pod, command: &str) -> Invocation {
        let mut inv = Invocation::new(command);
        inv.container_id = pod.container_id.clone();
        inv.netns = pod.ns.path().display().to_string();
        inv.ifname = "eth0".into();
        inv.host_netns = Some(self.host.name.clone());
        inv
    }

    pub fn run(&self, pod: &Pod, command: &str, stdin: &str) -> PluginRun {
        self.inv(pod, command).run(&plugin(), stdin)
    }

    pub fn tc(&self, args: &[&str]) -> Value {
        let mut full = vec!["tc", "-j"];
        full.extend_from_slice(args);
        let out = self.host.exec(&full);
        if out.trim().is_empty() {
            return json!([]);
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("tc -j {args:?}: {e}: {out}"))
    }

    pub fn qdiscs(&self, dev: &str) -> Vec<Value> {
        self.tc(&["qdisc", "show", "dev", dev])
            .as_array()
            .unwrap()
            .clone()
    }

    /// The qdisc of `kind` at `parent` ("root" or a class id).
    pub fn qdisc(&self, dev: &str, kind: &str) -> Option<Value> {
        self.qdiscs(dev).into_iter().find(|q| q["kind"] == kind)
    }

    pub fn ingress_filters(&self, dev: &str) -> Vec<Value> {
        self.tc(&["filter", "show", "dev", dev, "ingress"])
            .as_array()
            .unwrap()
            .clone()
    }

    /// `ip -j -d link show` of the host's links.
    pub fn links(&self) -> Vec<Value> {
        let out = self.host.exec(&["ip", "-j", "-d", "link", "show"]);
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn link(&self, name: &str) -> Option<Value> {
        self.links().into_iter().find(|l| l["ifname"] == name)
    }

    pub fn ifbs(&self) -> Vec<String> {
        self.links()
            .into_iter()
            .filter(|l| l["linkinfo"]["info_kind"] == "ifb")
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    }
}

/// The name of the IFB an ADD result appended (last interface).
pub fn ifb_of(result: &Value) -> String {
    let ifaces = result["interfaces"].as_array().unwrap();
    let last = ifaces.last().unwrap();
    assert!(last.get("sandbox").is_none(), "{last}");
    let name = last["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("bwp") && name.len() == 15, "{name}");
    name
}

/// Bytes/s a TCP stream from `from` to `to_addr` in `to` achieves, measured
/// at the receiver from first to last byte. Sends for `secs` or `cap` bytes.
pub fn tcp_rate(
    from: &Path,
    to: &Path,
    to_addr: IpAddr,
    bind_from: Option<IpAddr>,
    secs: f64,
    cap: u64,
) -> f64 {
    let to = to.to_path_buf();
    let from = from.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel::<u16>();
    let receiver = std::thread::spawn(move || {
        let _g = NetnsGuard::enter(&to).unwrap();
        let listener = TcpListener::bind(SocketAddr::new(to_addr, 0)).unwrap();
        tx.send(listener.local_addr().unwrap().port()).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        let mut first: Option<Instant> = None;
        let mut last = Instant::now();
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
            total += n as u64;
        }
        let span = last.duration_since(first.unwrap()).as_secs_f64();
        total as f64 / span
    });
    let port = rx.recv().unwrap();
    let sender = std::thread::spawn(move || {
        let _g = NetnsGuard::enter(&from).unwrap();
        let dst = SocketAddr::new(to_addr, port);
        let mut s = match bind_from {
            None => TcpStream::connect_timeout(&dst, Duration::from_secs(5)).unwrap(),
            Some(src) => {
                // std cannot bind before connect; pick the source with a
                // socket2-free trick: connect from a bound std socket via libc.
                connect_from(src, dst)
            }
        };
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        let chunk = vec![0x5au8; 64 * 1024];
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed().as_secs_f64() < secs && sent < cap {
            s.write_all(&chunk).unwrap();
            sent += chunk.len() as u64;
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
    });
    sender.join().unwrap();
    receiver.join().unwrap()
}

/// A TCP connection from source address `src` (IPv4) to `dst`.
fn connect_from(src: IpAddr, dst: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let (IpAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
        panic!("IPv4 only")
    };
    let sa = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let local = sa(src, 0);
        assert_eq!(
            libc::bind(fd, &local as *const _ as *const libc::sockaddr, len),
            0,
            "bind {src}"
        );
        let remote = sa(*dst.ip(), dst.port());
        assert_eq!(
            libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len),
            0,
            "connect {dst}"
        );
        TcpStream::from_raw_fd(fd)
    }
}

/// Nothing of ours is left: no IFB, no TBF/HTB/ingress qdisc on `veth`.
pub fn assert_no_shaping(w: &World, veth: &str, what: &str) {
    assert!(w.ifbs().is_empty(), "{what}: ifbs left: {:?}", w.ifbs());
    let qs = w.qdiscs(veth);
    assert!(
        qs.iter()
            .all(|q| q["kind"] != "tbf" && q["kind"] != "htb" && q["kind"] != "ingress"),
        "{what}: {qs:?}"
    );
}
