//! ADD's fast path on iptables-nft: what the restore input and the
//! conflict check need of the family's `nat` table, read over the verb's
//! nfnetlink socket instead of an `iptables-nft-save`, whose cost grows
//! with every pod mapped (80 ms with 1000 pods, per family).
//!
//! It answers only for the common case, the attachment's first ADD into an
//! intact layout: `PREROUTING` enters `CNI-HOSTPORT-DNAT`, the shared
//! chains exist, the pod chain does not, and no other entry rule maps one
//! of the new (protocol, port) pairs. Then the shared chains and which
//! shared rules are present (each recognised by its kernel expressions,
//! as iptables-nft encodes it) are all [`rules::PodRules::add_input`]
//! reads, and there is no conflict to refuse (conflicts need a shared
//! port, and the hostIP of the other attachment's rules, which only the
//! saved table shows). Anything else, or anything not recognised, answers
//! `None`: the caller saves the table as before (a repeated ADD, the first
//! pod, a flushed table, a port mapped twice with different hostIPs, an
//! entry rule in a shape this module does not know).
//!
//! Shapes, as `nft --debug=netlink` prints them (counters skipped):
//!
//! ```text
//! PREROUTING/OUTPUT: match addrtype rev 1 · immediate jump CNI-HOSTPORT-DNAT
//! POSTROUTING: match comment rev 0 · immediate jump CNI-HOSTPORT-MASQ
//! CNI-HOSTPORT-SETMARK: match comment rev 0 · target MARK rev 2
//! CNI-HOSTPORT-MASQ: meta load mark · bitwise & M ^ 0 · cmp eq M · target MASQUERADE rev 0
//! CNI-HOSTPORT-DNAT: meta load l4proto · cmp eq P · match comment rev 0 · match multiport rev 1 · … · immediate jump CNI-DN-<hash>
//! ```
//!
//! `CNI-HOSTPORT-DNAT` itself, which grows with the pods, comes from
//! [`super::dnat_cache`] (its file while true, else one dump).
//!
//! Reads only; the pure half ([`shapes`], [`Entry::of`], [`present`]) is
//! unit-tested, the netlink half by the privileged tests, which compare
//! the input it leads to with the saved path's.

use std::collections::BTreeSet;

use cni::netlink::netfilter::Nfnl;
use netlink_packet_core::{DefaultNla, Nla};
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, ChainMessage, Cmp, DataAttribute, ExpressionAttribute, Expressions,
    ListAttribute, Meta, MetaKey, NfTablesMessage, Operator, RuleAttribute, RuleMessage,
};

use super::dnat_cache::Tracker;
use super::nfnl::{family, jump_of, rules_of};
use super::rules::{Line, PodRules, MASQ_COMMENT, SETMARK_COMMENT};
use crate::config::Protocol;
use crate::plan::MapKey;
use crate::upstream::iptables::{entry_comment, NatTable, Rule, DNAT, MASQ, SETMARK};

/// One expression of a rule, as far as the shapes above tell them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// An xtables match (`target: false`) or target: name, revision, info.
    Xt {
        target: bool,
        name: String,
        rev: u32,
        info: Vec<u8>,
    },
    /// A jump to a chain.
    Jump(String),
    /// `meta load <key>`.
    Meta(MetaKey),
    /// `bitwise & mask ^ xor`.
    Bitwise { mask: Vec<u8>, xor: Vec<u8> },
    /// `cmp eq data`.
    CmpEq(Vec<u8>),
    /// Anything else (never equal to the above; not formatted: a dump of
    /// foreign rules stays cheap).
    Other,
}

/// `XT_ADDRTYPE_LOCAL` (1 << RTN_LOCAL).
const ADDRTYPE_LOCAL: u16 = 1 << 2;
/// `XT_MULTIPORT_DESTINATION`.
const MULTIPORT_DESTINATION: u8 = 1;
/// `NFTA_MATCH_NAME` / `NFTA_TARGET_NAME`, `_REV`, `_INFO`.
const XT_NAME: u16 = 1;
const XT_REV: u16 = 2;
const XT_INFO: u16 = 3;

fn value(nla: &DefaultNla) -> Vec<u8> {
    let mut buf = vec![0; nla.value_len()];
    nla.emit_value(&mut buf);
    buf
}

fn data_bytes(d: &DataAttribute) -> Option<Vec<u8>> {
    match d {
        DataAttribute::Value(v) => Some(v.clone()),
        _ => None,
    }
}

fn xt(target: bool, attrs: &[DefaultNla]) -> Shape {
    let mut name = String::new();
    let mut rev = 0;
    let mut info = Vec::new();
    for a in attrs {
        let v = value(a);
        match a.kind() & 0x3fff {
            XT_NAME => {
                name =
                    String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(&[])).into_owned()
            }
            XT_REV if v.len() == 4 => rev = u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
            XT_INFO => info = v,
            _ => {}
        }
    }
    Shape::Xt {
        target,
        name,
        rev,
        info,
    }
}

