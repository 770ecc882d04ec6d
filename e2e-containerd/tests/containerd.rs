//! End to end under a real runtime: a private containerd 1.6 (Debian's
//! package) with this workspace's portmap, bandwidth, tuning and loopback in
//! its CNI `bin_dir` (Debian's bridge + host-local as the main plugins),
//! driven over CRI the way kubelet drives it, once per cniVersion.
//!
//! Pod A maps a tcp and a udp hostPort and carries the two bandwidth
//! annotations; a container in it serves tcp/80 (busybox nc). Pod B is a
//! plain second pod. The hostPorts must answer from the node (the bridge
//! gateway, inside the netns containerd runs in) and from pod B (ExecSync in
//! its container for tcp); the TBF/IFB must exist with the burst capped by
//! `maxBurst`; the tuning sysctl must hold inside pod A; Stop/RemovePodSandbox
//! must succeed and leave nothing: no nft element, IFB, veth, netns, libcni
//! result cache file, portmap index, tuning backup or IP reservation.
//!
//! A plugin that refuses what containerd sends fails the test with
//! containerd's own RunPodSandbox error, which names the plugin and the field.
//!
//! Isolation: containerd runs inside a throwaway netns (prefix `cnt`) that
//! plays the node, so every object the plugins create on "the host" lives in
//! that netns; traffic goes only to the pods (10.77.x) and to the gateway
//! address on the test's own bridge. The hostPorts are fixed: nothing else
//! listens in that netns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cni::testing::{unique_name, workspace_bin_dir, TestNetns};
use e2e_containerd::containerd::Containerd;
use e2e_containerd::cri::{bandwidth_annotations, Cri};
use e2e_containerd::DEBIAN_CNI;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ImageSpec, LinuxPodSandboxConfig, PodSandboxConfig,
    PodSandboxMetadata, PortMapping, Protocol,
};
use serde_json::{json, Value};

const TCP_HOST_PORT: u16 = 18080;
const UDP_HOST_PORT: u16 = 18081;
const TCP_CONTAINER_PORT: u16 = 80;
const UDP_CONTAINER_PORT: u16 = 81;
/// Kubernetes bandwidth annotations (bit/s) and the conflist's cap (bits).
const INGRESS: &str = "10M";
const INGRESS_BITS: u64 = 10_000_000;
const EGRESS: &str = "20M";
const EGRESS_BITS: u64 = 20_000_000;
const MAX_BURST_BITS: u64 = 1_000_000;
/// Our plugins, from this workspace's target dir.
const OURS: [&str; 4] = ["portmap", "bandwidth", "tuning", "loopback"];
/// How long a just-started server may take to answer.
const SERVE_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn containerd_runs_pods_with_our_plugins_cni_0_4_0() {
    run(
        "containerd_runs_pods_with_our_plugins_cni_0_4_0",
        "0.4.0",
        4,
    );
}

#[test]
fn containerd_runs_pods_with_our_plugins_cni_1_0_0() {
    run(
        "containerd_runs_pods_with_our_plugins_cni_1_0_0",
        "1.0.0",
        10,
    );
}

