//! Reading back what is installed: parses `nft -j` list output (one JSON
//! document per `list` command) into the few facts DEL, CHECK and GC need —
//! pod-chain rules reduced to their DNAT/masquerade meaning, and verdict-map
//! elements with their owner comments. Tolerant on purpose (P9): anything it
//! does not recognise is ignored, never an error. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::Value;

use crate::config::Protocol;
use crate::plan::{Dnat, Family, MapKey, MAPS, POD_CHAIN_PREFIX};

/// One rule of a pod chain, reduced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRule {
    pub chain: String,
    pub comment: Option<String>,
    /// The forwarding this rule performs, if it is a DNAT rule.
    pub dnat: Option<Dnat>,
    /// For a masquerade-mark rule: its key, jump target and whether it is
    /// restricted to some sources.
    pub masq: Option<(MapKey, String, bool)>,
}

/// One verdict-map element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedElement {
    pub key: MapKey,
    pub comment: Option<String>,
    pub target: Option<String>,
}

/// Everything a list batch returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub chains: BTreeSet<String>,
    pub rules: Vec<ListedRule>,
    pub elements: Vec<ListedElement>,
    /// Comments of rules in `postrouting`.
    pub postrouting_comments: Vec<String>,
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
                } else if let Some(m) = obj.get("map") {
                    out.add_map(m);
                }
            }
        }
        out
    }

    fn add_rule(&mut self, r: &Value) {
        if r.get("table").and_then(Value::as_str) != Some(crate::plan::TABLE) {
            return;
        }
        let chain = r.get("chain").and_then(Value::as_str).unwrap_or_default();
        let comment = r.get("comment").and_then(Value::as_str).map(str::to_string);
        if chain == "postrouting" {
            if let Some(c) = comment {
                self.postrouting_comments.push(c);
            }
            return;
        }
        if !chain.starts_with(POD_CHAIN_PREFIX) {
            return;
        }
        let exprs = r
            .get("expr")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let facts = RuleFacts::read(&exprs);
        self.rules.push(ListedRule {
            chain: chain.to_string(),
            comment,
            dnat: facts.dnat(),
            masq: facts.masq(),
        });
    }

    fn add_map(&mut self, m: &Value) {
        if m.get("table").and_then(Value::as_str) != Some(crate::plan::TABLE) {
            return;
        }
        let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
        let Some((family, host_ip)) = MAPS
            .iter()
            .copied()
            .find(|(f, h)| crate::plan::map_name(*f, *h) == name)
        else {
            return;
        };
        for e in m
            .get("elem")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(pair) = e.as_array() else { continue };
            let (Some(k), v) = (pair.first(), pair.get(1)) else {
                continue;
            };
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
            let Some(parts) = val.get("concat").and_then(Value::as_array) else {
                continue;
            };
            let (ip, rest) = if host_ip {
                let Some(ip) = parts
                    .first()
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<IpAddr>().ok())
                else {
                    continue;
                };
                (Some(ip), &parts[1..])
            } else {
                (None, &parts[..])
            };
            let (Some(protocol), Some(port)) = (
                rest.first().and_then(protocol_of),
                rest.get(1).and_then(port_of),
            ) else {
                continue;
            };
            let target = v
                .and_then(|v| v.get("goto").or_else(|| v.get("jump")))
                .and_then(|t| t.get("target"))
                .and_then(Value::as_str)
                .map(str::to_string);
            self.elements.push(ListedElement {
                key: MapKey {
                    family,
                    host_ip: ip,
                    protocol,
                    port,
                },
                comment,
                target,
            });
        }
    }

    /// Rules of one pod chain.
    pub fn rules_of<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a ListedRule> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain)
    }

    /// The map keys a pod chain's rules imply.
    pub fn keys_of_chain(&self, chain: &str) -> BTreeSet<MapKey> {
        self.rules_of(chain)
            .filter_map(|r| r.dnat.map(|d| d.key()).or(r.masq.as_ref().map(|m| m.0)))
            .collect()
    }

    /// Elements pointing at `chain` or commented with `comment`.
    pub fn elements_of(&self, chain: &str, comment: &str) -> BTreeSet<MapKey> {
        self.elements
            .iter()
            .filter(|e| e.target.as_deref() == Some(chain) || e.comment.as_deref() == Some(comment))
            .map(|e| e.key)
            .collect()
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
    saddr_restricted: bool,
    jump: Option<String>,
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
                    (Some("ip") | Some("ip6"), Some("saddr")) => f.saddr_restricted = true,
                    _ => {}
                }
            } else if let Some(t) = e.pointer("/jump/target").and_then(Value::as_str) {
                f.jump = Some(t.to_string());
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

    fn key(&self) -> Option<MapKey> {
        Some(MapKey {
            family: self.family.or(self.dnat.map(|d| d.0))?,
            host_ip: self.host_ip,
            protocol: self.protocol?,
            port: self.port?,
        })
    }

    fn dnat(&self) -> Option<Dnat> {
        let (family, ip, port) = self.dnat?;
        let key = self.key()?;
        Some(Dnat {
            family,
            protocol: key.protocol,
            host_port: key.port,
            host_ip: key.host_ip,
            container_ip: ip,
            container_port: port,
        })
    }

    fn masq(&self) -> Option<(MapKey, String, bool)> {
        let target = self.jump.clone()?;
        Some((self.key()?, target, self.saddr_restricted))
    }
}