fn shape(e: &Expressions) -> Option<Shape> {
    let other = || Some(Shape::Other);
    match e {
        Expressions::Other {
            expression_type,
            attributes,
        } => match expression_type.as_str() {
            "counter" => None,
            "match" => Some(xt(false, attributes)),
            "target" => Some(xt(true, attributes)),
            _ => other(),
        },
        Expressions::Immediate(imm) => jump_of(imm).map(|c| Shape::Jump(c.into())).or_else(other),
        Expressions::Meta(m) => {
            let key = m.iter().find_map(|x| match x {
                Meta::Key(k) => Some(*k),
                _ => None,
            });
            let loads = m.iter().any(|x| matches!(x, Meta::DestinationRegister(_)));
            match key {
                Some(k) if loads => Some(Shape::Meta(k)),
                _ => other(),
            }
        }
        Expressions::Bitwise(b) => {
            let mask = b.iter().find_map(|x| match x {
                Bitwise::Mask(d) => data_bytes(d),
                _ => None,
            });
            let xor = b.iter().find_map(|x| match x {
                Bitwise::Xor(d) => data_bytes(d),
                _ => None,
            });
            let plain = !b.iter().any(|x| matches!(x, Bitwise::Op(op) if *op != 0));
            match (mask, xor) {
                (Some(mask), Some(xor)) if plain => Some(Shape::Bitwise { mask, xor }),
                _ => other(),
            }
        }
        Expressions::Cmp(c) => {
            let eq = c.iter().any(|x| matches!(x, Cmp::Op(Operator::Equal)));
            let data = c.iter().find_map(|x| match x {
                Cmp::Data(d) => data_bytes(d),
                _ => None,
            });
            match data {
                Some(d) if eq => Some(Shape::CmpEq(d)),
                _ => other(),
            }
        }
        _ => other(),
    }
}

/// A rule's expressions as [`Shape`]s, counters left out.
pub fn shapes(rule: &RuleMessage) -> Vec<Shape> {
    let mut out = Vec::new();
    for a in &rule.attributes {
        let RuleAttribute::Expressions(list) = a else {
            continue;
        };
        for e in list {
            let ListAttribute::Element(attrs) = e else {
                continue;
            };
            for x in attrs {
                if let ExpressionAttribute::Data(d) = x {
                    out.extend(shape(d));
                }
            }
        }
    }
    out
}

/// `xt_comment_info`: the text, NUL-padded to 256 bytes.
fn comment_info(text: &str) -> Vec<u8> {
    let mut info = text.as_bytes().to_vec();
    info.resize(256, 0);
    info
}

fn xt_match(name: &str, rev: u32, info: Vec<u8>) -> Shape {
    Shape::Xt {
        target: false,
        name: name.into(),
        rev,
        info,
    }
}

/// Whether `got` is `MASQUERADE` without options: IPv4's
/// `nf_nat_ipv4_multi_range_compat` with one empty range, IPv6's
/// `nf_nat_range` empty (padding aside).
fn plain_masquerade(got: &Shape, v6: bool) -> bool {
    let Shape::Xt {
        target: true,
        name,
        rev: 0,
        info,
    } = got
    else {
        return false;
    };
    if name != "MASQUERADE" {
        return false;
    }
    let rest = if v6 {
        &info[..]
    } else {
        match info.split_first_chunk::<4>() {
            Some((n, rest)) if u32::from_ne_bytes(*n) == 1 => rest,
            _ => return false,
        }
    };
    rest.iter().all(|b| *b == 0)
}

/// Whether `rule` is the shared rule `line` in iptables-nft's encoding;
/// `mark` is the masquerade mark bit's value.
pub fn is_shared(line: &Line, got: &[Shape], mark: u32, v6: bool) -> bool {
    let mark_info = [mark.to_ne_bytes(), mark.to_ne_bytes()].concat();
    let addrtype = [
        0u16.to_ne_bytes(),
        ADDRTYPE_LOCAL.to_ne_bytes(),
        [0, 0],
        [0, 0],
    ]
    .concat();
    match line.chain.as_str() {
        "PREROUTING" | "OUTPUT" => {
            got == [xt_match("addrtype", 1, addrtype), Shape::Jump(DNAT.into())]
        }
        "POSTROUTING" => {
            got == [
                xt_match("comment", 0, comment_info(MASQ_COMMENT)),
                Shape::Jump(MASQ.into()),
            ]
        }
        SETMARK => {
            got == [
                xt_match("comment", 0, comment_info(SETMARK_COMMENT)),
                Shape::Xt {
                    target: true,
                    name: "MARK".into(),
                    rev: 2,
                    info: mark_info,
                },
            ]
        }
        MASQ => match got {
            [meta, bitwise, cmp, target] => {
                *meta == Shape::Meta(MetaKey::Mark)
                    && *bitwise
                        == Shape::Bitwise {
                            mask: mark.to_ne_bytes().to_vec(),
                            xor: vec![0; 4],
                        }
                    && *cmp == Shape::CmpEq(mark.to_ne_bytes().to_vec())
                    && plain_masquerade(target, v6)
            }
            _ => false,
        },
        _ => false,
    }
}

