//! What iptables-nft's `CNI-HOSTPORT-DNAT` holds, kept between verbs so
//! that ADD's fast path ([`super::fresh`]) and DEL ([`super::nfnl`]) need
//! not dump it: with 1000 pods mapped, the dump and its decoding were
//! about 10 ms of each ADD and DEL, most of their cost.
//!
//! The authority stays the kernel. The file (`iptables-dnat.cache` in the
//! netns's state directory, written under the netns lock) records the
//! chain's rules per family (handle, jump target, what an entry rule maps)
//! together with the nf_tables generation they are true at. Every
//! committed transaction in the netns, in any family and by anyone, moves
//! the generation on, so a file is used only while the generation is still
//! the one it names. A verb ([`Tracker`]) joins nf_tables' notifications
//! first, then reads the generation and the file (or dumps the chain);
//! at its end it reads the generation again and takes the notifications:
//! when they account for every generation in between (each
//! `NFT_MSG_NEWGEN` the next, none lost), the rules added to and deleted
//! from the chain in those transactions (its own restore's, its own
//! batch's, anyone else's) are applied and the file is written at the new
//! generation. Anything else (a lost notification, a transaction that was
//! in flight when the verb began or is at its end, the chain or table
//! deleted) leaves the family unknown, and the next verb dumps.
//!
//! The pure half ([`Tracker::apply`]) is unit-tested; the privileged tests
//! compare the file with a dump after real verbs.

use serde::{Deserialize, Serialize};

use cni::netlink::netfilter::Nfnl;
use netlink_packet_netfilter::nftables::{
    ChainAttribute, GenAttribute, NfTablesMessage, RuleAttribute, RuleMessage, TableAttribute,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};

use super::fresh::{shapes, Entry};
use super::nfnl::{handle, jump_target, rules_of};
use crate::state;
use crate::upstream::iptables::DNAT;

/// The file, in the netns's state directory.
const FILE: &str = "iptables-dnat.cache";

/// One rule of `CNI-HOSTPORT-DNAT`, as the verbs read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnatRule {
    /// Its handle.
    #[serde(rename = "h")]
    pub handle: u64,
    /// The chain it jumps to, when it is not an entry rule (an entry
    /// rule's is its [`Entry::chain`]; see [`Self::jump`]).
    #[serde(rename = "j", default, skip_serializing_if = "Option::is_none")]
    other_jump: Option<String>,
    /// What it maps, when it is an entry rule in a shape [`Entry::of`] reads.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Entry>,
}

impl DnatRule {
    /// The rule as read from a dump or a notification (None: no handle).
    pub fn of(rule: &RuleMessage) -> Option<DnatRule> {
        let entry = Entry::of(&shapes(rule));
        Some(DnatRule {
            handle: handle(rule)?,
            other_jump: match entry {
                Some(_) => None,
                None => jump_target(rule).map(str::to_owned),
            },
            entry,
        })
    }

    /// The chain it jumps to, if any.
    pub fn jump(&self) -> Option<&str> {
        match &self.entry {
            Some(e) => Some(&e.chain),
            None => self.other_jump.as_deref(),
        }
    }
}

/// The file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    genid: u32,
    v4: Option<Vec<DnatRule>>,
    v6: Option<Vec<DnatRule>>,
}

/// One family's chain as the verb knows it.
#[derive(Debug, Clone)]
struct View {
    /// The generation it is true at (None: a dump that another transaction
    /// may have overtaken: used by this verb, not kept past it).
    at: Option<u32>,
    rules: Vec<DnatRule>,
    /// Read from the file (else dumped by this verb).
    from_file: bool,
}

/// One verb's view of the chain, per family.
#[derive(Debug, Default)]
pub struct Tracker {
    /// The generation the verb began at; None: not tracking (no
    /// notification socket, or a read failed).
    start: Option<u32>,
    v4: Option<View>,
    v6: Option<View>,
}

/// The generation after `g` (the kernel skips 0).
fn next(g: u32) -> u32 {
    match g.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

/// Whether generation `a` comes after `b` (counting on from `b`).
fn after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < u32::MAX / 2
}