/// The whole scenario for one cniVersion; pods in 10.77.`octet`.0/24.
fn run(test: &str, version: &str, octet: u8) {
    if !e2e_containerd::available(test) {
        return;
    }
    let Some(bin) = our_plugins(test) else {
        return;
    };
    let started = Instant::now();
    let mut world = World::start(version, octet, &bin);

    // Pod A: hostPorts + bandwidth annotations, a tcp server container.
    let a_config = world.pod_config(
        "web",
        vec![
            port(Protocol::Tcp, TCP_CONTAINER_PORT, TCP_HOST_PORT),
            port(Protocol::Udp, UDP_CONTAINER_PORT, UDP_HOST_PORT),
        ],
        bandwidth_annotations(INGRESS, EGRESS),
    );
    let a = world.run_pod(&a_config);
    let cri = world.cri();
    let web_reply = format!("web {version}");
    let web = cri
        .start_container(
            &a,
            &a_config,
            &container(
                "web",
                &world.ctrd.image,
                &[
                    "/bin/busybox",
                    "nc",
                    "-ll",
                    "-p",
                    &TCP_CONTAINER_PORT.to_string(),
                    "-e",
                    "/bin/busybox",
                    "echo",
                    &web_reply,
                ],
            ),
        )
        .unwrap_or_else(|e| panic!("{version}: {e}"));
    // Pod B: no ports, no annotations; its container only sleeps.
    let b_config = world.pod_config("client", Vec::new(), HashMap::new());
    let b = world.run_pod(&b_config);
    let cri = world.cri();
    let client = cri
        .start_container(&b, &b_config, &container("client", &world.ctrd.image, &[]))
        .unwrap_or_else(|e| panic!("{version}: {e}"));

    let a_status = cri.pod_sandbox_status(&a).unwrap();
    let b_status = cri.pod_sandbox_status(&b).unwrap();
    assert!(
        a_status.ready && b_status.ready,
        "{version}: sandboxes not ready"
    );
    assert!(
        a_status.ip.starts_with(&format!("10.77.{octet}.")),
        "{version}: pod A's IP {:?} is not from host-local's range",
        a_status.ip
    );
    let a_netns = a_status.netns_path().expect("pod A's netns");
    let b_netns = b_status.netns_path().expect("pod B's netns");
    // The udp server: a socket this test opens inside pod A's netns (Debian's
    // busybox nc has no udp mode).
    let udp_server = UdpEcho::start(&a_netns, UDP_CONTAINER_PORT, "web-udp");

    // What containerd sent, as libcni cached it: Go-cased keys.
    let cached = world.cached_result(&a);
    let sent = &cached["capabilityArgs"];
    assert_eq!(
        sent["portMappings"][0]["HostPort"], TCP_HOST_PORT,
        "{version}: containerd's port mappings as cached: {sent}"
    );
    assert!(
        sent["bandwidth"]["IngressRate"].is_u64(),
        "{version}: containerd's bandwidth as cached: {sent}"
    );

    // hostPorts from the node (the gateway address on our bridge).
    let gw = world.gateway();
    let tcp_to = SocketAddr::new(gw.into(), TCP_HOST_PORT);
    let udp_to = SocketAddr::new(gw.into(), UDP_HOST_PORT);
    assert_eq!(
        retry(|| world.host_tcp(tcp_to)),
        web_reply,
        "{version}: tcp hostPort from the node"
    );
    assert_eq!(
        in_netns(world.host.path(), || udp_request(udp_to)),
        "web-udp",
        "{version}: udp hostPort from the node"
    );
    // ... and from pod B: tcp from its container, udp from its netns.
    let gw_s = gw.to_string();
    let port_s = TCP_HOST_PORT.to_string();
    let out = cri
        .exec_sync(
            &client,
            &["/bin/busybox", "nc", "-w", "5", &gw_s, &port_s],
            20,
        )
        .unwrap_or_else(|e| panic!("{version}: {e}"));
    assert_eq!(
        (out.exit_code, out.stdout.trim()),
        (0, web_reply.as_str()),
        "{version}: tcp hostPort from pod B's container (stderr {:?})",
        out.stderr
    );
    assert_eq!(
        in_netns(&b_netns, || udp_request(udp_to)),
        "web-udp",
        "{version}: udp hostPort from pod B"
    );
    assert!(
        world.nft_elements_of(&a) > 0,
        "{version}: no nft element names pod A:\n{}",
        world.nft_table()
    );

    // bandwidth: the TBFs with the burst capped at maxBurst.
    let (host_veth, ifb) = host_ends(&cached["result"], &world.bridge);
    let ifb = ifb.unwrap_or_else(|| panic!("{version}: no IFB in the result {cached}"));
    world.assert_tbf(&host_veth, INGRESS_BITS);
    world.assert_tbf(&ifb, EGRESS_BITS);

    // tuning: the sysctl, seen from inside pod A's container.
    let out = cri
        .exec_sync(
            &web,
            &[
                "/bin/busybox",
                "cat",
                "/proc/sys/net/ipv4/conf/eth0/arp_filter",
            ],
            20,
        )
        .unwrap_or_else(|e| panic!("{version}: {e}"));
    assert_eq!(
        out.stdout.trim(),
        "1",
        "{version}: arp_filter in pod A: {out:?}"
    );
    assert!(
        !world.files("tuning").is_empty(),
        "{version}: tuning kept no backup"
    );

    drop(udp_server);
    for id in [&a, &b] {
        cri.stop_pod_sandbox(id)
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        cri.remove_pod_sandbox(id)
            .unwrap_or_else(|e| panic!("{version}: {e}"));
    }
    world.assert_nothing_left(&[&a, &b], &[&a_netns, &b_netns], &host_veth, &ifb);
    println!(
        "{test}: containerd {version} scenario passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The netns that plays the node, and the containerd running in it.
struct World {
    /// Dropped first: stops every pod and the daemon.
    ctrd: Containerd,
    host: TestNetns,
    version: String,
    octet: u8,
    bridge: String,
}

impl World {
    fn start(version: &str, octet: u8, bin: &Path) -> World {
        let host = TestNetns::new("ctd");
        let tag = version.replace('.', "");
        let mut ctrd = Containerd::new(&tag, &host.path()).unwrap();
        for name in OURS {
            ctrd.install_plugin(name, &bin.join(name)).unwrap();
        }
        for name in ["bridge", "host-local"] {
            ctrd.install_plugin(name, &Path::new(DEBIAN_CNI).join(name))
                .unwrap();
        }
        let bridge = unique_name("br");
        let conflist = json!({
            "cniVersion": version,
            "name": format!("cnt-e2e-{tag}-{}", std::process::id()),
            "plugins": [
                {
                    "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": format!("10.77.{octet}.0/24")}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": ctrd.path("host-local"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "bandwidth", "capabilities": {"bandwidth": true}, "maxBurst": MAX_BURST_BITS},
                {
                    "type": "tuning",
                    "sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1"},
                    "dataDir": ctrd.path("tuning"),
                },
            ],
        });
        ctrd.write_conflist(&conflist).unwrap();
        ctrd.start()
            .unwrap_or_else(|e| panic!("{version}: starting containerd: {e}"));
        World {
            ctrd,
            host,
            version: version.to_string(),
            octet,
            bridge,
        }
    }

    fn gateway(&self) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::new(10, 77, self.octet, 1)
    }

    fn pod_config(
        &self,
        name: &str,
        port_mappings: Vec<PortMapping>,
        annotations: HashMap<String, String>,
    ) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_string(),
                uid: format!("{name}-{}-{}", self.octet, std::process::id()),
                namespace: "cnt-e2e".to_string(),
                attempt: 0,
            }),
            hostname: name.to_string(),
            port_mappings,
            annotations,
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.ctrd.cgroup_parent(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox; a refusal fails the test with containerd's message
    /// (which names the plugin and the field) verbatim.
    fn run_pod(&mut self, config: &PodSandboxConfig) -> String {
        let name = config.metadata.as_ref().map_or("", |m| m.name.as_str());
        let id = self
            .ctrd
            .cri()
            .unwrap()
            .run_pod_sandbox(config)
            .unwrap_or_else(|e| {
                panic!(
                    "containerd could not start pod {name} with cniVersion {}; its error, verbatim:\n{e}",
                    self.version
                )
            });
        self.ctrd.track_sandbox(&id);
        id
    }

    fn cri(&self) -> &Cri {
        self.ctrd.cri().unwrap()
    }

    /// libcni's cached result for the sandbox's eth0 (what the runtime keeps
    /// and hands back on DEL).
    fn cached_result(&self, id: &str) -> Value {
        let file = self
            .ctrd
            .cached_results()
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with(&format!("-{id}-eth0")))
            .unwrap_or_else(|| panic!("{}: no cached result for {id}", self.version));
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap()
    }

    fn host_tcp(&self, to: SocketAddr) -> Result<String, String> {
        in_netns(self.host.path(), || {
            conformance::tools::tcp_request(to, Duration::from_secs(2)).map_err(|e| e.to_string())
        })
    }

    fn nft_table(&self) -> String {
        let (ok, out, err) =
            self.host
                .try_exec(&["nft", "-j", "list", "table", "inet", "cni_portmap"]);
        if ok {
            out
        } else {
            err
        }
    }

    /// Elements of portmap's table whose owner comment names sandbox `id`.
    fn nft_elements_of(&self, id: &str) -> usize {
        let table: Value = serde_json::from_str(&self.nft_table()).unwrap_or(Value::Null);
        let mut n = 0;
        for obj in table["nftables"].as_array().into_iter().flatten() {
            for kind in ["map", "set"] {
                for elem in obj[kind]["elem"].as_array().into_iter().flatten() {
                    if elem.to_string().contains(id) {
                        n += 1;
                    }
                }
            }
        }
        n
    }

    /// The root TBF on `dev` in the node netns.
    fn tbf(&self, dev: &str) -> Value {
        let out = self.host.exec(&["tc", "-j", "qdisc", "show", "dev", dev]);
        let qdiscs: Value = serde_json::from_str(&out).unwrap();
        qdiscs
            .as_array()
            .into_iter()
            .flatten()
            .find(|q| q["kind"] == "tbf")
            .cloned()
            .unwrap_or_else(|| panic!("{}: no tbf on {dev}: {out}", self.version))
    }

    /// `dev`'s TBF shapes at `rate_bits` with the burst capped at maxBurst.
    fn assert_tbf(&self, dev: &str, rate_bits: u64) {
        let tbf = self.tbf(dev);
        let got = (&tbf["options"]["rate"], &tbf["options"]["burst"]);
        let want = (rate_bits / 8, MAX_BURST_BITS / 8);
        assert_eq!(
            (got.0.as_u64(), got.1.as_u64()),
            (Some(want.0), Some(want.1)),
            "{}: tbf on {dev} (rate, burst in bytes): {tbf}",
            self.version
        );
    }

    fn links(&self) -> Vec<String> {
        let out = self.host.exec(&["ip", "-j", "link", "show"]);
        let links: Value = serde_json::from_str(&out).unwrap();
        links
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }

    /// Files under `<temp dir>/<dir>`, recursively.
    fn files(&self, dir: &str) -> Vec<PathBuf> {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.ctrd.path(dir), &mut out);
        out
    }

    fn assert_nothing_left(&self, ids: &[&str], netns: &[&Path], veth: &str, ifb: &str) {
        let v = &self.version;
        assert_eq!(
            self.cri().list_pod_sandboxes().unwrap(),
            Vec::<String>::new(),
            "{v}: sandboxes left"
        );
        for ns in netns {
            assert!(!ns.exists(), "{v}: pod netns {} left", ns.display());
        }
        // bandwidth unregisters a DEL's IFB in the background, after DEL
        // replied: teardown is over within a second.
        let only_ours = |links: &[String]| links.iter().all(|l| l == "lo" || *l == self.bridge);
        let start = std::time::Instant::now();
        let mut links = self.links();
        while !only_ours(&links) && start.elapsed() < std::time::Duration::from_secs(1) {
            std::thread::sleep(std::time::Duration::from_millis(20));
            links = self.links();
        }
        assert!(
            only_ours(&links),
            "{v}: links left in the node netns (veth {veth}, ifb {ifb}): {links:?}"
        );
        for id in ids {
            assert_eq!(
                self.nft_elements_of(id),
                0,
                "{v}: nft elements of {id} left:\n{}",
                self.nft_table()
            );
        }
        assert_eq!(
            self.ctrd.cached_results(),
            Vec::<PathBuf>::new(),
            "{v}: libcni result cache files left"
        );
        let ino =
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(self.host.path()).unwrap());
        let portmap_state: Vec<_> = std::fs::read_dir(format!("/run/cni-portmap/netns-{ino}"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            // The netns identity describes the live node netns, not a pod.
            .filter(|p| !p.ends_with("identity"))
            .collect();
        assert_eq!(
            portmap_state,
            Vec::<PathBuf>::new(),
            "{v}: portmap index files left"
        );
        assert_eq!(
            self.files("tuning"),
            Vec::<PathBuf>::new(),
            "{v}: tuning backups left"
        );
        let reservations: Vec<PathBuf> = self
            .files("host-local")
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name != "lock" && !name.starts_with("last_reserved_ip")
            })
            .collect();
        assert_eq!(
            reservations,
            Vec::<PathBuf>::new(),
            "{v}: pod IPs still reserved"
        );
    }
}

