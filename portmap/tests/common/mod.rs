//! Test world for portmap's privileged tests: a "host" netns (where portmap
//! and Debian's ptp + host-local run), an "ext" netns on an uplink veth that
//! plays a remote client, pods created by ptp, small TCP/UDP echo servers in
//! pods and clients that enter a netns on their own thread. Everything lives
//! in netns the test made; dropped on exit.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use cni::netns::NetnsGuard;
use cni::testing::{sh, veth_pair, Invocation, PluginRun, TestNetns};

pub const NODE4: &str = "198.18.0.1";
pub const EXT4: &str = "198.18.0.2";
pub const NODE6: &str = "fd00:200::1";
pub const EXT6: &str = "fd00:200::2";

pub fn portmap_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portmap"))
}

fn no_dad(ns: &TestNetns) {
    ns.exec(&[
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
    ]);
}

pub struct World {
    pub host: TestNetns,
    pub ext: TestNetns,
    pub ipam_dir: PathBuf,
}

pub struct Pod {
    pub ns: TestNetns,
    pub id: String,
    pub prev: serde_json::Value,
}

impl Pod {
    pub fn ip4(&self) -> String {
        self.ip(true)
    }
    pub fn ip6(&self) -> String {
        self.ip(false)
    }
    /// The pod's prevResult in the layout of `version`.
    pub fn prev_at(&self, version: cni::CniVersion) -> serde_json::Value {
        let (canonical, _) =
            cni::CniResult::from_value(&self.prev, cni::CniVersion::V1_0_0).unwrap();
        canonical.to_value(version).unwrap()
    }
    fn ip(&self, v4: bool) -> String {
        self.prev["ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                i["address"]
                    .as_str()
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .find(|a| a.contains('.') == v4)
            .unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.ipam_dir);
    }
}

impl World {
    pub fn new() -> World {
        let host = TestNetns::new("h");
        let ext = TestNetns::new("x");
        no_dad(&host);
        no_dad(&ext);
        veth_pair(&host, "up0", &ext, "up1");
        host.exec(&["ip", "addr", "add", &format!("{NODE4}/24"), "dev", "up0"]);
        host.exec(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{NODE6}/64"),
            "dev",
            "up0",
            "nodad",
        ]);
        ext.exec(&["ip", "addr", "add", &format!("{EXT4}/24"), "dev", "up1"]);
        ext.exec(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{EXT6}/64"),
            "dev",
            "up1",
            "nodad",
        ]);
        let ipam_dir = std::env::temp_dir().join(format!("{}-ipam", host.name));
        World {
            host,
            ext,
            ipam_dir,
        }
    }

    fn ptp_conf(&self) -> String {
        serde_json::json!({
            "cniVersion": "1.0.0", "name": "pmnet", "type": "ptp", "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd00:77::/64"}]],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                "dataDir": self.ipam_dir,
            }
        })
        .to_string()
    }

    /// A pod made by Debian's ptp + host-local, run inside the host netns.
    pub fn pod(&self, id: &str) -> Pod {
        let ns = TestNetns::new("p");
        no_dad(&ns);
        let mut inv = Invocation::new("ADD");
        inv.container_id = id.into();
        inv.netns = ns.path().display().to_string();
        inv.host_netns = Some(self.host.name.clone());
        let run = inv.run(Path::new("/usr/lib/cni/ptp"), &self.ptp_conf());
        run.assert_ok();
        Pod {
            ns,
            id: id.into(),
            prev: run.json(),
        }
    }

    pub fn remove_pod(&self, pod: &Pod) {
        let mut inv = Invocation::new("DEL");
        inv.container_id = pod.id.clone();
        inv.netns = pod.ns.path().display().to_string();
        inv.host_netns = Some(self.host.name.clone());
        inv.run(Path::new("/usr/lib/cni/ptp"), &self.ptp_conf())
            .assert_ok();
    }

    /// Runs our portmap in the host netns.
    pub fn portmap(
        &self,
        command: &str,
        id: &str,
        netns: &str,
        conf: &serde_json::Value,
    ) -> PluginRun {
        self.portmap_env(command, id, netns, conf, &[])
    }

    /// [`World::portmap`] with more environment variables.
    pub fn portmap_env(
        &self,
        command: &str,
        id: &str,
        netns: &str,
        conf: &serde_json::Value,
        env: &[(&str, &str)],
    ) -> PluginRun {
        let mut inv = Invocation::new(command);
        inv.container_id = id.into();
        inv.netns = netns.into();
        inv.host_netns = Some(self.host.name.clone());
        for (k, v) in env {
            inv.extra_env.insert((*k).into(), (*v).into());
        }
        inv.run(&portmap_bin(), &conf.to_string())
    }

    pub fn nft_ruleset(&self) -> String {
        self.host.exec(&["nft", "list", "ruleset"])
    }
}

