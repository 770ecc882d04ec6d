//! Reading back what is installed: parses `nft -j list table` output into
//! the few facts DEL, CHECK and GC need — the elements of our maps and sets
//! with their owner comments, and pod-chain rules reduced to their DNAT
//! meaning. Tolerant on purpose (P9): anything it does not recognise is
//! ignored, never an error. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::Value;

use super::elements::{
    cond_map_name, map_name, port_map_name, ElementData, Field, SetElement, MAPS, MASQ_SETS, TABLE,
};
use crate::config::Protocol;
use crate::plan::{Dnat, Family, POD_CHAIN_PREFIX};

/// One rule of a pod chain, reduced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRule {
    /// The pod chain it is in.
    pub chain: String,
    /// Its owner comment.
    pub comment: Option<String>,
    /// The forwarding this rule performs, if it is a DNAT rule.
    pub dnat: Option<Dnat>,
}

/// One element of our sets and maps, with its owner comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedElement {
    /// The element, read back.
    pub element: SetElement,
    /// Its owner comment.
    pub comment: Option<String>,
}

/// Everything a list returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Every chain of our table.
    pub chains: BTreeSet<String>,
    /// The rules of pod chains.
    pub rules: Vec<ListedRule>,
    /// The elements of our sets and maps.
    pub elements: Vec<ListedElement>,
}

#[derive(Clone, Copy)]
enum Kind {
    Addr,
    Proto,
    Port,
}

/// Key layout and data of each of our sets and maps.
fn schema(name: &str) -> Option<(Vec<Kind>, Option<Vec<Kind>>, bool)> {
    for (family, host_ip) in MAPS {
        let mut key = Vec::new();
        if host_ip {
            key.push(Kind::Addr);
        }
        key.extend([Kind::Proto, Kind::Port]);
        if name == map_name(family, host_ip) {
            return Some((key, Some(vec![Kind::Addr]), true));
        }
        if name == port_map_name(family, host_ip) {
            return Some((key, Some(vec![Kind::Port]), true));
        }
        if name == cond_map_name(family, host_ip) {
            return Some((key, None, true));
        }
    }
    for (set, _) in MASQ_SETS {
        if name == set {
            let key = if set.starts_with("masq_hairpin") {
                vec![Kind::Addr, Kind::Addr]
            } else {
                vec![Kind::Addr]
            };
            return Some((key, None, false));
        }
    }
    None
}

fn field(kind: Kind, v: &Value) -> Option<Field> {
    match kind {
        Kind::Addr => v.as_str()?.parse::<IpAddr>().ok().map(Field::Addr),
        Kind::Proto => protocol_of(v).map(Field::Proto),
        Kind::Port => port_of(v).map(Field::Port),
    }
}

fn fields(kinds: &[Kind], v: &Value) -> Option<Vec<Field>> {
    let parts: Vec<&Value> = match v.get("concat").and_then(Value::as_array) {
        Some(a) => a.iter().collect(),
        None => vec![v],
    };
    if parts.len() != kinds.len() {
        return None;
    }
    kinds.iter().zip(parts).map(|(k, p)| field(*k, p)).collect()
}

impl Listing {
    /// Parses nft's output: any number of JSON documents.
    pub fn parse(text: &str) -> Listing {
        let mut out = Listing::default();
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        for doc in stream.flatten() {
            let Some(objects) = doc.get("nftables").and_then(Value::as_array) else {
                continue;
            };
            for obj in objects {
                if let Some(c) = obj.get("chain") {
                    if let Some(name) = c.get("name").and_then(Value::as_str) {
                        out.chains.insert(name.to_string());
                    }
                } else if let Some(r) = obj.get("rule") {
                    out.add_rule(r);
                } else if let Some(m) = obj.get("map").or_else(|| obj.get("set")) {
                    out.add_set(m);
                }
            }
        }
        out
    }

    fn add_rule(&mut self, r: &Value) {
        if r.get("table").and_then(Value::as_str) != Some(TABLE) {
            return;
        }
        let chain = r.get("chain").and_then(Value::as_str).unwrap_or_default();
        if !chain.starts_with(POD_CHAIN_PREFIX) {
            return;
        }
        let exprs = r
            .get("expr")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        self.rules.push(ListedRule {
            chain: chain.to_string(),
            comment: r.get("comment").and_then(Value::as_str).map(str::to_string),
            dnat: RuleFacts::read(&exprs).dnat(),
        });
    }

