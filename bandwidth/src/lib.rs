//! The `bandwidth` CNI plugin: TBF shaping of a pod's veth in both
//! directions, as upstream's `bandwidth`, with clean re-ADD, DEL/GC without
//! prevResult, and optional subnet bypass. This file only wires the verbs:
//! config → plan → shaping; it never touches the kernel itself.
//!
//! Configuration (all optional; rates in bit/s, bursts in bits):
//! - `ingressRate`/`ingressBurst`: traffic **to** the pod, a TBF on the host
//!   veth. `egressRate`/`egressBurst`: traffic **from** the pod, redirected
//!   from the host veth's ingress hook to an IFB (`bwp` + 12 hex of a hash of
//!   network/containerID/ifname) with a TBF on it. The IFB is appended to the
//!   result's `interfaces`; its alias records the owner for DEL/CHECK/GC.
//!   Only an IFB whose alias names the owner is ours: a link of anyone else
//!   holding that name (or altname) makes ADD fail before creating anything
//!   and is never changed by DEL or GC. A failed ADD deletes exactly what it
//!   created.
//! - `runtimeConfig.bandwidth` (capability `bandwidth`, from
//!   `kubernetes.io/ingress-bandwidth` / `egress-bandwidth`): the same four
//!   keys, used only when no top-level key is present.
//! - `latencyMs` (default 25, 1–10000): how long a packet may wait in the TBF;
//!   sets the queue limit (`rate × latency + burst`). Lower it against
//!   bufferbloat (upstream hard-codes 25 ms).
//! - `maxBurst` (bits): bursts above it are lowered to it. Runtimes cannot
//!   pass a burst from Kubernetes and send an enormous one instead
//!   (containerd 4294967295 bits ≈ 512 MiB, CRI-O just under 4 GB), which lets
//!   the first second run at line rate; e.g. `"maxBurst": 1000000` caps it.
//! - `shapedSubnets` / `unshapedSubnets` (mutually exclusive CIDR lists):
//!   only traffic to/from the listed subnets is shaped, or it bypasses
//!   shaping. The subnet is matched against the far end of the pod's
//!   traffic: the **destination** of what the pod sends (egress) and the
//!   **source** of what the pod receives (ingress). Implemented as an HTB
//!   root with a shaped class (carrying the same TBF) and a bypass class.

pub mod config;
mod error;
pub mod plan;
mod shaping;
mod tc;
mod tc_raw;

use cni::types::Interface;
use cni::{CmdArgs, CniError, CniVersion, GcRequest, Reply, Request, StatusRequest};

use crate::error::TcError;
use crate::plan::{Psched, ShapingPlan, TYPICAL_TICK_IN_USEC};
use crate::shaping::Host;

/// The plugin, for `cni::skel::run`.
pub struct Plugin;

/// The kernel's scheduler clock (the typical value if psched is unreadable).
/// One open, one read into a stack buffer (the file is one 36-byte line),
/// one close: `read_to_string` would stat it and read three times.
pub fn psched() -> Psched {
    use std::io::Read;
    let mut buf = [0u8; 128];
    let mut len = 0;
    if let Ok(mut f) = std::fs::File::open("/proc/net/psched") {
        while len < buf.len() {
            match f.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => {
                    len += n;
                    if buf[..len].ends_with(b"\n") {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    std::str::from_utf8(&buf[..len])
        .ok()
        .and_then(Psched::parse)
        .unwrap_or(Psched {
            tick_in_usec: TYPICAL_TICK_IN_USEC,
        })
}

/// The plan, or code 7 when the kernel would refuse one of its shapers.
fn build_plan(config: &config::Config, req: &Request) -> Result<ShapingPlan, CniError> {
    let psched = psched();
    let plan = plan::plan(config, &req.owner(), psched);
    match plan::unusable_burst(config, &plan, psched) {
        Some(msg) => Err(CniError::invalid_config(msg)),
        None => Ok(plan),
    }
}

fn netns(req: &Request) -> Result<&std::path::Path, CniError> {
    req.cmd
        .netns
        .as_deref()
        .ok_or_else(|| CniError::invalid_env("bandwidth: CNI_NETNS is required"))
}

fn joined(errors: Vec<TcError>) -> Result<Reply, CniError> {
    TcError::all(errors)?;
    Ok(Reply::Empty)
}

impl cni::Plugin for Plugin {
    fn about(&self) -> String {
        "bandwidth CNI plugin (TBF + IFB traffic shaping)".into()
    }

    fn supported_versions(&self, _cmd: &CmdArgs) -> Vec<CniVersion> {
        CniVersion::SINCE_0_3_0.to_vec()
    }

    fn add(&self, req: &Request) -> Result<Reply, CniError> {
        let config = config::parse(&req.stdin)?;
        let mut result = req.prev_result.clone().ok_or_else(|| {
            CniError::invalid_config(
                "bandwidth: must be called as a chained plugin (no prevResult)",
            )
        })?;
        if config.is_noop() {
            return Ok(result.into());
        }
        let plan = build_plan(&config, req)?;
        let netns = netns(req)?;
        let host = Host::open()?;
        let veth = host.find_host_veth(netns, &req.cmd.ifname)?;
        let listed: Vec<&str> = result
            .interfaces
            .iter()
            .filter(|i| !i.in_sandbox())
            .map(|i| i.name.as_str())
            .collect();
        if !listed.is_empty() && !listed.contains(&veth.name.as_str()) {
            return Err(CniError::internal(format!(
                "bandwidth: no veth peer of container interface found in host ns: \
                 {} (the peer of {}) is not among prevResult's host interfaces {listed:?}",
                veth.name, req.cmd.ifname
            )));
        }
        if let Some(ifb) = host.apply(&plan, &req.owner(), &veth)? {
            result.interfaces.retain(|i| i.name != ifb.name);
            result.interfaces.push(Interface {
                name: ifb.name,
                mac: ifb.mac,
                ..Interface::default()
            });
        }
        Ok(result.into())
    }

    fn check(&self, req: &Request) -> Result<Reply, CniError> {
        let config = config::parse(&req.stdin)?;
        if config.is_noop() {
            return Ok(Reply::Empty);
        }
        let plan = build_plan(&config, req)?;
        let host = Host::open()?;
        let veth = host.find_host_veth(netns(req)?, &req.cmd.ifname)?;
        host.verify(&plan, &req.owner(), &veth)?;
        Ok(Reply::Empty)
    }

    /// DEL needs no config values, prevResult or netns: everything is found
    /// from the owner (IFB name and alias). An invalid config does not block
    /// teardown.
    fn del(&self, req: &Request) -> Result<Reply, CniError> {
        let host = Host::open()?;
        let veth = req
            .cmd
            .netns
            .as_deref()
            .filter(|p| p.exists())
            .and_then(|p| host.find_host_veth(p, &req.cmd.ifname).ok());
        joined(host.remove(&req.owner(), veth.as_ref()))
    }

    fn gc(&self, req: &GcRequest) -> Result<Reply, CniError> {
        let host = Host::open()?;
        joined(host.gc(&req.conf.name, &req.valid_attachments))
    }

    fn status(&self, _req: &StatusRequest) -> Result<Reply, CniError> {
        shaping::prerequisites().map_err(|e| TcError::NotUsable(Box::new(e)))?;
        Ok(Reply::Empty)
    }
}
