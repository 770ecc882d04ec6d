//! iptables-nft's `nat` table over the verb's nfnetlink socket, for DEL of
//! an indexed attachment ([`remove`]). `CNI-HOSTPORT-DNAT`'s rules (from
//! [`super::dnat_cache`], else one GETRULE dump) give the entry rules
//! jumping to the pod chain (by handle; a saved table is matched the same
//! way, by jump target, in `NatTable::removal`) and whether any other entry
//! rule remains; one nf_tables transaction deletes those rules, flushes the
//! pod chain and deletes it, and, for the last attachment, everything else
//! upstream's layout added (read with a few more small dumps). No
//! `iptables-nft-restore`: no process to start, and no exit that waits for
//! the RCU grace period the deletions began (≈15–20 ms) — the verb's socket
//! is closed by a detached child ([`super::session`]).
//!
//! A handle read from the cache file is checked with a GETRULE of that
//! handle before the transaction (one from this verb's dump is not).
//!
//! Anything unexpected (no rule jumps to the chain, a handle that does not,
//! another `CNI-DN-` chain without an entry rule, a refused transaction)
//! answers `false` and changes nothing: the caller then takes the
//! `iptables-save` path, which reports real errors.

use cni::netlink::netfilter::Nfnl;
use netlink_packet_core::NLM_F_DUMP;
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, DataAttribute, ExpressionAttribute, Expressions, Immediate,
    ListAttribute, NfTablesMessage, RuleAttribute, RuleMessage, Verdict, VerdictAttribute,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};

use super::dnat_cache::Tracker;
use super::rules::LOCALNET;
use crate::upstream::iptables::{DNAT, MASQ, SETMARK};

/// iptables' `nat` table (an nf_tables table of family ip / ip6).
const NAT: &str = "nat";
/// iptables' `raw` table (IPv4: the localnet drop).
const RAW: &str = "raw";

pub(crate) fn family(v6: bool) -> NetfilterProtoFamily {
    if v6 {
        NetfilterProtoFamily::IPv6
    } else {
        NetfilterProtoFamily::IPv4
    }
}

/// The chain an `immediate` expression jumps to, if it is a jump.
pub(crate) fn jump_of(imm: &[Immediate]) -> Option<&str> {
    imm.iter().find_map(|i| match i {
        Immediate::Data(DataAttribute::Verdict(v))
            if v.contains(&VerdictAttribute::Code(Verdict::Jump)) =>
        {
            v.iter().find_map(|va| match va {
                VerdictAttribute::Chain(c) => Some(c.as_str()),
                _ => None,
            })
        }
        _ => None,
    })
}

