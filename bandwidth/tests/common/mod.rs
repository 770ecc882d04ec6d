//! Shared world for bandwidth's privileged tests: a "host" netns (where the
//! plugin runs) and "pod" netns joined by veths, the real plugin binary, tc/ip
//! JSON readers. Never touches the real host.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;

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

    /// The IFBs in the host netns once teardown is over: a retired IFB
    /// (`bwz…`, which DEL deletes in the background) must be gone within
    /// [`TEARDOWN`]; whatever is left then is returned.
    pub fn ifbs(&self) -> Vec<String> {
        let start = std::time::Instant::now();
        loop {
            let all = self.ifbs_now();
            if !all.iter().any(|n| n.starts_with("bwz")) || start.elapsed() > TEARDOWN {
                return all;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The IFBs in the host netns right now.
    pub fn ifbs_now(&self) -> Vec<String> {
        self.links()
            .into_iter()
            .filter(|l| l["linkinfo"]["info_kind"] == "ifb")
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    }
}

/// How long the background deletion of a retired IFB may take after DEL.
pub const TEARDOWN: std::time::Duration = std::time::Duration::from_secs(1);

/// The name of the IFB an ADD result appended (last interface).
pub fn ifb_of(result: &Value) -> String {
    let ifaces = result["interfaces"].as_array().unwrap();
    let last = ifaces.last().unwrap();
    assert!(last.get("sandbox").is_none(), "{last}");
    let name = last["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("bwp") && name.len() == 15, "{name}");
    name
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
