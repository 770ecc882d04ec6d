//! Stale UDP conntrack removal, whatever the backend: dumps the current
//! netns's conntrack table (once, for every family the keys need) and
//! deletes every UDP entry whose original destination port is one of the
//! attachment's hostPorts, so a new pod (or a host process) receives
//! traffic that a cached NAT binding would otherwise blackhole. After ADD,
//! entries already NATed to the new attachment itself stay: the flush runs
//! after the reply, when the pod's first datagrams may have gone through.
//! Speaks ctnetlink through cni's netfilter socket
//! ([`cni::netlink::netfilter`]; the caller's socket, so one socket per
//! invocation is closed in the background); knows nothing about nft.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use cni::netlink::netfilter::Nfnl;
use cni::netlink::{NetlinkError, ENOENT};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, IPTuple, ProtoTuple, Protocol, Tuple,
};
use netlink_packet_netfilter::NetfilterProtoFamily;
use serde::{Deserialize, Serialize};

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

/// The family of a tuple, from its addresses (None: it has none).
fn tuple_family(tuple: &[Tuple]) -> Option<Family> {
    tuple.iter().find_map(|t| match t {
        Tuple::Ip(ips) => ips.iter().find_map(|a| match a {
            IPTuple::SourceAddress(ip) | IPTuple::DestinationAddress(ip) => {
                Some(if ip.is_ipv6() { Family::V6 } else { Family::V4 })
            }
            _ => None,
        }),
        _ => None,
    })
}

/// The source address and port of a tuple: for a reply tuple, where the
/// connection's replies come from (the DNAT target once NATed).
fn tuple_source(tuple: &[Tuple]) -> Option<SocketAddr> {
    let mut ip = None;
    let mut port = None;
    for t in tuple {
        match t {
            Tuple::Ip(ips) => {
                ip = ips.iter().find_map(|a| match a {
                    IPTuple::SourceAddress(ip) => Some(*ip),
                    _ => None,
                });
            }
            Tuple::Proto(p) => {
                port = p.iter().find_map(|a| match a {
                    ProtoTuple::SourcePort(p) => Some(*p),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    Some(SocketAddr::new(ip?, port?))
}

/// One verb's flush: the UDP entries whose original destination port is
/// in its family's list go, but for those whose replies come from one of
/// `keep`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushRequest {
    /// IPv4 hostPorts.
    pub v4: Vec<u16>,
    /// IPv6 hostPorts.
    pub v6: Vec<u16>,
    /// Where the replies of entries that stay come from (after ADD: the
    /// attachment's own DNAT targets).
    pub keep: BTreeSet<SocketAddr>,
}

impl FlushRequest {
    /// The request for these keys (their UDP ones) and `keep`.
    pub fn new(keys: &BTreeSet<MapKey>, keep: &BTreeSet<SocketAddr>) -> FlushRequest {
        FlushRequest {
            v4: udp_ports(keys, Family::V4),
            v6: udp_ports(keys, Family::V6),
            keep: keep.clone(),
        }
    }

    /// Whether the entry with these tuples must go.
    fn deletes(&self, family: Family, orig: &[Tuple], reply_from: Option<SocketAddr>) -> bool {
        let ports = match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        };
        udp_dport(orig).is_some_and(|p| ports.contains(&p))
            && !reply_from.is_some_and(|from| self.keep.contains(&from))
    }
}

/// Deletes every UDP entry one of `requests` says must go ([`FlushRequest`]):
/// the same as running them one after the other, with one dump whatever
/// their number and families. The kernel walks its whole, global hash table
/// for each dump (about 20 ms of CPU with 262144 buckets here, whatever the
/// family asked for), so a dual-stack pod asks for every family at once
/// (`AF_UNSPEC`) instead of walking it twice, and the flushes of verbs that
/// end together share one dump (`flush_queue`).
pub fn delete_udp(sock: &Nfnl, requests: &[FlushRequest]) -> Result<usize, NetlinkError> {
    let v4 = requests.iter().any(|r| !r.v4.is_empty());
    let v6 = requests.iter().any(|r| !r.v6.is_empty());
    let dump = match (v4, v6) {
        (false, false) => return Ok(0),
        (true, false) => NetfilterProtoFamily::IPv4,
        (false, true) => NetfilterProtoFamily::IPv6,
        (true, true) => NetfilterProtoFamily::Unspec,
    };
    let (mut stale_v4, mut stale_v6) = (Vec::new(), Vec::new());
    for attrs in sock.conntrack_dump(dump)? {
        let (mut orig, mut reply) = (None, None);
        for a in attrs {
            match a {
                ConntrackAttribute::CtaTupleOrig(t) => orig = Some(t),
                ConntrackAttribute::CtaTupleReply(t) => reply = Some(t),
                _ => {}
            }
        }
        let Some(orig) = orig else {
            continue;
        };
        let Some(family) = tuple_family(&orig) else {
            continue;
        };
        let from = reply.and_then(|r| tuple_source(&r));
        if requests.iter().any(|r| r.deletes(family, &orig, from)) {
            let stale = match family {
                Family::V4 => &mut stale_v4,
                Family::V6 => &mut stale_v6,
            };
            stale.push(vec![ConntrackAttribute::CtaTupleOrig(orig)]);
        }
    }
    let mut deleted = 0;
    for (family, stale) in [
        (NetfilterProtoFamily::IPv4, stale_v4),
        (NetfilterProtoFamily::IPv6, stale_v6),
    ] {
        if stale.is_empty() {
            continue;
        }
        for outcome in sock.conntrack_delete(family, stale)? {
            match outcome {
                Ok(()) => deleted += 1,
                Err(ENOENT) => {}
                Err(errno) => return Err(NetlinkError::Errno(errno)),
            }
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

/// Removes stale UDP conntrack entries for these keys, through the netns's
/// flush queue (`flush_queue`: verbs ending together share one dump);
/// failures are logged, as upstream does (a missing entry is not a
/// failure). An entry already NATed to one of `keep` stays: after ADD,
/// `keep` holds the attachment's own targets, whose entries the new rules
/// made (the flush runs after the reply, when the pod's first datagrams may
/// already have been forwarded); after DEL and GC it is empty.
pub fn flush_udp(sock: &Nfnl, keys: &BTreeSet<MapKey>, keep: &BTreeSet<SocketAddr>) {
    let request = FlushRequest::new(keys, keep);
    if let Err(e) = crate::flush_queue::flush(sock, request) {
        eprintln!("portmap: deleting stale UDP conntrack entries: {e}");
    }
}