/// The chain a rule jumps to (its immediate verdict), if any.
pub(crate) fn jump_target(rule: &RuleMessage) -> Option<&str> {
    rule.attributes.iter().find_map(|a| match a {
        RuleAttribute::Expressions(list) => list.iter().find_map(|e| match e {
            ListAttribute::Element(attrs) => attrs.iter().find_map(|x| match x {
                ExpressionAttribute::Data(Expressions::Immediate(imm)) => jump_of(imm),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

pub(crate) fn handle(rule: &RuleMessage) -> Option<u64> {
    rule.attributes.iter().find_map(|a| match a {
        RuleAttribute::Handle(h) => Some(*h),
        _ => None,
    })
}

/// The rules of `chain` in iptables-nft's `nat` table of the family (one
/// GETRULE dump); None when the dump failed (no such table or chain, or no
/// nf_tables).
pub(crate) fn rules_of(sock: &Nfnl, v6: bool, chain: &str) -> Option<Vec<RuleMessage>> {
    rules_in(sock, v6, NAT, chain)
}

/// The rules of `table`'s `chain` (one GETRULE dump).
fn rules_in(sock: &Nfnl, v6: bool, table: &str, chain: &str) -> Option<Vec<RuleMessage>> {
    let dump = NetfilterMessage::new(
        NetfilterHeader::new(family(v6), 0, 0),
        NfTablesMessage::GetRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table(table.into()),
                RuleAttribute::Chain(chain.into()),
            ],
        }),
    );
    let replies = sock.request(dump, NLM_F_DUMP).ok()?;
    Some(
        replies
            .into_iter()
            .filter_map(|m| match m.inner {
                NetfilterMessageInner::NfTables(NfTablesMessage::NewRule(r)) => Some(r),
                _ => None,
            })
            .collect(),
    )
}

/// The handles of `CNI-HOSTPORT-DNAT`'s rules jumping to `chain`, and
/// whether other rules remain there (from `dnat`: the cache file while it
/// is true, else one dump).
fn entries_of(sock: &Nfnl, dnat: &mut Tracker, v6: bool, chain: &str) -> Option<(Vec<u64>, bool)> {
    let (mut mine, mut others) = (Vec::new(), false);
    for r in dnat.rules(sock, v6)? {
        match r.jump() {
            Some(c) if c == chain => mine.push(r.handle),
            _ => others = true,
        }
    }
    Some((mine, others))
}

/// Whether iptables-nft's `nat` `PREROUTING` of the family jumps to
/// `CNI-HOSTPORT-DNAT` (one GETRULE dump of that chain): STATUS's test
/// for a flushed layout without an `iptables-nft-save`. None: the dump
/// failed (no such table or chain, or no nf_tables).
pub fn prerouting_enters_dnat(sock: &Nfnl, v6: bool) -> Option<bool> {
    let rules = rules_of(sock, v6, "PREROUTING")?;
    Some(rules.iter().any(|r| jump_target(r) == Some(DNAT)))
}

/// Whether the rule `handle` of `CNI-HOSTPORT-DNAT` jumps to `chain` (one
/// GETRULE of that handle): DEL deletes by handle, so one read from the
/// cache file is checked against the kernel first.
fn jumps_to(sock: &Nfnl, v6: bool, handle: u64, chain: &str) -> bool {
    let get = NfTablesMessage::GetRule(RuleMessage {
        attributes: vec![
            RuleAttribute::Table(NAT.into()),
            RuleAttribute::Chain(DNAT.into()),
            RuleAttribute::Handle(handle),
        ],
    });
    match sock.nftables_get(family(v6), vec![get]).as_deref() {
        Ok([Ok(answer)]) => answer.iter().any(|m| match m {
            NfTablesMessage::NewRule(r) => jump_target(r) == Some(chain),
            _ => false,
        }),
        _ => false,
    }
}

/// `DELRULE` of the rule `handle` of `table`'s `chain`.
fn delete_rule(table: &str, chain: &str, handle: u64) -> (NfTablesMessage, u16) {
    let rule = RuleMessage {
        attributes: vec![
            RuleAttribute::Table(table.into()),
            RuleAttribute::Chain(chain.into()),
            RuleAttribute::Handle(handle),
        ],
    };
    (NfTablesMessage::DeleteRule(rule), 0)
}

/// A `DELRULE` naming only the chain: flushes it.
fn flush(table: &str, chain: &str) -> (NfTablesMessage, u16) {
    let rule = RuleMessage {
        attributes: vec![
            RuleAttribute::Table(table.into()),
            RuleAttribute::Chain(chain.into()),
        ],
    };
    (NfTablesMessage::DeleteRule(rule), 0)
}

fn delete_chain(table: &str, chain: &str) -> (NfTablesMessage, u16) {
    let delete = ChainMessage {
        attributes: vec![
            ChainAttribute::Table(table.into()),
            ChainAttribute::Name(chain.into()),
        ],
    };
    (NfTablesMessage::DeleteChain(delete), 0)
}

/// The names of the chains of iptables-nft's `table` of the family (one
/// GETCHAIN dump of the family); None when the dump failed.
fn chains_of(sock: &Nfnl, v6: bool, table: &str) -> Option<Vec<String>> {
    let dump = NetfilterMessage::new(
        NetfilterHeader::new(family(v6), 0, 0),
        NfTablesMessage::GetChain(ChainMessage { attributes: vec![] }),
    );
    let replies = sock.request(dump, NLM_F_DUMP).ok()?;
    Some(
        replies
            .into_iter()
            .filter_map(|m| match m.inner {
                NetfilterMessageInner::NfTables(NfTablesMessage::NewChain(c)) => {
                    let (mut t, mut name) = (None, None);
                    for a in c.attributes {
                        match a {
                            ChainAttribute::Table(x) => t = Some(x),
                            ChainAttribute::Name(x) => name = Some(x),
                            _ => {}
                        }
                    }
                    (t.as_deref() == Some(table)).then_some(name).flatten()
                }
                _ => None,
            })
            .collect(),
    )
}

/// The handles of the rules of `table`'s `chain` jumping to `target`.
fn jumps_in(sock: &Nfnl, v6: bool, table: &str, chain: &str, target: &str) -> Option<Vec<u64>> {
    Some(
        rules_in(sock, v6, table, chain)?
            .iter()
            .filter(|r| jump_target(r) == Some(target))
            .filter_map(handle)
            .collect(),
    )
}

/// Removes the attachment whose pod chain is `chain` from iptables-nft's
/// `nat` table of the family, in one nf_tables transaction; whether it did.
/// When another entry rule stays in `CNI-HOSTPORT-DNAT`: its entry rules
/// and its chain. When none does and no other `CNI-DN-` chain exists (the
/// last attachment): also what `NatTable::removal` removes then, the
/// `PREROUTING`/`OUTPUT` jumps to `CNI-HOSTPORT-DNAT`, the `POSTROUTING`
/// jump to `CNI-HOSTPORT-MASQ`, the three shared chains and, for IPv4, the
/// `raw` table's localnet drop ([`LOCALNET`]). A rule elsewhere still
/// jumping to a shared chain makes the kernel refuse the chain's deletion,
/// and so the whole transaction: `false`, nothing changed.
pub fn remove(sock: &Nfnl, dnat: &mut Tracker, v6: bool, chain: &str) -> bool {
    let Some((mine, others)) = entries_of(sock, dnat, v6, chain) else {
        return false;
    };
    if mine.is_empty() {
        return false;
    }
    // A fresh dump's handles are the kernel's own; the file's are checked.
    if dnat.from_file(v6) && !mine.iter().all(|h| jumps_to(sock, v6, *h, chain)) {
        return false;
    }
    let mut ops: Vec<(NfTablesMessage, u16)> = mine
        .into_iter()
        .map(|h| delete_rule(NAT, DNAT, h))
        .collect();
    ops.push(flush(NAT, chain));
    ops.push(delete_chain(NAT, chain));
    if others {
        return sock.nftables_batch(family(v6), ops).is_ok();
    }
    match last_ones(sock, v6, chain) {
        Some(mut teardown) => {
            ops.append(&mut teardown);
            sock.nftables_batch(family(v6), ops).is_ok()
        }
        None => false,
    }
}

/// What the last attachment's DEL removes besides its own rules (see
/// [`remove`]), read over `sock`; None when another `CNI-DN-` chain exists
/// or a read failed.
fn last_ones(sock: &Nfnl, v6: bool, chain: &str) -> Option<Vec<(NfTablesMessage, u16)>> {
    let chains = chains_of(sock, v6, NAT)?;
    if chains
        .iter()
        .any(|c| c.starts_with("CNI-DN-") && c != chain)
    {
        return None;
    }
    let mut ops = Vec::new();
    for (top, shared) in [
        ("PREROUTING", DNAT),
        ("OUTPUT", DNAT),
        ("POSTROUTING", MASQ),
    ] {
        if chains.iter().any(|c| c == top) {
            for h in jumps_in(sock, v6, NAT, top, shared)? {
                ops.push(delete_rule(NAT, top, h));
            }
        }
    }
    for shared in [MASQ, SETMARK] {
        if chains.iter().any(|c| c == shared) {
            ops.push(flush(NAT, shared));
        }
    }
    for shared in [DNAT, MASQ, SETMARK] {
        if chains.iter().any(|c| c == shared) {
            ops.push(delete_chain(NAT, shared));
        }
    }
    if !v6 {
        let raw = chains_of(sock, v6, RAW)?;
        if raw.iter().any(|c| c == LOCALNET) {
            for top in raw.iter().filter(|c| *c != LOCALNET) {
                for h in jumps_in(sock, v6, RAW, top, LOCALNET)? {
                    ops.push(delete_rule(RAW, top, h));
                }
            }
            ops.push(flush(RAW, LOCALNET));
            ops.push(delete_chain(RAW, LOCALNET));
        }
    }
    Some(ops)
}
