//! iptables-nft's `nat` table over the verb's nfnetlink socket, for DEL's
//! common case: removing one attachment whose shared chains another
//! attachment keeps. One GETRULE dump of `CNI-HOSTPORT-DNAT` finds the
//! entry rules jumping to the pod chain (by handle; a saved table is
//! matched the same way, by jump target, in `NatTable::removal`) and
//! whether any other entry rule remains; one nf_tables transaction deletes
//! those rules, flushes the pod chain and deletes it. No
//! `iptables-nft-restore`: no process to start, and no exit that waits for
//! the RCU grace period the deletions began (≈12 ms) — the verb's socket
//! is closed by a detached child ([`super::session`]).
//!
//! Anything unexpected (no rule jumps to the chain, no other entry rule,
//! a refused transaction) answers `false` and changes nothing: the caller
//! then takes the `iptables-save` path, which reports real errors.

use cni::netlink::netfilter::Nfnl;
use netlink_packet_core::NLM_F_DUMP;
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, DataAttribute, ExpressionAttribute, Expressions, Immediate,
    ListAttribute, NfTablesMessage, RuleAttribute, RuleMessage, Verdict, VerdictAttribute,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};

use crate::upstream::iptables::DNAT;

/// iptables' `nat` table (an nf_tables table of family ip / ip6).
const NAT: &str = "nat";

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
fn jump_target(rule: &RuleMessage) -> Option<&str> {
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

fn handle(rule: &RuleMessage) -> Option<u64> {
    rule.attributes.iter().find_map(|a| match a {
        RuleAttribute::Handle(h) => Some(*h),
        _ => None,
    })
}

/// The rules of `chain` in iptables-nft's `nat` table of the family (one
/// GETRULE dump); None when the dump failed (no such table or chain, or no
/// nf_tables).
pub(crate) fn rules_of(sock: &Nfnl, v6: bool, chain: &str) -> Option<Vec<RuleMessage>> {
    let dump = NetfilterMessage::new(
        NetfilterHeader::new(family(v6), 0, 0),
        NfTablesMessage::GetRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table(NAT.into()),
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
/// whether other rules remain there.
fn entries_of(sock: &Nfnl, v6: bool, chain: &str) -> Option<(Vec<u64>, bool)> {
    let (mut mine, mut others) = (Vec::new(), false);
    for r in &rules_of(sock, v6, DNAT)? {
        match (jump_target(r), handle(r)) {
            (Some(c), Some(h)) if c == chain => mine.push(h),
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

/// Removes the attachment whose pod chain is `chain` from iptables-nft's
/// `nat` table of the family, when another entry rule stays (see the
/// module doc); whether it did.
pub fn remove_shared(sock: &Nfnl, v6: bool, chain: &str) -> bool {
    let Some((mine, others)) = entries_of(sock, v6, chain) else {
        return false;
    };
    if mine.is_empty() || !others {
        return false;
    }
    let mut ops: Vec<(NfTablesMessage, u16)> = mine
        .into_iter()
        .map(|h| {
            let rule = RuleMessage {
                attributes: vec![
                    RuleAttribute::Table(NAT.into()),
                    RuleAttribute::Chain(DNAT.into()),
                    RuleAttribute::Handle(h),
                ],
            };
            (NfTablesMessage::DeleteRule(rule), 0)
        })
        .collect();
    // A DELRULE naming only the chain flushes it.
    let flush = RuleMessage {
        attributes: vec![
            RuleAttribute::Table(NAT.into()),
            RuleAttribute::Chain(chain.into()),
        ],
    };
    ops.push((NfTablesMessage::DeleteRule(flush), 0));
    let delete = ChainMessage {
        attributes: vec![
            ChainAttribute::Table(NAT.into()),
            ChainAttribute::Name(chain.into()),
        ],
    };
    ops.push((NfTablesMessage::DeleteChain(delete), 0));
    sock.nftables_batch(family(v6), ops).is_ok()
}