fn family_v6(msg: &NetfilterMessage) -> Option<bool> {
    match msg.header.family {
        NetfilterProtoFamily::IPv4 => Some(false),
        NetfilterProtoFamily::IPv6 => Some(true),
        _ => None,
    }
}

fn in_dnat(rule: &RuleMessage) -> bool {
    let (mut table, mut chain) = (false, false);
    for a in &rule.attributes {
        match a {
            RuleAttribute::Table(t) => table = t == "nat",
            RuleAttribute::Chain(c) => chain = c == DNAT,
            _ => {}
        }
    }
    table && chain
}

/// What one notification does to a family's chain.
#[derive(Debug)]
enum Change {
    Add(Option<DnatRule>),
    Delete(Option<u64>),
    /// The chain (or its table) went: the family is unknown.
    Gone,
}

impl Change {
    fn of(m: &NfTablesMessage) -> Option<Change> {
        let nat = TableAttribute::Name("nat".into());
        let dnat = ChainAttribute::Name(DNAT.into());
        match m {
            NfTablesMessage::NewRule(r) if in_dnat(r) => Some(Change::Add(DnatRule::of(r))),
            NfTablesMessage::DeleteRule(r) if in_dnat(r) => Some(Change::Delete(handle(r))),
            NfTablesMessage::DeleteChain(c) if c.attributes.contains(&dnat) => Some(Change::Gone),
            NfTablesMessage::DeleteTable(t) if t.attributes.contains(&nat) => Some(Change::Gone),
            _ => None,
        }
    }

    /// Applies the change to `slot`; an unknown rule, or the deletion of
    /// a rule it did not hold, makes the family unknown.
    fn apply(self, slot: &mut Option<View>) {
        let Some(view) = slot.as_mut() else {
            return;
        };
        match self {
            Change::Add(Some(rule)) => view.rules.push(rule),
            Change::Delete(Some(h)) if view.rules.iter().any(|r| r.handle == h) => {
                view.rules.retain(|r| r.handle != h);
            }
            _ => *slot = None,
        }
    }
}

impl Tracker {
    /// Starts tracking: `events` must have joined the notifications
    /// ([`Nfnl::nftables_events`]) before this reads the generation over
    /// `sock`. Without `events`, nothing is tracked (every read dumps).
    pub fn begin(sock: &Nfnl, events: Option<&Nfnl>) -> Tracker {
        if events.is_none() {
            return Tracker::default();
        }
        let Ok(start) = sock.nftables_generation() else {
            return Tracker::default();
        };
        let mut t = Tracker {
            start: Some(start),
            ..Tracker::default()
        };
        if let Some(saved) = state::read_private(FILE)
            .and_then(|bytes| serde_json::from_slice::<Saved>(&bytes).ok())
            .filter(|s| s.genid == start)
        {
            let view = |rules| View {
                at: Some(start),
                rules,
                from_file: true,
            };
            t.v4 = saved.v4.map(view);
            t.v6 = saved.v6.map(view);
        }
        t
    }

    fn slot(&mut self, v6: bool) -> &mut Option<View> {
        if v6 {
            &mut self.v6
        } else {
            &mut self.v4
        }
    }

    /// The chain's rules in the family, from the file or else one dump over
    /// `sock` (None: the dump failed, e.g. no such chain). A dump is true
    /// at the generation read before it when the one read after it is the
    /// same; otherwise it is used by this verb all the same (as without
    /// tracking) but not kept past it.
    pub fn rules(&mut self, sock: &Nfnl, v6: bool) -> Option<&[DnatRule]> {
        if self.slot(v6).is_none() {
            let before = sock.nftables_generation().ok();
            let dumped = rules_of(sock, v6, DNAT)?;
            let rules: Vec<DnatRule> = dumped.iter().filter_map(DnatRule::of).collect();
            let whole = rules.len() == dumped.len();
            let same = before.is_some() && sock.nftables_generation().ok() == before;
            let at = before.filter(|_| whole && same);
            *self.slot(v6) = Some(View {
                at,
                rules,
                from_file: false,
            });
        }
        self.slot(v6).as_ref().map(|v| v.rules.as_slice())
    }

