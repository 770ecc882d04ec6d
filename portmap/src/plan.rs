//! The desired nftables state, as pure functions of the configuration, the
//! owner and the container IPs: the shared skeleton (table, verdict maps,
//! base chains) and one attachment's per-pod chain plus map elements, and the
//! JSON batches that add, replace and delete them. Never runs anything.
//!
//! Layout (one `inet` table, `cni_portmap`):
//! - `prerouting` / `output` (nat, dstnat): `fib daddr type local jump hostports`
//! - `hostports`: four verdict-map lookups, `ip daddr . meta l4proto . th dport`
//!   in `hostip_v4` (hostIP mappings), `meta l4proto . th dport` in `ports_v4`,
//!   and the same for IPv6; each element `goto`s the owner's `pod-<hash>` chain
//!   and carries the owner tag as its comment.
//! - `pod-<hash>`: per mapping, an optional masquerade-mark rule (hairpin and
//!   127.0.0.0/8 sources, or any source with masqAll) and the DNAT rule; every
//!   rule carries the owner tag.
//! - `masq-mark-<bit>`: sets the mark bit; `postrouting` (nat, srcnat)
//!   masquerades packets carrying it.
//!
//! So a new connection costs one map lookup plus the pod's own rules, and an
//! ADD or DEL touches only the pod's chain and its elements.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::IpAddr;

use cni::args::Owner;
use nftables::batch::Batch;
use nftables::expr::{
    BinaryOperation, Elem, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression,
    Payload, PayloadField, Prefix, Verdict,
};
use nftables::schema::{
    Chain, Element, FlushObject, Map, NfCmd, NfListObject, Rule, SetType, SetTypeValue, Table,
};
use nftables::stmt::{JumpTarget, Mangle, Match, NATFamily, Operator, Statement, VerdictMap, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{Config, ContainerIps, HostPortMapping, Protocol};

/// Our table (family `inet`).
pub const TABLE: &str = "cni_portmap";
pub const FAMILY: NfFamily = NfFamily::INet;
/// Prefix of per-pod chains.
pub const POD_CHAIN_PREFIX: &str = "pod-";
/// The longest comment nft accepts on an element is 128 bytes.
const MAX_COMMENT: usize = 127;

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
    fn nfproto(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
    fn payload(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
    fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }
}

/// One element of the verdict maps: which traffic goes to a pod chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MapKey {
    pub family: Family,
    pub host_ip: Option<IpAddr>,
    pub protocol: Protocol,
    pub port: u16,
}

impl MapKey {
    pub fn map_name(&self) -> String {
        map_name(self.family, self.host_ip.is_some())
    }

    fn key_expr(&self) -> Expression<'static> {
        let mut parts = Vec::with_capacity(3);
        if let Some(ip) = self.host_ip {
            parts.push(Expression::String(Cow::Owned(ip.to_string())));
        }
        parts.push(Expression::String(Cow::Borrowed(self.protocol.as_str())));
        parts.push(Expression::Number(u32::from(self.port)));
        Expression::Named(NamedExpression::Concat(parts))
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

/// The four verdict maps.
pub fn map_name(family: Family, host_ip: bool) -> String {
    let kind = if host_ip { "hostip" } else { "ports" };
    format!("{kind}_{}", family.suffix())
}

pub const MAPS: [(Family, bool); 4] = [
    (Family::V4, true),
    (Family::V4, false),
    (Family::V6, true),
    (Family::V6, false),
];

/// One forwarding, the unit CHECK compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dnat {
    pub family: Family,
    pub protocol: Protocol,
    pub host_port: u16,
    /// The specific host address, if any.
    pub host_ip: Option<IpAddr>,
    pub container_ip: IpAddr,
    pub container_port: u16,
}

impl Dnat {
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

/// Masquerade decision of one mapping.
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
    pub owner: Owner,
    pub comment: String,
    pub chain: String,
    pub dnats: Vec<Dnat>,
    pub masq: Masq,
    pub mark_bit: u8,
    pub config: Config,
}

