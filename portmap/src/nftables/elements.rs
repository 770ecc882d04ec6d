//! The nftables names and elements of a plan: our table, its maps and sets,
//! and the set elements ([`SetElement`]) one attachment owns — the unit the
//! hot path adds and deletes over nfnetlink, the index file records and
//! listings are read back into. Pure.

use std::collections::BTreeSet;
use std::net::IpAddr;

use nftables::types::NfFamily;
use serde::{Deserialize, Serialize};

use crate::config::Protocol;
use crate::plan::{Family, MapKey, Masq, PodPlan};

/// Our table (family `inet`).
pub const TABLE: &str = "cni_portmap";
/// The family of our table.
pub const FAMILY: NfFamily = NfFamily::INet;

impl MapKey {
    /// The DNAT map this key lives in.
    pub fn map_name(&self) -> String {
        map_name(self.family, self.host_ip.is_some())
    }
}

impl std::fmt::Display for MapKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ", self.map_name())?;
        if let Some(ip) = self.host_ip {
            write!(f, "{ip} . ")?;
        }
        write!(f, "{} . {}", self.protocol.as_str(), self.port)
    }
}

/// The four DNAT maps.
pub fn map_name(family: Family, host_ip: bool) -> String {
    let kind = if host_ip { "hostip" } else { "ports" };
    format!("{kind}_{}", family.suffix())
}

/// Every DNAT map: (family, keyed by host address).
pub const MAPS: [(Family, bool); 4] = [
    (Family::V4, true),
    (Family::V4, false),
    (Family::V6, true),
    (Family::V6, false),
];

/// One component of an element's key or value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    /// An IPv4 or IPv6 address.
    Addr(IpAddr),
    /// A transport protocol.
    Proto(Protocol),
    /// A port.
    Port(u16),
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::Addr(ip) => write!(f, "{ip}"),
            Field::Proto(p) => f.write_str(p.as_str()),
            Field::Port(p) => write!(f, "{p}"),
        }
    }
}

/// What an element maps its key to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementData {
    /// A set element.
    None,
    /// A data map element (`address . port`).
    Fields(Vec<Field>),
    /// A verdict map element: `goto` this chain.
    Goto(String),
}

/// One element of one of our sets or maps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SetElement {
    /// The set or map.
    pub set: String,
    /// The key, one field or a concatenation.
    pub key: Vec<Field>,
    /// What a map element maps to.
    pub data: ElementData,
    /// Added with `create` semantics: an existing key (someone else's
    /// hostPort) fails the batch.
    pub exclusive: bool,
}

/// `set key` or `set key : value`, as CHECK and conflicts print it.
impl std::fmt::Display for SetElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key: Vec<String> = self.key.iter().map(Field::to_string).collect();
        write!(f, "{} {}", self.set, key.join(" . "))?;
        match &self.data {
            ElementData::None => Ok(()),
            ElementData::Fields(v) => {
                let v: Vec<String> = v.iter().map(Field::to_string).collect();
                write!(f, " : {}", v.join(" . "))
            }
            ElementData::Goto(c) => write!(f, " : goto {c}"),
        }
    }
}

/// The DNAT map element of a mapping key, as the registry knows it.
impl MapKey {
    /// The key fields of this registry key in its DNAT map.
    pub fn fields(&self) -> Vec<Field> {
        let mut out = Vec::with_capacity(3);
        if let Some(ip) = self.host_ip {
            out.push(Field::Addr(ip));
        }
        out.push(Field::Proto(self.protocol));
        out.push(Field::Port(self.port));
        out
    }

    /// Reads a DNAT map element back into a key (None for other sets).
    pub fn from_element(e: &SetElement) -> Option<MapKey> {
        let (family, host_ip) = MAPS
            .iter()
            .copied()
            .find(|(f, h)| map_name(*f, *h) == e.set)?;
        let (ip, rest) = if host_ip {
            match e.key.first()? {
                Field::Addr(ip) => (Some(*ip), &e.key[1..]),
                _ => return None,
            }
        } else {
            (None, &e.key[..])
        };
        match rest {
            [Field::Proto(protocol), Field::Port(port)] => Some(MapKey {
                family,
                host_ip: ip,
                protocol: *protocol,
                port: *port,
            }),
            _ => None,
        }
    }
}
/// The masquerade sets: (name, family, key is `saddr . daddr`, localhost).
pub const MASQ_SETS: [(&str, Family); 5] = [
    ("masq_hairpin_v4", Family::V4),
    ("masq_local_v4", Family::V4),
    ("masq_all_v4", Family::V4),
    ("masq_hairpin_v6", Family::V6),
    ("masq_all_v6", Family::V6),
];

/// The map of container ports next to a DNAT (address) map. (nft 1.0.6
/// crashes parsing JSON `dnat ip to … map` with concatenated
/// `address . port` values, so address and port live in two maps.)
pub fn port_map_name(family: Family, host_ip: bool) -> String {
    format!("{}_port", map_name(family, host_ip))
}

/// The verdict map for pods with conditions next to a DNAT map.
pub fn cond_map_name(family: Family, host_ip: bool) -> String {
    format!("cond_{}", map_name(family, host_ip))
}

/// Every element the attachment of `plan` owns, in a stable order.
pub fn of(plan: &PodPlan) -> Vec<SetElement> {
    let mut out = Vec::new();
    for d in plan.effective_dnats() {
        let key = d.key();
        out.push(SetElement {
            set: key.map_name(),
            key: key.fields(),
            data: ElementData::Fields(vec![Field::Addr(d.container_ip)]),
            exclusive: true,
        });
        out.push(SetElement {
            set: port_map_name(key.family, key.host_ip.is_some()),
            key: key.fields(),
            data: ElementData::Fields(vec![Field::Port(d.container_port)]),
            exclusive: true,
        });
        if let Some(chain) = &plan.chain {
            out.push(SetElement {
                set: cond_map_name(key.family, key.host_ip.is_some()),
                key: key.fields(),
                data: ElementData::Goto(chain.clone()),
                exclusive: false,
            });
        }
    }
    let mut pods: BTreeSet<(Family, IpAddr)> = BTreeSet::new();
    for d in &plan.dnats {
        pods.insert((d.family, d.container_ip));
    }
    for (family, ip) in pods {
        let sets: &[(&str, bool)] = match (plan.masq, family) {
            (Masq::Off, _) => &[],
            (Masq::HairpinAndLocalhost, Family::V4) => {
                &[("masq_hairpin_v4", true), ("masq_local_v4", false)]
            }
            (Masq::HairpinAndLocalhost, Family::V6) => &[("masq_hairpin_v6", true)],
            (Masq::All, Family::V4) => &[("masq_all_v4", false)],
            (Masq::All, Family::V6) => &[("masq_all_v6", false)],
        };
        for (set, pair) in sets {
            let mut key = vec![Field::Addr(ip)];
            if *pair {
                key.push(Field::Addr(ip));
            }
            out.push(SetElement {
                set: (*set).to_string(),
                key,
                data: ElementData::None,
                exclusive: false,
            });
        }
    }
    out
}
