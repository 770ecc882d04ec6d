//! The world of one versioned scenario ([`Net`]: host netns, temp dir, the
//! runtime on top of cni-runtime) and its pods ([`Attached`]), plus the
//! checks and capability arguments several scenarios share (replies on the
//! wire, nothing left after DEL, the full chain).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cni::CniVersion;
use cni_runtime::{parse_conflist, NetworkConfigList, Runtime, RuntimeConf};
use serde_json::{json, Map, Value};

use super::{CheckError, Checked, Ctx, MainPlugin};
use crate::topology::{HostWorld, Netns, Pod, Reach};

/// The world of one versioned scenario: host netns + temp dir + runtime.
pub(crate) struct Net<'c> {
    pub ctx: &'c Ctx,
    pub world: HostWorld,
    pub version: CniVersion,
    pub main: MainPlugin,
    pub name: String,
    pub runtime: Runtime,
}

/// How long a request waits for its answer. Generous, because a check that
/// expects an answer must not fail on a slow machine and one that expects
/// none costs this only for UDP or a dropped TCP SYN (a closed TCP port
/// refuses at once).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One pod attached (or to be attached) to a `Net`.
pub(crate) struct Attached {
    pub pod: Pod,
    pub list: NetworkConfigList,
    pub rt: RuntimeConf,
    pub result: Option<Value>,
}

impl Attached {
    pub fn ip(&self, family: u8) -> Option<IpAddr> {
        self.pod.address(family)
    }
}

pub(crate) fn sock(ip: &str, port: u16) -> SocketAddr {
    let ip: IpAddr = ip
        .parse()
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    SocketAddr::new(ip, port)
}

impl<'c> Net<'c> {
    pub fn new(ctx: &'c Ctx, tag: &str, version: CniVersion, main: MainPlugin) -> Checked<Net<'c>> {
        let world = HostWorld::new(tag).map_err(CheckError::world("building the host netns"))?;
        if main == MainPlugin::Bridge {
            world
                .add_bridge()
                .map_err(CheckError::world("creating the bridge with a fixed MAC"))?;
        }
        let mut dirs = vec![ctx.opts.plugins.clone(), ctx.opts.main_plugins.clone()];
        dirs.push(ctx.fixture_dir.clone());
        let runtime = Runtime::new(dirs)
            .with_cache_dir(world.cache_dir())
            .with_exec_netns(world.host.path())
            .with_timeout(Duration::from_secs(60));
        Ok(Net {
            ctx,
            world,
            version,
            main,
            name: format!("conf-{tag}"),
            runtime,
        })
    }

    pub fn host(&self) -> &Netns {
        &self.world.host
    }

    pub fn dir(&self, sub: &str) -> PathBuf {
        self.world
            .sub(sub)
            .unwrap_or_else(|_| self.world.dir.path().join(sub))
    }

    /// The main plugin object for pod number `index` (0-based).
    pub fn main_conf(&self, index: usize) -> Value {
        match self.main {
            MainPlugin::Bridge => json!({
                "type": "bridge",
                "bridge": crate::topology::BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.88.0.0/24"}], [{"subnet": "fd00:88::/64"}]],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                    "dataDir": self.dir("ipam").to_string_lossy(),
                }
            }),
            MainPlugin::TestVeth | MainPlugin::None => {
                let n = index + 1;
                json!({
                    "type": "cni-test-veth",
                    "ips": [
                        {"address": format!("10.77.{n}.2/24"), "hostAddress": format!("10.77.{n}.1/24")},
                        {"address": format!("fd00:77:{n}::2/64"), "hostAddress": format!("fd00:77:{n}::1/64")},
                    ]
                })
            }
        }
    }

    /// The host-side address pods use as their gateway (`family` 4 or 6).
    pub fn gateway(&self, index: usize, family: u8) -> String {
        match (self.main, family) {
            (MainPlugin::Bridge, 4) => "10.88.0.1".into(),
            (MainPlugin::Bridge, _) => "fd00:88::1".into(),
            (_, 4) => format!("10.77.{}.1", index + 1),
            (_, _) => format!("fd00:77:{}::1", index + 1),
        }
    }