/// `pod-` + 16 hex digits of SHA-256 over the owner tag.
pub fn chain_name(owner: &Owner) -> String {
    let digest = Sha256::digest(owner.tag().as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{POD_CHAIN_PREFIX}{hex}")
}

/// The owner tag as an nft comment: the tag itself when it fits in 127
/// bytes, else its head plus a hash (GC then cannot attribute it and leaves
/// it alone; DEL and CHECK find everything through the chain name).
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
    // Specific hostIPs first so they win over a wildcard of the same port.
    dnats.sort_by_key(|d| d.host_ip.is_none());
    let masq = match (config.snat, config.masq_all) {
        (false, _) => Masq::Off,
        (true, false) => Masq::HairpinAndLocalhost,
        (true, true) => Masq::All,
    };
    PodPlan {
        owner: owner.clone(),
        comment: comment(owner),
        chain: chain_name(owner),
        dnats,
        masq,
        mark_bit: config.mark_masq_bit,
        config: config.clone(),
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
    /// The map elements, deduplicated (a repeated mapping maps once).
    pub fn keys(&self) -> BTreeSet<MapKey> {
        self.dnats.iter().map(Dnat::key).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.dnats.is_empty()
    }

    /// The per-pod rules, in order.
    pub fn rules(&self) -> Vec<Rule<'static>> {
        let mut rules = Vec::new();
        for d in &self.dnats {
            let conditions = match d.family {
                Family::V4 => &self.config.conditions_v4,
                Family::V6 => &self.config.conditions_v6,
            };
            let mut base = vec![
                eq(meta(MetaKey::Nfproto), s(d.family.nfproto())),
                eq(meta(MetaKey::L4proto), s(d.protocol.as_str())),
                eq(
                    payload("th", "dport"),
                    Expression::Number(u32::from(d.host_port)),
                ),
            ];
            if let Some(ip) = d.host_ip {
                base.push(eq(payload(d.family.payload(), "daddr"), ip_expr(ip)));
            }
            base.extend(conditions.iter().map(|c| c.statement()));
            // One rule per source: nft 1.0.6 cannot list a single chain whose
            // rules hold anonymous sets ("Unknown set '__set0'").
            let sources: Vec<Option<Expression<'static>>> = match (self.masq, d.family) {
                (Masq::Off, _) => vec![],
                (Masq::All, _) => vec![None],
                (Masq::HairpinAndLocalhost, Family::V4) => {
                    vec![Some(ip_expr(d.container_ip)), Some(prefix("127.0.0.0", 8))]
                }
                (Masq::HairpinAndLocalhost, Family::V6) => vec![Some(ip_expr(d.container_ip))],
            };
            for src in sources {
                let mut expr = base.clone();
                if let Some(src) = src {
                    expr.push(eq(payload(d.family.payload(), "saddr"), src));
                }
                expr.push(Statement::Jump(JumpTarget {
                    target: Cow::Owned(mark_chain(self.mark_bit)),
                }));
                rules.push(self.rule(expr));
            }
            let mut expr = base;
            expr.push(Statement::DNAT(Some(NAT {
                addr: Some(ip_expr(d.container_ip)),
                family: Some(match d.family {
                    Family::V4 => NATFamily::IP,
                    Family::V6 => NATFamily::IP6,
                }),
                port: Some(Expression::Number(u32::from(d.container_port))),
                flags: None,
            })));
            rules.push(self.rule(expr));
        }
        rules
    }

    fn rule(&self, expr: Vec<Statement<'static>>) -> Rule<'static> {
        Rule {
            family: FAMILY,
            table: Cow::Borrowed(TABLE),
            chain: Cow::Owned(self.chain.clone()),
            expr: Cow::Owned(expr),
            comment: Some(Cow::Owned(self.comment.clone())),
            ..Rule::default()
        }
    }

    fn chain_obj(&self) -> Chain<'static> {
        regular_chain(&self.chain)
    }

    fn elements(&self, keys: &BTreeSet<MapKey>) -> Vec<NfListObject<'static>> {
        keys.iter()
            .map(|k| {
                let elem = Expression::List(vec![
                    Expression::Named(NamedExpression::Elem(Elem {
                        val: Box::new(k.key_expr()),
                        timeout: None,
                        expires: None,
                        comment: Some(Cow::Owned(self.comment.clone())),
                        counter: None,
                    })),
                    Expression::Verdict(Verdict::Goto(JumpTarget {
                        target: Cow::Owned(self.chain.clone()),
                    })),
                ]);
                NfListObject::Element(Element {
                    family: FAMILY,
                    table: Cow::Borrowed(TABLE),
                    name: Cow::Owned(k.map_name()),
                    elem: Cow::Owned(vec![elem]),
                })
            })
            .collect()
    }

    /// The hot-path batch for a new attachment: `create` the pod chain and
    /// its elements, so an existing chain (re-ADD) or an element owned by
    /// someone else fails the whole batch with "File exists".
    pub fn add_batch(&self) -> Value {
        let mut batch = Batch::new();
        batch.add_cmd(NfCmd::Create(NfListObject::Chain(self.chain_obj())));
        for r in self.rules() {
            batch.add(NfListObject::Rule(r));
        }
        for e in self.elements(&self.keys()) {
            batch.add_cmd(NfCmd::Create(e));
        }
        to_value(batch)
    }

    /// Re-ADD by the same owner: replace its rules and elements atomically.
    pub fn replace_batch(&self, old_keys: &BTreeSet<MapKey>, chain_exists: bool) -> Value {
        let mut batch = Batch::new();
        for k in old_keys {
            batch.delete(element_key(k));
        }
        if chain_exists {
            batch.add_cmd(NfCmd::Flush(FlushObject::Chain(self.chain_obj())));
        } else {
            batch.add(NfListObject::Chain(self.chain_obj()));
        }
        for r in self.rules() {
            batch.add(NfListObject::Rule(r));
        }
        for e in self.elements(&self.keys()) {
            batch.add_cmd(NfCmd::Create(e));
        }
        to_value(batch)
    }
}