    /// Whether the family's view came from the file (not from a dump of
    /// this verb): what DEL checks against the kernel before deleting by
    /// its handles.
    pub fn from_file(&self, v6: bool) -> bool {
        let slot = if v6 { &self.v6 } else { &self.v4 };
        slot.as_ref().is_some_and(|v| v.from_file)
    }

    /// Applies the notifications `msgs` (in the order the kernel queued
    /// them: each transaction's changes, then its `NFT_MSG_NEWGEN`) up to
    /// the transaction that started generation `end`, each family's only
    /// from transactions after the generation its view is true at; whether
    /// they account for every generation from the start to `end` (else no
    /// view may be kept).
    pub fn apply(&mut self, msgs: Vec<NetfilterMessage>, end: u32) -> bool {
        let Some(start) = self.start else {
            return false;
        };
        let mut generation = start;
        let mut pending: Vec<(bool, Change)> = Vec::new();
        for msg in msgs {
            if generation == end {
                // Later transactions' notifications: not part of `end`.
                break;
            }
            let v6 = family_v6(&msg);
            let NetfilterMessageInner::NfTables(m) = msg.inner else {
                continue;
            };
            if let NfTablesMessage::NewGen(g) = &m {
                let id = g.attributes.iter().find_map(|a| match a {
                    GenAttribute::Id(id) => Some(*id),
                    _ => None,
                });
                // A transaction in flight when the verb began (its
                // generation is the start) or a lost one: stale.
                if id != Some(next(generation)) {
                    return false;
                }
                generation = next(generation);
                for (v6, change) in pending.drain(..) {
                    let slot = self.slot(v6);
                    match slot.as_ref().map(|v| v.at) {
                        Some(Some(at)) if after(generation, at) => change.apply(slot),
                        _ => {}
                    }
                }
            } else if let (Some(v6), Some(change)) = (v6, Change::of(&m)) {
                pending.push((v6, change));
            }
        }
        generation == end
    }

    /// Ends tracking: reads the generation over `sock`, applies what
    /// `events` received, and writes the file at the new generation with
    /// the families known, or removes it when none is. Call under the
    /// netns lock, after the verb's last change.
    pub fn finish(mut self, sock: &Nfnl, events: Option<&Nfnl>) {
        let (Some(events), Some(_)) = (events, self.start) else {
            return;
        };
        let kept = match (sock.nftables_generation(), events.drain()) {
            (Ok(end), Ok(msgs)) => self.apply(msgs, end).then_some(end),
            _ => None,
        };
        let dumped = [&self.v4, &self.v6]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.from_file));
        if kept == self.start && !dumped {
            // Nothing committed and nothing new read: the file says it all.
            return;
        }
        let known = |slot: Option<View>| slot.filter(|v| v.at.is_some()).map(|v| v.rules);
        let (v4, v6) = (known(self.v4), known(self.v6));
        match kept {
            Some(genid) if v4.is_some() || v6.is_some() => {
                let saved = Saved { genid, v4, v6 };
                if let Ok(bytes) = serde_json::to_vec(&saved) {
                    let _ = state::write_private(FILE, &bytes);
                }
            }
            _ => state::remove_private(FILE),
        }
    }
}

