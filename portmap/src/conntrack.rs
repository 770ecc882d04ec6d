//! Stale UDP conntrack removal, whatever the backend: dumps the current
//! netns's conntrack table per family and deletes every UDP entry whose
//! original destination port is one of the attachment's hostPorts, so a new
//! pod (or a host process) receives traffic that a cached NAT binding would
//! otherwise blackhole. Speaks ctnetlink through cni's netfilter socket
//! ([`cni::netlink::netfilter`]; the caller's socket, so one socket per
//! invocation is closed in the background); knows nothing about nft.

use std::collections::BTreeSet;

use cni::netlink::netfilter::Nfnl;
use cni::netlink::{NetlinkError, ENOENT};
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ProtoTuple, Protocol, Tuple};
use netlink_packet_netfilter::NetfilterProtoFamily;

use crate::config;
use crate::plan::{Family, MapKey};

/// The original destination port of a UDP tuple (None: not UDP).
pub fn udp_dport(tuple: &[Tuple]) -> Option<u16> {
    let mut udp = false;
    let mut port = None;
    for t in tuple {
        if let Tuple::Proto(p) = t {
            for a in p {
                match a {
                    ProtoTuple::Protocol(Protocol::Udp) => udp = true,
                    ProtoTuple::DestinationPort(d) => port = Some(*d),
                    _ => {}
                }
            }
        }
    }
    port.filter(|_| udp)
}

/// Deletes every UDP entry of `family` whose original destination port is in
/// `ports`; returns how many went. Entries that vanish meanwhile are fine.
pub fn delete_udp_by_dport(
    sock: &Nfnl,
    family: Family,
    ports: &[u16],
) -> Result<usize, NetlinkError> {
    if ports.is_empty() {
        return Ok(0);
    }
    let family = match family {
        Family::V4 => NetfilterProtoFamily::IPv4,
        Family::V6 => NetfilterProtoFamily::IPv6,
    };
    let stale: Vec<Vec<ConntrackAttribute>> = sock
        .conntrack_dump(family)?
        .into_iter()
        .filter_map(|attrs| {
            attrs.into_iter().find_map(|a| match a {
                ConntrackAttribute::CtaTupleOrig(t) => Some(t),
                _ => None,
            })
        })
        .filter(|orig| udp_dport(orig).is_some_and(|p| ports.contains(&p)))
        .map(|orig| vec![ConntrackAttribute::CtaTupleOrig(orig)])
        .collect();
    if stale.is_empty() {
        return Ok(0);
    }
    let mut deleted = 0;
    for outcome in sock.conntrack_delete(family, stale)? {
        match outcome {
            Ok(()) => deleted += 1,
            Err(ENOENT) => {}
            Err(errno) => return Err(NetlinkError::Errno(errno)),
        }
    }
    Ok(deleted)
}

fn udp_ports(keys: &BTreeSet<MapKey>, family: Family) -> Vec<u16> {
    let mut ports: Vec<u16> = keys
        .iter()
        .filter(|k| k.family == family && k.protocol == config::Protocol::Udp)
        .map(|k| k.port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Whether any of these keys is UDP (has conntrack to flush).
pub fn has_udp(keys: &BTreeSet<MapKey>) -> bool {
    keys.iter().any(|k| k.protocol == config::Protocol::Udp)
}

/// Removes stale UDP conntrack entries for these keys; failures are logged,
/// as upstream does (a missing entry is not a failure).
pub fn flush_udp(sock: &Nfnl, keys: &BTreeSet<MapKey>) {
    for family in [Family::V4, Family::V6] {
        let ports = udp_ports(keys, family);
        if let Err(e) = delete_udp_by_dport(sock, family, &ports) {
            eprintln!(
                "portmap: deleting stale UDP conntrack entries for ports {ports:?}: conntrack netlink: {e}"
            );
        }
    }
}