fn element_key(k: &MapKey) -> NfListObject<'static> {
    NfListObject::Element(Element {
        family: FAMILY,
        table: Cow::Borrowed(TABLE),
        name: Cow::Owned(k.map_name()),
        elem: Cow::Owned(vec![k.key_expr()]),
    })
}

/// Deletes the given elements and pod chains (DEL, GC).
pub fn delete_batch(keys: &BTreeSet<MapKey>, chains: &BTreeSet<String>) -> Value {
    let mut batch = Batch::new();
    for k in keys {
        batch.delete(element_key(k));
    }
    for c in chains {
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(regular_chain(c))));
        batch.delete(NfListObject::Chain(regular_chain(c)));
    }
    to_value(batch)
}

/// The chain that sets masquerade mark bit `bit`.
pub fn mark_chain(bit: u8) -> String {
    format!("masq-mark-{bit}")
}

fn mark_rule_comment(bit: u8) -> String {
    mark_chain(bit)
}

/// The postrouting rule for `bit`, recognised by its comment.
pub fn is_mark_rule_comment(comment: &str, bit: u8) -> bool {
    comment == mark_rule_comment(bit)
}

/// Creates what is missing of the skeleton: table, the four verdict maps, the
/// chains with their static rules (flushed and rewritten, so a repeat is
/// harmless), the mark chain for `bit`, and its postrouting masquerade rule
/// unless `masq_rule_present`.
pub fn skeleton_batch(bit: u8, masq_rule_present: bool) -> Value {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(Table {
        family: FAMILY,
        name: Cow::Borrowed(TABLE),
        handle: None,
    }));
    for (family, host_ip) in MAPS {
        let mut types = Vec::new();
        if host_ip {
            types.push(match family {
                Family::V4 => SetType::Ipv4Addr,
                Family::V6 => SetType::Ipv6Addr,
            });
        }
        types.push(SetType::InetProto);
        types.push(SetType::InetService);
        batch.add(NfListObject::Map(Box::new(Map {
            family: FAMILY,
            table: Cow::Borrowed(TABLE),
            name: Cow::Owned(map_name(family, host_ip)),
            set_type: SetTypeValue::Concatenated(Cow::Owned(types)),
            // Patched to "verdict" below: the crate's SetType has no verdict.
            map: SetTypeValue::Single(SetType::Mark),
            ..Map::default()
        })));
    }
    let hostports = regular_chain("hostports");
    batch.add(NfListObject::Chain(hostports.clone()));
    batch.add_cmd(NfCmd::Flush(FlushObject::Chain(hostports)));
    for (family, host_ip) in MAPS {
        let mut key = Vec::new();
        if host_ip {
            key.push(payload(family.payload(), "daddr"));
        }
        key.push(meta(MetaKey::L4proto));
        key.push(payload("th", "dport"));
        let mut expr = Vec::new();
        if !host_ip {
            expr.push(eq(meta(MetaKey::Nfproto), s(family.nfproto())));
        }
        expr.push(Statement::VerdictMap(VerdictMap {
            key: Expression::Named(NamedExpression::Concat(key)),
            data: s_owned(format!("@{}", map_name(family, host_ip))),
        }));
        batch.add(NfListObject::Rule(static_rule("hostports", expr)));
    }
    for (name, hook) in [
        ("prerouting", NfHook::Prerouting),
        ("output", NfHook::Output),
    ] {
        let chain = base_chain(name, hook, -100);
        batch.add(NfListObject::Chain(chain.clone()));
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(chain)));
        batch.add(NfListObject::Rule(static_rule(
            name,
            vec![
                eq(
                    Expression::Named(NamedExpression::Fib(Fib {
                        result: FibResult::Type,
                        flags: [FibFlag::Daddr].into_iter().collect(),
                    })),
                    s("local"),
                ),
                Statement::Jump(JumpTarget {
                    target: Cow::Borrowed("hostports"),
                }),
            ],
        )));
    }
    batch.add(NfListObject::Chain(base_chain(
        "postrouting",
        NfHook::Postrouting,
        100,
    )));
    let mark = mark_chain(bit);
    let mark_value = 1u32 << bit;
    batch.add(NfListObject::Chain(regular_chain(&mark)));
    batch.add_cmd(NfCmd::Flush(FlushObject::Chain(regular_chain(&mark))));
    batch.add(NfListObject::Rule(static_rule(
        &mark,
        vec![Statement::Mangle(Mangle {
            key: meta(MetaKey::Mark),
            value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
                meta(MetaKey::Mark),
                Expression::Number(mark_value),
            ]))),
        })],
    )));
    if !masq_rule_present {
        let mut rule = static_rule(
            "postrouting",
            vec![
                Statement::Match(Match {
                    left: Expression::BinaryOperation(Box::new(BinaryOperation::AND(
                        meta(MetaKey::Mark),
                        Expression::Number(mark_value),
                    ))),
                    right: Expression::Number(mark_value),
                    op: Operator::EQ,
                }),
                Statement::Masquerade(None),
            ],
        );
        rule.comment = Some(Cow::Owned(mark_rule_comment(bit)));
        batch.add(NfListObject::Rule(rule));
    }
    let mut value = to_value(batch);
    patch_verdict_maps(&mut value);
    value
}

