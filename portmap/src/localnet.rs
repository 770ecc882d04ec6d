//! Local addresses, whatever the backend: a `hostIP` must be one
//! ([`refuse_non_local_host_ips`]), and `route_localnet` for IPv4 localhost
//! hostPorts:
//! finds the host interface the kernel routes a container address through
//! (one RTM_GETROUTE lookup over [`cni::netlink::route`], its name by
//! `if_indextoname`)
//! and sets `net.ipv4.conf.<if>.route_localnet=1` on it (only when not set
//! yet), so 127.0.0.1-sourced DNAT'ed packets may leave through it.
//!
//! `[::1]:hostPort` does not work and cannot: IPv6 has no `route_localnet`,
//! and the kernel drops packets with source `::1` that leave the host
//! through a non-loopback device before any NAT can fix them.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use cni::rtnl::Rtnl;
use cni::sysctl::{Sysctl, SysctlKey};
use cni::CniError;

use crate::plan::{Masq, PodPlan};

/// Refuses the plan when one of its `hostIP`s is not a local address of
/// the host netns (issue #15 §5): such a DNAT could never match (the entry
/// chains take `fib daddr type local` only), so the pod would silently get
/// no port. One route lookup per distinct hostIP, before any side effect.
pub fn refuse_non_local_host_ips(plan: &PodPlan) -> Result<(), CniError> {
    let host_ips: BTreeSet<IpAddr> = plan.dnats.iter().filter_map(|d| d.host_ip).collect();
    if host_ips.is_empty() {
        return Ok(());
    }
    let ctx = |m: String| CniError::internal(format!("portmap: checking hostIPs: {m}"));
    let rtnl = Rtnl::open().map_err(|e| ctx(format!("opening a netlink socket: {e}")))?;
    for ip in host_ips {
        if !rtnl
            .is_local(ip)
            .map_err(|e| ctx(format!("route lookup of {ip}: {e}")))?
        {
            let dnat = plan.dnats.iter().find(|d| d.host_ip == Some(ip));
            return Err(CniError::invalid_config(format!(
                "portmap: hostIP {ip} is not a local address of this host{}",
                dnat.map(|d| format!(" (mapping {d})")).unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// `route_localnet=1` where `plan` needs it: when localhost is masqueraded,
/// on the host interface that routes to the pod's IPv4 address. Before the
/// netns lock, not under it: it used to look the link up by RTM_GETLINK,
/// which waits for the RTNL lock the main plugins' veth and bridge changes
/// hold on a busy node (17–48 ms on average, 50 pods in parallel here), and
/// every ADD waiting for the netns lock waited with it. The setting is the
/// interface's, as upstream's is: it outlives the pod, and an ADD that
/// fails afterwards leaves it set.
pub fn route_localnet_for(plan: &PodPlan) -> Result<(), CniError> {
    if plan.is_empty() || plan.masq == Masq::Off {
        return Ok(());
    }
    match plan.container_ipv4() {
        Some(ip) => enable_route_localnet(ip),
        None => Ok(()),
    }
}

/// `route_localnet=1` on the host interface that routes to `ip`.
fn enable_route_localnet(ip: Ipv4Addr) -> Result<(), CniError> {
    let ctx =
        |m: String| CniError::internal(format!("portmap: enabling route_localnet for {ip}: {m}"));
    let rtnl = Rtnl::open().map_err(|e| ctx(format!("opening a netlink socket: {e}")))?;
    let oif = rtnl
        .route_oif(IpAddr::V4(ip))
        .map_err(|e| ctx(format!("route lookup: {e}")))?
        .ok_or_else(|| ctx("no route to the container".into()))?;
    // The name by SIOCGIFNAME, which the kernel answers under RCU, not by
    // RTM_GETLINK, which waits for the RTNL lock: with 50 pods ADDed in
    // parallel here, 30 of their portmap ADDs waited for it, 47 ms on
    // average (the route lookup does not take it).
    let name = nix::net::if_::if_indextoname(oif)
        .map_err(|e| ctx(format!("name of interface {oif}: {e}")))?
        .into_string()
        .map_err(|_| ctx(format!("interface {oif} has a name that is not UTF-8")))?;
    let key = SysctlKey::parse("net.ipv4.conf.IFNAME.route_localnet", &name)
        .map_err(|e| ctx(e.to_string()))?;
    let sysctl = Sysctl::default();
    if sysctl.read(&key).map(|v| v == "1").unwrap_or(false) {
        return Ok(());
    }
    sysctl
        .write(&key, "1")
        .map_err(|e| ctx(format!("writing {key} on {name}: {e}")))
}