    fn add_set(&mut self, m: &Value) {
        if m.get("table").and_then(Value::as_str) != Some(TABLE) {
            return;
        }
        let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
        let Some((key_kinds, data_kinds, is_map)) = schema(name) else {
            return;
        };
        for e in m
            .get("elem")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (k, v) = match (is_map, e.as_array()) {
                (true, Some(pair)) => (pair.first(), pair.get(1)),
                (true, None) => continue,
                (false, _) => (Some(e), None),
            };
            let Some(k) = k else { continue };
            let (val, comment) = match k.get("elem") {
                Some(inner) => (
                    inner.get("val").cloned().unwrap_or(Value::Null),
                    inner
                        .get("comment")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                ),
                None => (k.clone(), None),
            };
            let Some(key) = fields(&key_kinds, &val) else {
                continue;
            };
            let data = match (&data_kinds, v) {
                (Some(kinds), Some(v)) => match fields(kinds, v) {
                    Some(f) => ElementData::Fields(f),
                    None => continue,
                },
                (None, Some(v)) => match v
                    .get("goto")
                    .or_else(|| v.get("jump"))
                    .and_then(|t| t.get("target"))
                    .and_then(Value::as_str)
                {
                    Some(t) => ElementData::Goto(t.to_string()),
                    None => continue,
                },
                (_, None) => ElementData::None,
            };
            self.elements.push(ListedElement {
                element: SetElement {
                    set: name.to_string(),
                    key,
                    exclusive: data_kinds.is_some(),
                    data,
                },
                comment,
            });
        }
    }

    /// Rules of one pod chain.
    pub fn rules_of<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a ListedRule> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain)
    }

    /// Elements whose comment is `comment`.
    pub fn elements_of(&self, comment: &str) -> BTreeSet<SetElement> {
        self.elements
            .iter()
            .filter(|e| e.comment.as_deref() == Some(comment))
            .map(|e| e.element.clone())
            .collect()
    }

    /// The listed element with this set and key, if any.
    pub fn find(&self, set: &str, key: &[Field]) -> Option<&ListedElement> {
        self.elements
            .iter()
            .find(|e| e.element.set == set && e.element.key == key)
    }

    /// `{name}` when the listing has that chain, else nothing.
    pub fn chain_named(&self, name: &str) -> BTreeSet<String> {
        self.chains.iter().filter(|c| *c == name).cloned().collect()
    }

    /// Owner comment of each pod chain (from its rules).
    pub fn pod_chain_comments(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for r in &self.rules {
            if let Some(c) = &r.comment {
                out.entry(r.chain.clone()).or_insert_with(|| c.clone());
            }
        }
        out
    }
}

fn protocol_of(v: &Value) -> Option<Protocol> {
    match v {
        Value::String(s) => Protocol::parse(s),
        Value::Number(n) => match n.as_u64()? {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        },
        _ => None,
    }
}

fn port_of(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => u16::try_from(n.as_u64()?).ok(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[derive(Default)]
struct RuleFacts {
    family: Option<Family>,
    protocol: Option<Protocol>,
    port: Option<u16>,
    host_ip: Option<IpAddr>,
    dnat: Option<(Family, IpAddr, u16)>,
}

impl RuleFacts {
    fn read(exprs: &[Value]) -> RuleFacts {
        let mut f = RuleFacts::default();
        let mut after_port = false;
        for e in exprs {
            if let Some(m) = e.get("match") {
                let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
                let left = m.get("left").cloned().unwrap_or(Value::Null);
                let right = m.get("right").cloned().unwrap_or(Value::Null);
                let next_is_host_ip = after_port;
                after_port = false;
                if let Some(key) = left.pointer("/meta/key").and_then(Value::as_str) {
                    match (key, right.as_str()) {
                        ("nfproto", Some("ipv4")) => f.family = Some(Family::V4),
                        ("nfproto", Some("ipv6")) => f.family = Some(Family::V6),
                        ("l4proto", _) => f.protocol = f.protocol.or_else(|| protocol_of(&right)),
                        _ => {}
                    }
                    continue;
                }
                let proto = left.pointer("/payload/protocol").and_then(Value::as_str);
                let field = left.pointer("/payload/field").and_then(Value::as_str);
                match proto {
                    Some("ip") => f.family = f.family.or(Some(Family::V4)),
                    Some("ip6") => f.family = f.family.or(Some(Family::V6)),
                    _ => {}
                }
                match (proto, field) {
                    (Some(p), Some("dport")) if f.port.is_none() => {
                        if let Some(pr) = Protocol::parse(p) {
                            f.protocol = Some(pr);
                        }
                        f.port = port_of(&right);
                        after_port = true;
                    }
                    (Some("ip") | Some("ip6"), Some("daddr")) if next_is_host_ip && op == "==" => {
                        f.host_ip = right.as_str().and_then(|s| s.parse().ok());
                    }
                    _ => {}
                }
            } else if let Some(d) = e.get("dnat") {
                let family = match d.get("family").and_then(Value::as_str) {
                    Some("ip6") => Family::V6,
                    _ => Family::V4,
                };
                let addr = d
                    .get("addr")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok());
                let port = d.get("port").and_then(port_of);
                if let (Some(a), Some(p)) = (addr, port) {
                    f.dnat = Some((family, a, p));
                }
            }
        }
        f
    }

    fn dnat(&self) -> Option<Dnat> {
        let (family, ip, port) = self.dnat?;
        Some(Dnat {
            family: self.family.unwrap_or(family),
            protocol: self.protocol?,
            host_port: self.port?,
            host_ip: self.host_ip,
            container_ip: ip,
            container_port: port,
        })
    }
}