/// A portmap configuration at `version` chained after `prev`.
pub fn portmap_conf(
    version: &str,
    prev: Option<&serde_json::Value>,
    mappings: serde_json::Value,
) -> serde_json::Value {
    let mut c = serde_json::json!({
        "cniVersion": version, "name": "pmnet", "type": "portmap",
        "runtimeConfig": {"portMappings": mappings},
    });
    if let Some(p) = prev {
        let mut p = p.clone();
        p["cniVersion"] = version.into();
        c["prevResult"] = p;
    }
    c
}

/// TCP and UDP echo servers (dual-stack) in a pod, answering `ident`.
pub struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

pub fn serve(ns: &TestNetns, ident: &str, tcp_port: u16, udp_port: u16) -> Servers {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    {
        let (path, ident, stop, tx) = (ns.path(), ident.to_string(), stop.clone(), tx.clone());
        threads.push(std::thread::spawn(move || {
            let _g = NetnsGuard::enter(&path).unwrap();
            let l = TcpListener::bind(("::", tcp_port)).unwrap();
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.write_all(ident.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }
    {
        let (path, ident, stop) = (ns.path(), ident.to_string(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let _g = NetnsGuard::enter(&path).unwrap();
            let u = UdpSocket::bind(("::", udp_port)).unwrap();
            u.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((_, from)) = u.recv_from(&mut buf) {
                    let _ = u.send_to(ident.as_bytes(), from);
                }
            }
        }));
    }
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    Servers { stop, threads }
}

fn in_netns<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = ns.to_path_buf();
    std::thread::spawn(move || {
        let _g = NetnsGuard::enter(&path).unwrap();
        f()
    })
    .join()
    .unwrap()
}

pub fn addr(ip: &str, port: u16) -> SocketAddr {
    if ip.contains(':') {
        format!("[{ip}]:{port}").parse().unwrap()
    } else {
        format!("{ip}:{port}").parse().unwrap()
    }
}

/// How long a client waits for an answer. Generous: a check expecting an
/// answer must not fail on a loaded machine, and a check expecting none is
/// answered at once (a closed TCP port sends a RST, a closed UDP port an
/// ICMP error that the connected UDP socket below reports).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects from inside `ns` and returns what the server said.
pub fn tcp_get(ns: &Path, to: SocketAddr) -> Result<String, String> {
    in_netns(ns, move || {
        let mut s = TcpStream::connect_timeout(&to, ANSWER_TIMEOUT).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    })
}

/// Sends a datagram from inside `ns` (optionally from `from`), again every
/// 500 ms until [`ANSWER_TIMEOUT`], and returns the answer. The socket is
/// connected: replies through portmap's DNAT come back from `to` itself,
/// and a port unreachable is reported at once.
pub fn udp_get(ns: &Path, to: SocketAddr, from: Option<SocketAddr>) -> Result<String, String> {
    in_netns(ns, move || {
        let bind = from.unwrap_or_else(|| {
            if to.is_ipv4() {
                addr("0.0.0.0", 0)
            } else {
                addr("::", 0)
            }
        });
        let u = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
        u.connect(to).map_err(|e| e.to_string())?;
        u.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 512];
        let start = std::time::Instant::now();
        while start.elapsed() < ANSWER_TIMEOUT {
            u.send(b"ping").map_err(|e| e.to_string())?;
            match u.recv(&mut buf) {
                Ok(n) => return Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("no UDP answer".into())
    })
}

pub fn host_exec(world: &World, args: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", &world.host.name];
    full.extend_from_slice(args);
    sh(&full)
}

/// Where portmap keeps the index file of attachment `id`/eth0 of network
/// `pmnet` for this world's host netns.
pub fn index_path(world: &World, id: &str) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(world.host.path()).unwrap().ino();
    let owner = cni::args::Owner::new("pmnet", id, "eth0");
    PathBuf::from(format!(
        "/run/cni-portmap/netns-{ino}/{}.json",
        portmap::plan::owner_hash(&owner)
    ))
}

/// The remote client sends to 127.0.0.1 through the node's uplink, as a
/// neighbour on the node's L2 segment can (its own 127.0.0.0/8 gone,
/// `route_localnet` on, a route via the node).
pub fn ext_sends_to_loopback_via_node(w: &World) {
    for cmd in [
        &["ip", "addr", "flush", "dev", "lo"][..],
        &["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"],
        &["sysctl", "-qw", "net.ipv4.conf.up1.route_localnet=1"],
        &[
            "ip",
            "route",
            "add",
            "127.0.0.1/32",
            "via",
            NODE4,
            "dev",
            "up1",
        ],
    ] {
        w.ext.exec(cmd);
    }
}

/// UDP conntrack entries in the host netns whose original destination port
/// is `port`: (IPv4, IPv6), from one dump of every family.
pub fn udp_entries(w: &World, port: u16) -> (usize, usize) {
    use netlink_packet_netfilter::conntrack::{ConntrackAttribute, IPTuple, Tuple};
    let sock = cni::netlink::netfilter::Nfnl::open_in(&w.host.path()).unwrap();
    let mut out = (0, 0);
    for attrs in sock
        .conntrack_dump(netlink_packet_netfilter::NetfilterProtoFamily::Unspec)
        .unwrap()
    {
        for a in &attrs {
            let ConntrackAttribute::CtaTupleOrig(t) = a else {
                continue;
            };
            if portmap::conntrack::udp_dport(t) != Some(port) {
                continue;
            }
            let v6 = t.iter().any(|x| {
                matches!(x, Tuple::Ip(ips)
                    if ips.iter().any(|i| matches!(i, IPTuple::SourceAddress(ip) if ip.is_ipv6())))
            });
            if v6 {
                out.1 += 1;
            } else {
                out.0 += 1;
            }
        }
    }
    out
}

/// Runs ADD with its background child held (see
/// [`cni::failpoint::CHILD_HOLD_ENV`]), runs `traffic` meanwhile, then
/// releases the child and waits until its work (the conntrack flush) is
/// over. Returns the UDP entries for `port` (IPv4, IPv6) before and after
/// the flush.
pub fn add_holding_the_flush(
    w: &World,
    id: &str,
    netns: &str,
    conf: &serde_json::Value,
    port: u16,
    traffic: impl FnOnce(),
) -> ((usize, usize), (usize, usize)) {
    let hold = std::env::temp_dir().join(format!("pm-ct-hold-{}-{port}", std::process::id()));
    let _ = std::fs::remove_file(&hold);
    let held = [(cni::failpoint::CHILD_HOLD_ENV, hold.to_str().unwrap())];
    w.portmap_env("ADD", id, netns, conf, &held).assert_ok();
    traffic();
    let before = udp_entries(w, port);
    std::fs::write(&hold, "").unwrap();
    let start = std::time::Instant::now();
    while hold.exists() {
        if start.elapsed() > std::time::Duration::from_secs(10) {
            let _ = std::fs::remove_file(&hold);
            panic!("ADD's background child never ran");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    (before, udp_entries(w, port))
}

/// Waits until no UDP conntrack entry for `port` is left in either family;
/// fails after 1 s.
pub fn assert_flushed_within_a_second(w: &World, port: u16, what: &str) {
    let start = std::time::Instant::now();
    loop {
        let left = udp_entries(w, port);
        if left == (0, 0) {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "{what}: stale UDP conntrack entries for port {port} (IPv4, IPv6) still there after 1 s: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
