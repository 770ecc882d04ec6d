//! What one attachment wants, whatever the backend: pure functions of the
//! configuration, the owner and the container IPs. A [`PodPlan`] lists the
//! pod's forwardings ([`Dnat`], keyed by the hostPort registry's
//! [`MapKey`]), its masquerade decision ([`Masq`]), its owner comment and,
//! only with conditions, the name of its own chain. How a backend renders
//! it into kernel objects is that backend's business (nftables:
//! [`crate::nftables`]). Never runs anything.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use cni::args::Owner;
use sha2::{Digest, Sha256};

use crate::config::{Config, ContainerIps, HostPortMapping, Protocol};

/// Prefix of per-pod chains.
pub const POD_CHAIN_PREFIX: &str = "pod-";
/// The longest comment nft accepts on an element is 128 bytes.
const MAX_COMMENT: usize = 127;

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
    /// nft's `meta nfproto` name of the family.
    pub fn nfproto(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
    /// nft's payload protocol of the family's header.
    pub fn payload(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
    /// `v4` / `v6`, the suffix of per-family object names.
    pub fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }
}

/// A key of the DNAT maps (the hostPort registry): which traffic a mapping
/// claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MapKey {
    /// The address family the mapping answers in.
    pub family: Family,
    /// The specific host address, if any (else every local address).
    pub host_ip: Option<IpAddr>,
    /// The transport protocol.
    pub protocol: Protocol,
    /// The host port.
    pub port: u16,
}

impl MapKey {
    /// Whether two mappings claim overlapping traffic, by Kubernetes'
    /// hostPort rule (what the scheduler forbids on one node): the same
    /// family, protocol and port, and host addresses that are equal or of
    /// which either is the wildcard (`None`, or `0.0.0.0` / `::`). Distinct
    /// specific addresses (`127.0.0.1` and the node IP) and tcp vs udp do
    /// not conflict. Symmetric.
    pub fn conflicts_with(&self, other: &MapKey) -> bool {
        let specific = |ip: Option<IpAddr>| ip.filter(|ip| !ip.is_unspecified());
        self.family == other.family
            && self.protocol == other.protocol
            && self.port == other.port
            && match (specific(self.host_ip), specific(other.host_ip)) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// How a refusal describes this key conflicting with `theirs`, mapped
    /// by `who`.
    pub fn conflict_text(&self, theirs: &MapKey, who: &str) -> String {
        if self == theirs {
            format!("{} is already mapped by {who}", self.describe())
        } else {
            format!(
                "{} overlaps {} mapped by {who}",
                self.describe(),
                theirs.describe()
            )
        }
    }

    /// `0.0.0.0:80/tcp`, `[fd00::1]:80/udp`: the key as errors name it.
    pub fn describe(&self) -> String {
        let host = match (self.host_ip, self.family) {
            (Some(IpAddr::V6(ip)), _) => format!("[{ip}]"),
            (Some(ip), _) => ip.to_string(),
            (None, Family::V4) => "0.0.0.0".into(),
            (None, Family::V6) => "[::]".into(),
        };
        format!("{host}:{}/{}", self.port, self.protocol.as_str())
    }
}

/// One forwarding, the unit CHECK compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dnat {
    /// The address family.
    pub family: Family,
    /// The transport protocol.
    pub protocol: Protocol,
    /// The host port traffic arrives on.
    pub host_port: u16,
    /// The specific host address, if any.
    pub host_ip: Option<IpAddr>,
    /// Where it goes: the container address…
    pub container_ip: IpAddr,
    /// …and port.
    pub container_port: u16,
}

impl Dnat {
    /// The registry key this forwarding claims.
    pub fn key(&self) -> MapKey {
        MapKey {
            family: self.family,
            host_ip: self.host_ip,
            protocol: self.protocol,
            port: self.host_port,
        }
    }
}

impl std::fmt::Display for Dnat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            Some(ip) => write!(f, "{ip}")?,
            None if self.family == Family::V4 => f.write_str("0.0.0.0")?,
            None => f.write_str("[::]")?,
        }
        write!(f, ":{}/{} → ", self.host_port, self.protocol.as_str())?;
        match self.container_ip {
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.container_port),
            ip => write!(f, "{ip}:{}", self.container_port),
        }
    }
}

/// Masquerade decision of one attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Masq {
    /// No masquerade (`snat: false`).
    Off,
    /// Hairpin (the pod itself) and, for IPv4, 127.0.0.0/8.
    HairpinAndLocalhost,
    /// Any source (`masqAll`).
    All,
}

/// Everything one attachment installs.
#[derive(Debug, Clone, PartialEq)]
pub struct PodPlan {
    /// Who installs it (network, container, ifname).
    pub owner: Owner,
    /// The owner tag as carried by every kernel object ([`comment`]).
    pub comment: String,
    /// The pod's own chain, only when it has conditions for a family it maps.
    pub chain: Option<String>,
    /// Every forwarding, in configuration order (repeats included).
    pub dnats: Vec<Dnat>,
    /// The masquerade decision.
    pub masq: Masq,
    /// The configuration it was planned from (conditions live there).
    pub config: Config,
}

/// `pod-` + 16 hex digits of SHA-256 over the owner tag.
pub fn chain_name(owner: &Owner) -> String {
    format!("{POD_CHAIN_PREFIX}{}", owner_hash(owner))
}