    /// A conflist `[main, chain...]` for pod `index`, written to the world's
    /// conf dir and parsed by the runtime's loader.
    pub fn list(&self, index: usize, chain: &[Value]) -> Checked<NetworkConfigList> {
        let mut plugins = Vec::new();
        if self.main != MainPlugin::None {
            plugins.push(self.main_conf(index));
        }
        plugins.extend(chain.iter().cloned());
        self.list_of(index, plugins)
    }

    /// A conflist of exactly `plugins` (portmap's with the suite's forced
    /// backend, [`super::SuiteOptions::portmap_backend`], where they name
    /// none).
    pub fn list_of(&self, index: usize, mut plugins: Vec<Value>) -> Checked<NetworkConfigList> {
        if let Some(backend) = &self.ctx.opts.portmap_backend {
            for p in plugins.iter_mut().filter(|p| p["type"] == "portmap") {
                if let Some(conf) = p.as_object_mut() {
                    conf.entry("backend")
                        .or_insert_with(|| backend.as_str().into());
                }
            }
        }
        let body = json!({
            "cniVersion": self.version.as_str(),
            "name": self.name,
            "plugins": plugins,
        });
        let bytes = serde_json::to_vec_pretty(&body)
            .map_err(|e| CheckError::unexpected(format!("encoding conflist {}: {e}", self.name)))?;
        let path = self
            .dir("conf")
            .join(format!("{}-{index}.conflist", self.name));
        let _ = std::fs::write(&path, &bytes);
        parse_conflist(&bytes, Some(&path)).map_err(|e| CheckError::Conflist {
            path,
            source: Box::new(e),
        })
    }

