//! `cni-test-veth`: a minimal *test fixture* main plugin for the conformance
//! suite (spec 0.3.0–1.1.0; Debian's bridge/ptp stop at 1.0.0). ADD creates a
//! veth pair host↔pod with static addresses from its config and returns a
//! 1.1.0-shaped result (host and sandbox interfaces, mtu); DEL removes it; GC
//! removes its pairs that are not listed as valid. It shells out to iproute2
//! `ip` in the netns it runs in (the runtime's "host") and in CNI_NETNS. Not a
//! production plugin: no IPAM, no locking beyond the kernel's.

use std::path::{Path, PathBuf};
use std::process::Command;

use cni::types::{Cidr, Interface, IpConfig, Route};
use cni::{CniError, CniResult, CniVersion, GcRequest, Plugin, Reply, Request};
use serde::Deserialize;
use serde_json::Value;

fn main() {
    cni::skel::run(&TestVeth)
}

struct TestVeth;

/// One address pair: the pod side and the host side of the veth.
#[derive(Debug, Deserialize)]
struct AddressPair {
    address: String,
    #[serde(rename = "hostAddress")]
    host_address: String,
}

#[derive(Debug, Deserialize)]
struct RawConf {
    #[serde(default)]
    ips: Vec<AddressPair>,
    #[serde(default)]
    mtu: Option<u32>,
}

struct Conf {
    pairs: Vec<(Cidr, Cidr)>,
    mtu: Option<u32>,
}

fn parse_conf(stdin: &[u8]) -> Result<Conf, CniError> {
    let raw: RawConf = cni::gojson::from_slice(stdin)
        .map_err(|e| CniError::invalid_config(format!("cni-test-veth: config: {e}")))?;
    if raw.ips.is_empty() {
        return Err(CniError::invalid_config(
            "cni-test-veth: `ips` must list at least one {address, hostAddress}",
        ));
    }
    let mut pairs = Vec::new();
    for p in raw.ips {
        let pod: Cidr = p
            .address
            .parse()
            .map_err(|e| CniError::invalid_config(format!("cni-test-veth: ips.address: {e}")))?;
        let host: Cidr = p.host_address.parse().map_err(|e| {
            CniError::invalid_config(format!("cni-test-veth: ips.hostAddress: {e}"))
        })?;
        if pod.is_ipv4() != host.is_ipv4() {
            return Err(CniError::invalid_config(format!(
                "cni-test-veth: {pod} and {host} are of different families"
            )));
        }
        pairs.push((pod, host));
    }
    Ok(Conf {
        pairs,
        mtu: raw.mtu,
    })
}

/// FNV-1a, enough to make short unique link names.
fn short_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")[..10].to_string()
}

fn host_veth_name(net: &str, container: &str, ifname: &str) -> String {
    format!("tv{}", short_hash(&format!("{net}/{container}/{ifname}")))
}

fn alias(net: &str, container: &str, ifname: &str) -> String {
    format!("cni-test-veth/{net}/{container}/{ifname}")
}

fn ip_binary() -> PathBuf {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("ip"))
}

