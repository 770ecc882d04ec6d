//! One plugin directory under test with its throwaway world: a netns playing
//! the host and a dual-stack pod made by the main plugins (bridge +
//! host-local, from the main-plugin directory both sides share), plus the
//! stdin each chained plugin gets. Owns nothing of the real host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cni::CniVersion;
use serde_json::{json, Value};

use super::error::StepError;
use super::measure::{run_measured, Probe, Sample};
use crate::topology::{HostWorld, Pod};
use cni_runtime::parse_conflist;
use cni_runtime::{Runtime, RuntimeConf};

/// Longest one plugin invocation may take.
pub const LIMIT: Duration = Duration::from_secs(120);

/// The conflist of the main plugins: a bridge with host-local IPv4 + IPv6.
pub fn main_conflist(world: &HostWorld, name: &str, octet: u8) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [{
            "type": "bridge",
            "bridge": format!("bnbr{octet}"),
            "isGateway": true,
            "ipam": {
                "type": "host-local",
                "dataDir": world.dir.path().join(format!("ipam-{name}")).to_string_lossy(),
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                "ranges": [
                    [{"subnet": format!("10.{octet}.0.0/16")}],
                    [{"subnet": format!("fd{octet}::/64")}]
                ]
            }
        }]
    })
}

/// Turns DAD off in `ns` so the bridge plugin need not wait for IPv6.
pub fn no_dad(ns: &crate::topology::Netns) {
    for scope in ["default", "all"] {
        let _ = ns.write_sysctl(&format!("net/ipv6/conf/{scope}/accept_dad"), "0");
    }
}

/// One plugin directory with its throwaway world.
pub struct Side {
    /// "ours" or "reference".
    pub label: String,
    pub dir: PathBuf,
    pub world: HostWorld,
    pub pod: Pod,
    /// The main plugins' result for `pod`.
    pub prev: Value,
    /// The `"backend"` every portmap conf of this side names (None: none).
    pub portmap_backend: Option<String>,
}

impl Side {
    pub fn new(label: &str, dir: &Path, main_dir: &Path) -> Result<Side, StepError> {
        let world =
            HostWorld::new("bn").map_err(|e| StepError::topology("building the host netns", e))?;
        let pod = Pod::new("bnp").map_err(|e| StepError::topology("creating the pod netns", e))?;
        no_dad(&world.host);
        no_dad(&pod.netns);
        let runtime = Runtime::new(vec![main_dir.to_path_buf()])
            .with_cache_dir(world.cache_dir())
            .with_exec_netns(world.host.path());
        let bytes = serde_json::to_vec(&main_conflist(&world, "bench", 77))
            .map_err(|e| StepError::json("encoding the main conflist", e))?;
        let list = parse_conflist(&bytes, None)
            .map_err(|e| StepError::conflist("the main conflist", e))?;
        let rt = RuntimeConf::new(&pod.container_id, pod.netns.path(), &pod.ifname);
        let added = runtime
            .add_network_list(&list, &rt)
            .map_err(|e| StepError::chain("main plugins ADD (bridge + host-local)", e))?;
        // Room for the filler mappings' container IPs (portmap route lookups).
        world
            .host
            .ip(&[
                "link", "add", "fill0", "type", "veth", "peer", "name", "fill0p",
            ])
            .and_then(|_| {
                world
                    .host
                    .ip(&["addr", "add", "10.99.0.1/16", "dev", "fill0"])
            })
            .and_then(|_| world.host.ip(&["link", "set", "fill0", "up"]))
            .and_then(|_| world.host.ip(&["link", "set", "fill0p", "up"]))
            .map_err(|e| StepError::topology("fill link fill0", e))?;
        Ok(Side {
            label: label.into(),
            dir: dir.to_path_buf(),
            world,
            pod,
            prev: added.raw,
            portmap_backend: None,
        })
    }

    /// The pod's first address of the family (4 or 6) in the main result.
    pub fn pod_ip(&self, family: u8) -> Option<std::net::IpAddr> {
        self.prev["ips"].as_array()?.iter().find_map(|ip| {
            let a: std::net::IpAddr = ip["address"].as_str()?.split('/').next()?.parse().ok()?;
            ((family == 4) == a.is_ipv4()).then_some(a)
        })
    }