/// 16 hex digits of SHA-256 over the owner tag (chain and index names).
pub fn owner_hash(owner: &Owner) -> String {
    let digest = Sha256::digest(owner.tag().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The owner tag as an nft comment: the tag itself when it fits in 127
/// bytes, else its head plus a hash (GC then cannot attribute it and leaves
/// it alone; DEL and CHECK match the whole comment).
pub fn comment(owner: &Owner) -> String {
    let tag = owner.tag();
    if tag.len() <= MAX_COMMENT {
        return tag;
    }
    let chain = chain_name(owner);
    let mut head: String = tag.chars().take(MAX_COMMENT - chain.len() - 1).collect();
    while head.len() > MAX_COMMENT - chain.len() - 1 {
        head.pop();
    }
    format!("{head}~{chain}")
}

/// Plans one attachment: the mappings that apply to each container address.
pub fn pod_plan(config: &Config, owner: &Owner, ips: ContainerIps) -> PodPlan {
    let mut dnats = Vec::new();
    for (family, ip) in [(Family::V4, ips.v4), (Family::V6, ips.v6)] {
        let Some(container_ip) = ip else { continue };
        for m in &config.mappings {
            if !m.applies_to(family == Family::V4) {
                continue;
            }
            dnats.push(dnat(family, m, container_ip));
        }
    }
    let masq = match (config.snat, config.masq_all) {
        (false, _) => Masq::Off,
        (true, false) => Masq::HairpinAndLocalhost,
        (true, true) => Masq::All,
    };
    let conditional = dnats
        .iter()
        .any(|d| !conditions_of(config, d.family).is_empty());
    PodPlan {
        owner: owner.clone(),
        comment: comment(owner),
        chain: conditional.then(|| chain_name(owner)),
        dnats,
        masq,
        config: config.clone(),
    }
}

/// The conditions of `config` for one family.
pub fn conditions_of(config: &Config, family: Family) -> &[crate::conditions::Condition] {
    match family {
        Family::V4 => &config.conditions_v4,
        Family::V6 => &config.conditions_v6,
    }
}

fn dnat(family: Family, m: &HostPortMapping, container_ip: IpAddr) -> Dnat {
    Dnat {
        family,
        protocol: m.protocol,
        host_port: m.host_port,
        host_ip: m.specific_host_ip(),
        container_ip,
        container_port: m.container_port,
    }
}

impl PodPlan {
    /// The DNAT map keys, deduplicated (a repeated key maps once: the
    /// first mapping wins).
    pub fn keys(&self) -> BTreeSet<MapKey> {
        self.dnats.iter().map(Dnat::key).collect()
    }

    /// Where this attachment's UDP forwardings send traffic (container
    /// address and port): conntrack entries already NATed there are its own.
    pub fn udp_targets(&self) -> BTreeSet<SocketAddr> {
        self.effective_dnats()
            .iter()
            .filter(|d| d.protocol == Protocol::Udp)
            .map(|d| SocketAddr::new(d.container_ip, d.container_port))
            .collect()
    }

    /// True when nothing is mapped (no mapping applies to any address).
    pub fn is_empty(&self) -> bool {
        self.dnats.is_empty()
    }

    /// The forwardings in effect: the first mapping of each key.
    pub fn effective_dnats(&self) -> Vec<Dnat> {
        let mut seen = BTreeSet::new();
        self.dnats
            .iter()
            .filter(|d| seen.insert(d.key()))
            .copied()
            .collect()
    }

    /// The first container IPv4 address, if the plan maps any IPv4
    /// (the one `route_localnet` is about).
    pub fn container_ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.dnats.iter().find_map(|d| match d.container_ip {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(host_ip: &str, protocol: Protocol, port: u16) -> MapKey {
        let host_ip: Option<IpAddr> = (!host_ip.is_empty()).then(|| host_ip.parse().unwrap());
        let family = match host_ip {
            Some(ip) => Family::of(&ip),
            None => Family::V4,
        };
        MapKey {
            family,
            host_ip,
            protocol,
            port,
        }
    }

    fn v6(mut k: MapKey) -> MapKey {
        k.family = Family::V6;
        k
    }

    #[test]
    fn conflicts_follow_the_kubernetes_hostport_rule() {
        use Protocol::{Tcp, Udp};
        let node = "198.18.0.1";
        let table = [
            // (a, b, conflict)
            (key("", Tcp, 80), key("", Tcp, 80), true),
            (key("", Tcp, 80), key(node, Tcp, 80), true),
            (key(node, Tcp, 80), key("", Tcp, 80), true),
            (key("0.0.0.0", Tcp, 80), key(node, Tcp, 80), true),
            (key(node, Tcp, 80), key(node, Tcp, 80), true),
            (key("127.0.0.1", Tcp, 80), key(node, Tcp, 80), false),
            (key("127.0.0.1", Tcp, 80), key("", Tcp, 80), true),
            (key("", Tcp, 80), key("", Udp, 80), false),
            (key(node, Tcp, 80), key(node, Udp, 80), false),
            (key("", Tcp, 80), key("", Tcp, 81), false),
            (key("::", Tcp, 80), key("fd00::1", Tcp, 80), true),
            (v6(key("", Tcp, 80)), key("fd00::1", Tcp, 80), true),
            (key("fd00::1", Tcp, 80), key("fd00::2", Tcp, 80), false),
            // The wildcard covers its own family only.
            (key("", Tcp, 80), key("fd00::1", Tcp, 80), false),
            (key("::", Tcp, 80), key(node, Tcp, 80), false),
            (v6(key("", Tcp, 80)), key("", Tcp, 80), false),
        ];
        for (a, b, want) in table {
            assert_eq!(a.conflicts_with(&b), want, "{a:?} vs {b:?}");
            assert_eq!(b.conflicts_with(&a), want, "{b:?} vs {a:?} (symmetry)");
        }
    }
}