/// The crate models map data types without `verdict`; rewrite the four maps.
fn patch_verdict_maps(value: &mut Value) {
    let Some(objects) = value.get_mut("nftables").and_then(Value::as_array_mut) else {
        return;
    };
    for obj in objects {
        if let Some(map) = obj.pointer_mut("/add/map") {
            map["map"] = Value::String("verdict".into());
        }
    }
}

/// A batch of `list` commands (nft prints one JSON document per command).
/// nft 1.0.6 fetches only the last-named object when one batch lists two
/// objects of the same kind, so the maps come from one `list maps` (family
/// `inet`; the crate has no object for it) and at most one chain is listed.
pub fn list_batch(chain: Option<&str>, maps: bool) -> Value {
    let mut objects = Vec::new();
    if let Some(c) = chain {
        let cmd = NfCmd::List(NfListObject::Chain(regular_chain(c)));
        objects.push(serde_json::to_value(cmd).unwrap_or(Value::Null));
    }
    if maps {
        objects.push(serde_json::json!({"list": {"maps": {"family": "inet"}}}));
    }
    serde_json::json!({ "nftables": objects })
}

fn to_value(batch: Batch<'_>) -> Value {
    serde_json::to_value(batch.to_nftables()).unwrap_or(Value::Null)
}

fn regular_chain(name: &str) -> Chain<'static> {
    Chain {
        family: FAMILY,
        table: Cow::Borrowed(TABLE),
        name: Cow::Owned(name.to_string()),
        ..Chain::default()
    }
}

fn base_chain(name: &str, hook: NfHook, prio: i32) -> Chain<'static> {
    Chain {
        _type: Some(NfChainType::NAT),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..regular_chain(name)
    }
}

fn static_rule(chain: &str, expr: Vec<Statement<'static>>) -> Rule<'static> {
    Rule {
        family: FAMILY,
        table: Cow::Borrowed(TABLE),
        chain: Cow::Owned(chain.to_string()),
        expr: Cow::Owned(expr),
        ..Rule::default()
    }
}

fn s(v: &'static str) -> Expression<'static> {
    Expression::String(Cow::Borrowed(v))
}

fn s_owned(v: String) -> Expression<'static> {
    Expression::String(Cow::Owned(v))
}

fn ip_expr(ip: IpAddr) -> Expression<'static> {
    s_owned(ip.to_string())
}

fn prefix(addr: &'static str, len: u32) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(addr)),
        len,
    }))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}