/// What an entry rule of `CNI-HOSTPORT-DNAT` maps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    #[serde(rename = "p")]
    pub protocol: u8,
    #[serde(rename = "d")]
    pub ports: Vec<u16>,
    #[serde(rename = "c")]
    pub comment: String,
    #[serde(rename = "n")]
    pub chain: String,
}

impl Entry {
    /// Reads an entry rule: `None` for any other shape (multiport with
    /// ranges or inverted, no protocol, no jump).
    pub fn of(got: &[Shape]) -> Option<Entry> {
        let mut protocol = None;
        let (mut ports, mut comment, mut chain) = (None, None, None);
        for (i, s) in got.iter().enumerate() {
            match s {
                Shape::Meta(MetaKey::L4Proto) => match got.get(i + 1) {
                    Some(Shape::CmpEq(p)) if p.len() == 1 => protocol = Some(p[0]),
                    _ => return None,
                },
                Shape::Xt {
                    target: false,
                    name,
                    rev,
                    info,
                } => match (name.as_str(), rev) {
                    ("comment", 0) => {
                        let text = info.split(|b| *b == 0).next().unwrap_or(&[]);
                        comment = Some(String::from_utf8_lossy(text).into_owned());
                    }
                    ("multiport", 1) => ports = Some(multiport_v1(info)?),
                    _ => {}
                },
                Shape::Jump(c) => chain = Some(c.clone()),
                _ => {}
            }
        }
        Some(Entry {
            protocol: protocol?,
            ports: ports?,
            comment: comment?,
            chain: chain?,
        })
    }
}

/// `xt_multiport_v1` (flags, count, ports[15], pflags[15], invert) of
/// plain destination ports.
fn multiport_v1(info: &[u8]) -> Option<Vec<u16>> {
    if info.len() < 48 {
        return None;
    }
    let (flags, count, invert) = (info[0], usize::from(info[1]), info[47]);
    let pflags = &info[32..47];
    if flags != MULTIPORT_DESTINATION || count > 15 || invert != 0 || pflags.iter().any(|f| *f != 0)
    {
        return None;
    }
    Some(
        (0..count)
            .map(|i| u16::from_ne_bytes([info[2 + 2 * i], info[3 + 2 * i]]))
            .collect(),
    )
}

/// Whether the shared rule `line` is among `chain_rules`.
pub fn present(line: &Line, chain_rules: &[RuleMessage], mark: u32, v6: bool) -> bool {
    chain_rules
        .iter()
        .any(|r| is_shared(line, &shapes(r), mark, v6))
}

/// Whether the chain is absent from iptables-nft's `nat` table (GETCHAIN
/// answered ENOENT; any other answer is `false`).
fn chain_absent(sock: &Nfnl, v6: bool, chain: &str) -> bool {
    let get = NfTablesMessage::GetChain(ChainMessage {
        attributes: vec![
            ChainAttribute::Table("nat".into()),
            ChainAttribute::Name(chain.into()),
        ],
    });
    matches!(
        sock.nftables_get(family(v6), vec![get]).as_deref(),
        Ok([Err(errno)]) if *errno == libc::ENOENT
    )
}