/// The family's rules as the file records them, when its generation is
/// still the current one (what the next verb would use without a dump).
pub fn current(sock: &Nfnl, v6: bool) -> Option<Vec<DnatRule>> {
    let saved: Saved = serde_json::from_slice(&state::read_private(FILE)?).ok()?;
    if sock.nftables_generation().ok()? != saved.genid {
        return None;
    }
    if v6 {
        saved.v6
    } else {
        saved.v4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_netfilter::nftables::{ChainMessage, GenMessage};
    use netlink_packet_netfilter::NetfilterHeader;

    fn msg(v6: Option<bool>, m: NfTablesMessage) -> NetfilterMessage {
        let family = match v6 {
            Some(true) => NetfilterProtoFamily::IPv6,
            Some(false) => NetfilterProtoFamily::IPv4,
            None => NetfilterProtoFamily::Unspec,
        };
        NetfilterMessage::new(NetfilterHeader::new(family, 0, 0), m)
    }

    fn gen(id: u32) -> NetfilterMessage {
        msg(
            None,
            NfTablesMessage::NewGen(GenMessage {
                attributes: vec![GenAttribute::Id(id)],
            }),
        )
    }

    fn rule(v6: bool, chain: &str, h: u64, new: bool) -> NetfilterMessage {
        let r = RuleMessage {
            attributes: vec![
                RuleAttribute::Table("nat".into()),
                RuleAttribute::Chain(chain.into()),
                RuleAttribute::Handle(h),
            ],
        };
        let m = if new {
            NfTablesMessage::NewRule(r)
        } else {
            NfTablesMessage::DeleteRule(r)
        };
        msg(Some(v6), m)
    }

    fn view(at: u32, handles: &[u64]) -> Option<View> {
        let rules = handles
            .iter()
            .map(|h| DnatRule {
                handle: *h,
                other_jump: None,
                entry: None,
            })
            .collect();
        Some(View {
            at: Some(at),
            rules,
            from_file: true,
        })
    }

    fn known(start: u32, v4: &[u64]) -> Tracker {
        Tracker {
            start: Some(start),
            v4: view(start, v4),
            v6: None,
        }
    }

    fn handles(view: &Option<View>) -> Option<Vec<u64>> {
        view.as_ref()
            .map(|v| v.rules.iter().map(|x| x.handle).collect())
    }

    #[test]
    fn consecutive_generations_apply_the_chains_rules_and_stop_at_the_end() {
        let mut t = known(7, &[1, 2]);
        let msgs = vec![
            rule(false, DNAT, 3, true),
            rule(false, "CNI-DN-x", 4, true),
            rule(true, DNAT, 5, true),
            gen(8),
            rule(false, DNAT, 1, false),
            gen(9),
            // The next transaction's, after the end.
            rule(false, DNAT, 2, false),
        ];
        assert!(t.apply(msgs, 9));
        assert_eq!(handles(&t.v4), Some(vec![2, 3]));
        assert!(t.v6.is_none(), "an unknown family stays unknown");
    }

    #[test]
    fn a_view_dumped_later_takes_only_later_transactions() {
        // v6 was dumped at 8, after the transaction that started 8.
        let mut t = known(7, &[1]);
        t.v6 = view(8, &[5]);
        let msgs = vec![
            rule(false, DNAT, 2, true),
            rule(true, DNAT, 5, true),
            gen(8),
            rule(true, DNAT, 6, true),
            gen(9),
        ];
        assert!(t.apply(msgs, 9));
        assert_eq!(handles(&t.v4), Some(vec![1, 2]));
        assert_eq!(handles(&t.v6), Some(vec![5, 6]));
    }

    #[test]
    fn a_gap_an_earlier_generation_or_a_missing_end_is_stale() {
        assert!(!known(7, &[1]).apply(vec![gen(9)], 9), "lost one");
        assert!(!known(7, &[1]).apply(vec![gen(7), gen(8)], 8), "in flight");
        assert!(!known(7, &[1]).apply(vec![gen(8)], 9), "end not seen");
        assert!(known(7, &[1]).apply(vec![], 7), "nothing happened");
        let mut t = known(u32::MAX, &[]);
        assert!(t.apply(vec![gen(1)], 1), "the kernel skips 0");
        assert!(!Tracker::default().apply(vec![], 0), "not tracking");
    }

    #[test]
    fn a_deleted_chain_or_an_unknown_rule_forgets_the_family() {
        let delete = ChainMessage {
            attributes: vec![
                ChainAttribute::Table("nat".into()),
                ChainAttribute::Name(DNAT.into()),
            ],
        };
        let mut t = known(1, &[1]);
        assert!(t.apply(
            vec![
                msg(Some(false), NfTablesMessage::DeleteChain(delete)),
                gen(2)
            ],
            2
        ));
        assert_eq!(handles(&t.v4), None);
        let mut t = known(1, &[1]);
        assert!(t.apply(vec![rule(false, DNAT, 9, false), gen(2)], 2));
        assert_eq!(handles(&t.v4), None, "deleting a rule it did not know");
    }
}