    /// A new pod with a conflist and runtime arguments (not yet added).
    pub fn pod(
        &self,
        tag: &str,
        index: usize,
        chain: &[Value],
        caps: Map<String, Value>,
    ) -> Checked<Attached> {
        let pod = Pod::new(tag).map_err(CheckError::world("creating the pod netns"))?;
        let list = self.list(index, chain)?;
        let mut rt = RuntimeConf::new(&pod.container_id, pod.netns.path(), &pod.ifname);
        rt.args = vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAME".into(), tag.into()),
        ];
        rt.capability_args = caps;
        Ok(Attached {
            pod,
            list,
            rt,
            result: None,
        })
    }

    /// ADD of the pod's conflist; keeps the result.
    pub fn add(&self, a: &mut Attached) -> Checked<Value> {
        let r = self
            .runtime
            .add_network_list(&a.list, &a.rt)
            .map_err(CheckError::runtime("ADD"))?;
        a.result = Some(r.raw.clone());
        Ok(r.raw)
    }

    /// CHECK; `Ok(false)` when the version does not allow CHECK.
    pub fn check(&self, a: &Attached) -> Checked<bool> {
        if !self.version.allows_check() {
            return Ok(false);
        }
        self.runtime
            .check_network_list(&a.list, &a.rt)
            .map(|_| true)
            .map_err(CheckError::runtime("CHECK"))
    }

    /// DEL of the pod's conflist.
    pub fn del(&self, a: &Attached) -> Checked<()> {
        self.runtime
            .del_network_list(&a.list, &a.rt)
            .map_err(CheckError::runtime("DEL"))
    }

    /// Names of IFB links in the host netns.
    pub fn ifbs(&self) -> Vec<String> {
        self.host()
            .ip_json(&["link", "show", "type", "ifb"])
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }

    /// Names of IFB links in the host netns once teardown is over: a plugin
    /// may unregister an IFB after its DEL replied (the kernel's
    /// unregistration is slow), so this waits up to [`IFB_SETTLE`] for them
    /// to go and returns what is left then.
    pub fn ifbs_settled(&self) -> Vec<String> {
        let start = std::time::Instant::now();
        loop {
            let left = self.ifbs();
            if left.is_empty() || start.elapsed() > IFB_SETTLE {
                return left;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Files left in the runtime's result cache.
    pub fn cached(&self) -> Vec<String> {
        crate::topology::files_under(&self.world.cache_dir())
            .into_iter()
            .collect()
    }

    /// TCP/UDP request from `ns`, waiting up to [`REQUEST_TIMEOUT`].
    pub fn request(&self, from: &Netns, udp: bool, to: SocketAddr) -> Reach {
        self.ctx.tools.request(from, udp, to, REQUEST_TIMEOUT)
    }
}

/// Plugin output on one line (spec errors are printed indented).
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Asserts a request got exactly `want`.
pub(crate) fn expect_reply(got: Reach, want: &str) -> Checked<Option<String>> {
    match got {
        Reach::Reply(r) if r == want => Ok(None),
        other => Err(CheckError::unexpected(format!(
            "expected reply {want:?}, got {other}"
        ))),
    }
}

/// Asserts a request was NOT answered by the pod (refused, timed out, or
/// answered by someone else).
pub(crate) fn expect_no_reply_from(got: Reach, pod_reply: &str) -> Checked<Option<String>> {
    match got {
        Reach::Reply(r) if r.starts_with(pod_reply) => Err(CheckError::unexpected(format!(
            "still answered by the pod: {r:?}"
        ))),
        other => Ok(Some(other.to_string())),
    }
}

/// `{"portMappings": [...]}` capability arguments.
pub(crate) fn port_mappings(maps: &[(u16, u16, &str, Option<&str>)]) -> Map<String, Value> {
    let list: Vec<Value> = maps
        .iter()
        .map(|(host, container, proto, host_ip)| {
            let mut m = json!({"hostPort": host, "containerPort": container, "protocol": proto});
            if let Some(ip) = host_ip {
                m["hostIP"] = json!(ip);
            }
            m
        })
        .collect();
    let mut caps = Map::new();
    caps.insert("portMappings".into(), Value::Array(list));
    caps
}

/// After DEL: the host's own listener on `port` answers (no DNAT left),
/// from the host itself and from `also` (another pod), v4 and v6.
pub(crate) fn host_owns_port(
    net: &Net,
    port: u16,
    also: Option<&Netns>,
) -> Checked<Option<String>> {
    let host = net.host();
    let _server = net
        .ctx
        .tools
        .serve(host, &[port], &[], "host", 30)
        .map_err(CheckError::world(format!(
            "serving tcp/{port} in the host netns"
        )))?;
    let want = format!("host tcp/{port}");
    for ip in [crate::topology::NODE_V4, crate::topology::NODE_V6] {
        expect_reply(net.request(host, false, sock(ip, port)), &want)
            .map_err(|e| e.within(format!("from the host to {ip}")))?;
        if let Some(ns) = also {
            expect_reply(net.request(ns, false, sock(ip, port)), &want)
                .map_err(|e| e.within(format!("from another pod to {ip}")))?;
        }
    }
    Ok(None)
}

/// How long teardown may take after DEL replied (an IFB deleted in the
/// background).
pub const IFB_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Nothing of the attachment is left in the host netns or the state dirs.
pub(crate) fn nothing_left(net: &Net, tuning_dir: Option<&Path>) -> Checked<Option<String>> {
    let mut problems = Vec::new();
    let ifbs = net.ifbs_settled();
    if !ifbs.is_empty() {
        problems.push(format!("IFB links left: {ifbs:?}"));
    }
    let cached = net.cached();
    if !cached.is_empty() {
        problems.push(format!("cache files left: {cached:?}"));
    }
    if let Some(d) = tuning_dir {
        let left = crate::topology::files_under(d);
        if !left.is_empty() {
            problems.push(format!("tuning backups left: {left:?}"));
        }
    }
    if problems.is_empty() {
        Ok(None)
    } else {
        Err(CheckError::unexpected(problems.join("; ")))
    }
}

/// `{"bandwidth": {...}}` capability arguments (both directions).
pub(crate) fn bandwidth_caps(rate: u64, burst: u64) -> Map<String, Value> {
    let mut caps = Map::new();
    caps.insert(
        "bandwidth".into(),
        json!({"ingressRate": rate, "ingressBurst": burst, "egressRate": rate, "egressBurst": burst}),
    );
    caps
}

/// The full chain after the main plugin: tuning, portmap, bandwidth.
pub(crate) fn full_chain(net: &Net) -> Vec<Value> {
    vec![
        json!({
            "type": "tuning",
            "mtu": 1400,
            "sysctl": {"net.core.somaxconn": "512"},
            "dataDir": net.dir("tuning").to_string_lossy(),
        }),
        json!({"type": "portmap", "capabilities": {"portMappings": true}}),
        json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}),
    ]
}