/// The `nat` table as far as ADD's input for `rules` reads it (the shared
/// chains, the shared rules present), when the fast path applies (see the
/// module doc); `keys` are the family's keys of the new mapping, `mark`
/// the masquerade mark. `CNI-HOSTPORT-DNAT`'s entry rules come from
/// `dnat` (the cache file while it is true, else one dump).
pub fn table_for(
    sock: &Nfnl,
    dnat: &mut Tracker,
    rules: &PodRules,
    keys: &BTreeSet<MapKey>,
    mark: u32,
) -> Option<NatTable> {
    let v6 = rules.family == crate::plan::Family::V6;
    if !chain_absent(sock, v6, &rules.chain) {
        return None;
    }
    let mut table = NatTable::default();
    let mut dumped: Vec<(&str, Vec<RuleMessage>)> = Vec::new();
    for chain in ["PREROUTING", "OUTPUT", "POSTROUTING"]
        .iter()
        .copied()
        .chain(rules.shared_chains().iter().map(String::as_str))
    {
        if chain == DNAT || dumped.iter().any(|(c, _)| *c == chain) {
            continue;
        }
        dumped.push((chain, rules_of(sock, v6, chain)?));
    }
    let of = |chain: &str| {
        dumped
            .iter()
            .find(|(c, _)| *c == chain)
            .map(|(_, r)| r.as_slice())
    };
    let enters = of("PREROUTING")?
        .iter()
        .any(|r| shapes(r).contains(&Shape::Jump(DNAT.into())));
    if !enters {
        return None;
    }
    table.chains = rules.shared_chains().to_vec();
    for line in rules.shared_lines() {
        if present(line, of(&line.chain)?, mark, v6) {
            table.rules.push(Rule {
                chain: line.chain.clone(),
                spec: line.spec.clone(),
                jump: None,
                comment: None,
                protocol: None,
                dports: Vec::new(),
                destination: None,
            });
        }
    }
    let mine = entry_comment(&rules.owner.network, &rules.owner.container_id);
    let wanted: BTreeSet<(u8, u16)> = keys
        .iter()
        .map(|k| (Protocol::number(k.protocol), k.port))
        .collect();
    for r in dnat.rules(sock, v6)? {
        let e = r.entry.as_ref()?;
        if e.comment == mine || e.chain == rules.chain {
            return None;
        }
        if e.ports.iter().any(|p| wanted.contains(&(e.protocol, *p))) {
            return None;
        }
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multiport(ports: &[u16]) -> Vec<u8> {
        let mut info = vec![0u8; 48];
        info[0] = MULTIPORT_DESTINATION;
        info[1] = ports.len() as u8;
        for (i, p) in ports.iter().enumerate() {
            info[2 + 2 * i..4 + 2 * i].copy_from_slice(&p.to_ne_bytes());
        }
        info
    }

    fn entry_shapes(ports: &[u16]) -> Vec<Shape> {
        vec![
            Shape::Meta(MetaKey::L4Proto),
            Shape::CmpEq(vec![17]),
            xt_match("comment", 0, comment_info("dnat name: \"net\" id: \"c1\"")),
            xt_match("multiport", 1, multiport(ports)),
            Shape::Jump("CNI-DN-abc".into()),
        ]
    }

    #[test]
    fn entry_rules_are_read_and_odd_ones_refused() {
        assert_eq!(
            Entry::of(&entry_shapes(&[53, 5353])),
            Some(Entry {
                protocol: 17,
                ports: vec![53, 5353],
                comment: "dnat name: \"net\" id: \"c1\"".into(),
                chain: "CNI-DN-abc".into(),
            })
        );
        let mut ranged = entry_shapes(&[53, 60]);
        if let Shape::Xt { info, .. } = &mut ranged[3] {
            info[32] = 1;
        }
        assert_eq!(Entry::of(&ranged), None);
        let no_proto = entry_shapes(&[53])[2..].to_vec();
        assert_eq!(Entry::of(&no_proto), None);
    }

    #[test]
    fn shared_rules_are_recognised_exactly() {
        let line = |chain: &str| Line {
            chain: chain.into(),
            spec: String::new(),
        };
        let mark = 0x2000u32;
        let setmark = vec![
            xt_match("comment", 0, comment_info(SETMARK_COMMENT)),
            Shape::Xt {
                target: true,
                name: "MARK".into(),
                rev: 2,
                info: [mark.to_ne_bytes(), mark.to_ne_bytes()].concat(),
            },
        ];
        assert!(is_shared(&line(SETMARK), &setmark, mark, false));
        assert!(!is_shared(&line(SETMARK), &setmark, 0x4000, false));
        let mut masq_info = 1u32.to_ne_bytes().to_vec();
        masq_info.resize(24, 0);
        let masq = vec![
            Shape::Meta(MetaKey::Mark),
            Shape::Bitwise {
                mask: mark.to_ne_bytes().to_vec(),
                xor: vec![0; 4],
            },
            Shape::CmpEq(mark.to_ne_bytes().to_vec()),
            Shape::Xt {
                target: true,
                name: "MASQUERADE".into(),
                rev: 0,
                info: masq_info.clone(),
            },
        ];
        assert!(is_shared(&line(MASQ), &masq, mark, false));
        let mut random = masq.clone();
        masq_info[4] = 4;
        random[3] = Shape::Xt {
            target: true,
            name: "MASQUERADE".into(),
            rev: 0,
            info: masq_info,
        };
        assert!(!is_shared(&line(MASQ), &random, mark, false));
        let jump = vec![Shape::Jump(DNAT.into())];
        assert!(!is_shared(&line("PREROUTING"), &jump, mark, false));
    }
}