/// Runs `ip <args>` in the current thread's netns.
fn ip(args: &[&str]) -> Result<String, CniError> {
    let out = Command::new(ip_binary())
        .args(args)
        .output()
        .map_err(|e| CniError::internal(format!("cni-test-veth: running ip {args:?}: {e}")))?;
    if !out.status.success() {
        return Err(CniError::internal(format!(
            "cni-test-veth: ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip <args>` inside the netns at `netns`.
fn ip_in(netns: &Path, args: &[&str]) -> Result<String, CniError> {
    cni::netns::run_in(netns, || ip(args))?
}

/// `addr add ADDR dev DEV` (+ `nodad` for IPv6, so the address is usable at once).
fn addr_add<'a>(addr: &'a str, dev: &'a str, v4: bool) -> Vec<&'a str> {
    let mut args = vec!["addr", "add", addr, "dev", dev];
    if !v4 {
        args.push("nodad");
    }
    args
}

fn link_exists(name: &str) -> bool {
    ip(&["link", "show", "dev", name]).is_ok()
}

/// Deletes the link; one already gone (another DEL or GC of the same
/// attachment got there first) is success.
fn del_link(name: &str) -> Result<(), CniError> {
    match ip(&["link", "del", "dev", name]) {
        Err(_) if !link_exists(name) => Ok(()),
        other => other.map(drop),
    }
}

fn link_mac(netns: Option<&Path>, name: &str) -> Result<Option<String>, CniError> {
    let args = ["-j", "link", "show", "dev", name];
    let text = match netns {
        Some(ns) => ip_in(ns, &args)?,
        None => ip(&args)?,
    };
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| CniError::internal(format!("cni-test-veth: ip -j output: {e}")))?;
    Ok(v[0]["address"].as_str().map(str::to_string))
}

impl TestVeth {
    fn setup(
        &self,
        req: &Request,
        conf: &Conf,
        netns: &Path,
        host: &str,
    ) -> Result<CniResult, CniError> {
        let ifname = req.cmd.ifname.as_str();
        let tmp = format!("tvp{}", short_hash(&format!("{host}/tmp")));
        let netns_text = netns.to_string_lossy().to_string();
        ip(&[
            "link",
            "add",
            host,
            "type",
            "veth",
            "peer",
            "name",
            &tmp,
            "netns",
            &netns_text,
        ])?;
        let owner = alias(&req.conf.name, &req.cmd.container_id, ifname);
        ip(&["link", "set", "dev", host, "alias", &owner])?;
        ip_in(netns, &["link", "set", "dev", &tmp, "name", ifname])?;
        if let Some(mtu) = conf.mtu {
            let mtu = mtu.to_string();
            ip(&["link", "set", "dev", host, "mtu", &mtu])?;
            ip_in(netns, &["link", "set", "dev", ifname, "mtu", &mtu])?;
        }
        ip_in(netns, &["link", "set", "dev", ifname, "up"])?;
        ip(&["link", "set", "dev", host, "up"])?;
        let mut result = CniResult::default();
        result.interfaces.push(Interface {
            name: host.to_string(),
            mac: link_mac(None, host)?,
            ..Default::default()
        });
        result.interfaces.push(Interface {
            name: ifname.to_string(),
            mac: link_mac(Some(netns), ifname)?,
            mtu: conf.mtu,
            sandbox: Some(netns_text.clone()),
            ..Default::default()
        });
        for (pod, hostaddr) in &conf.pairs {
            let (pod_text, host_text) = (pod.to_string(), hostaddr.to_string());
            ip_in(netns, &addr_add(&pod_text, ifname, pod.is_ipv4()))?;
            ip(&addr_add(&host_text, host, pod.is_ipv4()))?;
            let gw = hostaddr.ip().to_string();
            let default = if pod.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
            ip_in(netns, &["route", "add", default, "via", &gw, "dev", ifname])?;
            result.ips.push(IpConfig {
                interface: Some(1),
                address: *pod,
                gateway: Some(hostaddr.ip()),
                extra: Default::default(),
            });
            if let Ok(dst) = default.parse::<Cidr>() {
                result.routes.push(Route::new(dst, Some(hostaddr.ip())));
            }
        }
        Ok(result)
    }
}

impl Plugin for TestVeth {
    fn about(&self) -> String {
        "cni-test-veth: conformance-suite test fixture (veth host<->pod, static IPs)".into()
    }

    fn supported_versions(&self, _cmd: &cni::CmdArgs) -> Vec<CniVersion> {
        CniVersion::SINCE_0_3_0.to_vec()
    }

    fn add(&self, req: &Request) -> Result<Reply, CniError> {
        let conf = parse_conf(&req.stdin)?;
        let netns = req
            .cmd
            .netns
            .clone()
            .ok_or_else(|| CniError::invalid_env("cni-test-veth: CNI_NETNS is empty"))?;
        let host = host_veth_name(&req.conf.name, &req.cmd.container_id, &req.cmd.ifname);
        if link_exists(&host) {
            return Err(CniError::internal(format!(
                "cni-test-veth: host veth {host} for {}/{} already exists",
                req.cmd.container_id, req.cmd.ifname
            )));
        }
        match self.setup(req, &conf, &netns, &host) {
            Ok(r) => Ok(Reply::Result(r)),
            Err(e) => {
                let _ = ip(&["link", "del", "dev", &host]);
                Err(e)
            }
        }
    }

    fn check(&self, req: &Request) -> Result<Reply, CniError> {
        let host = host_veth_name(&req.conf.name, &req.cmd.container_id, &req.cmd.ifname);
        if !link_exists(&host) {
            return Err(CniError::internal(format!(
                "cni-test-veth: host veth {host} is missing"
            )));
        }
        if let Some(ns) = &req.cmd.netns {
            ip_in(ns, &["link", "show", "dev", &req.cmd.ifname])?;
        }
        Ok(Reply::Empty)
    }

    fn del(&self, req: &Request) -> Result<Reply, CniError> {
        let host = host_veth_name(&req.conf.name, &req.cmd.container_id, &req.cmd.ifname);
        del_link(&host)?;
        Ok(Reply::Empty)
    }

    fn gc(&self, req: &GcRequest) -> Result<Reply, CniError> {
        let text = ip(&["-j", "link", "show", "type", "veth"])?;
        let links: Value = serde_json::from_str(&text)
            .map_err(|e| CniError::internal(format!("cni-test-veth: ip -j output: {e}")))?;
        let prefix = format!("cni-test-veth/{}/", req.conf.name);
        for link in links.as_array().into_iter().flatten() {
            let (Some(name), Some(a)) = (link["ifname"].as_str(), link["ifalias"].as_str()) else {
                continue;
            };
            let Some(rest) = a.strip_prefix(&prefix) else {
                continue;
            };
            let valid = req
                .valid_attachments
                .iter()
                .any(|v| rest == format!("{}/{}", v.container_id, v.ifname));
            if !valid {
                del_link(name)?;
            }
        }
        Ok(Reply::Empty)
    }
}