    /// What deleting the pod's veth would do after a bandwidth DEL: drop the
    /// qdiscs on the host side (the reference leaves them to the main plugin,
    /// so its next ADD would fail with "file exists"). Unmeasured.
    pub fn reset_host_qdiscs(&self) {
        let Some(ifaces) = self.prev["interfaces"].as_array() else {
            return;
        };
        let host_side = ifaces
            .iter()
            .filter(|i| i["sandbox"].as_str().is_none_or(str::is_empty))
            .filter_map(|i| i["name"].as_str());
        for veth in host_side {
            for parent in ["root", "ingress"] {
                let ns = &self.world.host.name;
                let _ =
                    crate::topology::run(&["tc", "-n", ns, "qdisc", "del", "dev", veth, parent]);
            }
        }
    }

    pub fn env(&self, command: &str, container: &str, ifname: &str) -> Vec<(String, String)> {
        vec![
            ("CNI_COMMAND".into(), command.into()),
            ("CNI_CONTAINERID".into(), container.into()),
            (
                "CNI_NETNS".into(),
                self.pod.netns.path().to_string_lossy().into_owned(),
            ),
            ("CNI_IFNAME".into(), ifname.into()),
            ("CNI_PATH".into(), self.dir.to_string_lossy().into_owned()),
        ]
    }

    /// Runs `plugin` of this side in its host netns and measures it.
    pub fn invoke(
        &self,
        plugin: &str,
        command: &str,
        container: &str,
        ifname: &str,
        stdin: &Value,
        probe: Probe,
    ) -> Result<Sample, StepError> {
        run_measured(
            &self.dir.join(plugin),
            Some(&self.world.host.path()),
            &self.env(command, container, ifname),
            stdin.to_string().as_bytes(),
            LIMIT,
            probe,
        )
        .map_err(|source| StepError::Invoke {
            plugin: plugin.into(),
            verb: command.into(),
            source,
        })
    }

    /// [`Side::invoke`], and an exit other than 0 is an error too.
    pub fn invoke_ok(
        &self,
        plugin: &str,
        command: &str,
        container: &str,
        ifname: &str,
        stdin: &Value,
    ) -> Result<Sample, StepError> {
        let s = self.invoke(plugin, command, container, ifname, stdin, Probe::Time)?;
        if s.exit_code == Some(0) {
            return Ok(s);
        }
        Err(StepError::Exit {
            plugin: plugin.into(),
            verb: command.into(),
            code: s.exit_code,
            output: s.output_line(),
        })
    }

    /// `conf` (a portmap stdin) with this side's `"backend"`, if any.
    pub fn with_portmap_backend(&self, mut conf: Value) -> Value {
        if let Some(b) = &self.portmap_backend {
            conf["backend"] = json!(b);
        }
        conf
    }

    /// The stdin of `plugin` (prevResult injected when given).
    pub fn plugin_conf(&self, plugin: &str, version: CniVersion, prev: Option<&Value>) -> Value {
        let mut conf = match plugin {
            "portmap" => self.with_portmap_backend(json!({
                "type": "portmap",
                "capabilities": {"portMappings": true},
                "runtimeConfig": {"portMappings": [
                    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                    {"hostPort": 8053, "containerPort": 53, "protocol": "udp"}
                ]},
            })),
            "bandwidth" => shaping_conf(10_000_000, 160_000, None),
            "tuning" => json!({
                "type": "tuning",
                "mtu": 1400,
                "sysctl": {"net.core.somaxconn": "512"},
                "dataDir": self.world.dir.path().join("tuning").to_string_lossy(),
            }),
            other => json!({"type": other}),
        };
        conf["cniVersion"] = json!(version.as_str());
        conf["name"] = json!("bench");
        if let Some(p) = prev {
            conf["prevResult"] = convert(p, version);
        }
        conf
    }
}

/// A bandwidth config shaping both directions to `rate` bit/s.
pub fn shaping_conf(rate: u64, burst: u64, latency_ms: Option<u32>) -> Value {
    let mut conf = json!({
        "type": "bandwidth",
        "ingressRate": rate, "ingressBurst": burst,
        "egressRate": rate, "egressBurst": burst,
    });
    if let Some(l) = latency_ms {
        conf["latencyMs"] = json!(l);
    }
    conf
}

/// `result` in the layout of `version` (unchanged when it cannot convert).
pub fn convert(result: &Value, version: CniVersion) -> Value {
    cni::CniResult::from_value(result, version)
        .ok()
        .and_then(|(r, _)| r.to_value(version).ok())
        .unwrap_or_else(|| result.clone())
}
