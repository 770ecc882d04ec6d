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

    fn ports(&self, family: Family) -> &[u16] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// Whether it names `port` and keeps the entries whose replies come
    /// from `from`.
    fn keeps(&self, family: Family, port: u16, from: Option<SocketAddr>) -> bool {
        self.ports(family).contains(&port) && from.is_some_and(|f| self.keep.contains(&f))
    }
}

/// Whether an entry to UDP `port` whose replies come from `from` must go
/// by `requests`, given in the order their verbs ended: as if each had run
/// when its verb ended. An entry NATed to a target an ADD keeps was made
/// after that ADD's rules existed, so the requests before the first one
/// that keeps it never saw it (a DEL of the pod that had the port before);
/// any request from there on that names the port and does not keep it
/// removes it (a DEL of the new pod).
fn must_go(requests: &[FlushRequest], family: Family, port: u16, from: Option<SocketAddr>) -> bool {
    let first = requests
        .iter()
        .position(|r| r.keeps(family, port, from))
        .unwrap_or(0);
    requests[first..]
        .iter()
        .any(|r| r.ports(family).contains(&port) && !r.keeps(family, port, from))
}

/// Deletes the UDP entries `requests` (in the order their verbs ended) say
/// must go ([`must_go`]): the same as running each when its verb ended,
/// with one dump whatever their number and families. The kernel walks its whole, global hash table
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
        let Some(port) = udp_dport(&orig) else {
            continue;
        };
        let from = reply.and_then(|r| tuple_source(&r));
        if must_go(requests, family, port, from) {
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
    let (v4, v6) = (request.v4.clone(), request.v6.clone());
    if let Err(e) = crate::flush_queue::flush(sock, request) {
        eprintln!(
            "portmap: deleting stale UDP conntrack entries for ports {v4:?} (IPv4) and {v6:?} (IPv6): conntrack netlink: {e}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(port: u16, keep: &[&str]) -> FlushRequest {
        FlushRequest {
            v4: vec![port],
            v6: Vec::new(),
            keep: keep.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn queued_requests_judge_an_entry_as_if_each_ran_when_its_verb_ended() {
        let new_pod: Option<SocketAddr> = Some("10.1.0.3:53".parse().unwrap());
        let old_pod: Option<SocketAddr> = Some("10.1.0.2:53".parse().unwrap());
        let del_old = req(30053, &[]);
        let add_new = req(30053, &["10.1.0.3:53"]);
        let v4 = Family::V4;
        // The old pod's DEL, then the new pod's ADD of the same port: the
        // DEL never saw the entries the new rules made; they stay.
        let restart = [del_old.clone(), add_new.clone()];
        assert!(!must_go(&restart, v4, 30053, new_pod));
        // Entries to the old pod and unNATed ones (no DNAT: replies from
        // the host itself) go.
        assert!(must_go(&restart, v4, 30053, old_pod));
        assert!(must_go(
            &restart,
            v4,
            30053,
            Some("198.18.0.1:30053".parse().unwrap())
        ));
        assert!(must_go(&restart, v4, 30053, None));
        // The new pod's ADD, then its DEL: its entries go too.
        assert!(must_go(
            &[add_new.clone(), del_old.clone()],
            v4,
            30053,
            new_pod
        ));
        // Another port, another family: not these requests' business.
        assert!(!must_go(&restart, v4, 30054, None));
        assert!(!must_go(&restart, Family::V6, 30053, None));
        assert!(!must_go(&[], v4, 30053, None));
    }
}