/// Our plugins' build dir; `None` (with a printed reason) when they were not
/// built, a failure under CI.
fn our_plugins(test: &str) -> Option<PathBuf> {
    let dir = workspace_bin_dir();
    let missing: Vec<&str> = OURS
        .iter()
        .copied()
        .filter(|p| !dir.join(p).is_file())
        .collect();
    if missing.is_empty() {
        return Some(dir);
    }
    let reason = format!(
        "{missing:?} not built in {} (run `cargo build --workspace` first)",
        dir.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {reason}");
    }
    eprintln!("SKIP {test}: {reason}");
    None
}

fn port(protocol: Protocol, container_port: u16, host_port: u16) -> PortMapping {
    PortMapping {
        protocol: protocol as i32,
        container_port: container_port.into(),
        host_port: host_port.into(),
        host_ip: String::new(),
    }
}

fn container(name: &str, image: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// The host veth (the interface without a sandbox that is not the bridge)
/// and bandwidth's IFB (`bwp…`) from a CNI result.
fn host_ends(result: &Value, bridge: &str) -> (String, Option<String>) {
    let names: Vec<&str> = result["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["sandbox"].as_str().unwrap_or("").is_empty())
        .filter_map(|i| i["name"].as_str())
        .filter(|n| *n != bridge)
        .collect();
    let ifb = names
        .iter()
        .find(|n| n.starts_with("bwp"))
        .map(|s| s.to_string());
    let veth = names
        .iter()
        .find(|n| !n.starts_with("bwp"))
        .unwrap_or_else(|| panic!("no host veth in {result}"))
        .to_string();
    (veth, ifb)
}

fn in_netns<T>(netns: impl AsRef<Path>, f: impl FnOnce() -> T) -> T {
    cni::netns::run_in(netns.as_ref(), f).unwrap()
}

fn udp_request(to: SocketAddr) -> String {
    conformance::tools::udp_request(to, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("udp to {to}: {e}"))
}

/// Calls `f` until it succeeds or `SERVE_TIMEOUT` passes (a server that was
/// just started may not listen yet).
fn retry(mut f: impl FnMut() -> Result<String, String>) -> String {
    let deadline = Instant::now() + SERVE_TIMEOUT;
    loop {
        match f() {
            Ok(r) => return r,
            Err(e) if Instant::now() >= deadline => {
                panic!("no answer within {SERVE_TIMEOUT:?}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A udp server whose socket lives in a pod's netns; answers every datagram
/// with a fixed reply until dropped.
struct UdpEcho {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpEcho {
    fn start(netns: &Path, port: u16, reply: &'static str) -> UdpEcho {
        let socket = in_netns(netns, || UdpSocket::bind(("0.0.0.0", port))).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((_, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(reply.as_bytes(), from);
                }
            }
        });
        UdpEcho {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
