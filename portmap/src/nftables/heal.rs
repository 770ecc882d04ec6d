//! Healing after a firewall flush (`nft flush ruleset`, `nft delete table`,
//! a flush of one map or set): every map and set of our table holds one
//! *sentinel* element that no packet can match (protocol 255, port
//! [`LAYOUT_VERSION`],
//! address 0.0.0.0 / ::) carrying [`SENTINEL_COMMENT`]. One GET per
//! sentinel, in one send, tells whether the layout is whole — no `nft`
//! process and no dump on the common path. When one is missing, the
//! skeleton is re-applied, the sentinels re-added and every attachment's
//! index (which holds its elements, comment and pod-chain batch) replayed,
//! so the hostPorts of live attachments come back; attachments DEL removed
//! have no index and stay gone. Runs under the caller's netns lock.

use cni::CniError;
use netlink_packet_netfilter::nftables::{DataAttribute, Verdict, VerdictAttribute};

use super::elements::{cond_map_name, map_name, port_map_name, SetElement, MAPS, MASQ_SETS};
use super::nfnl::{ElementOp, Nfnl, RawMember};
use super::nft::Nft;
use super::skeleton::skeleton_batch;
use super::{nfnl_err, nft_err, Index};
use crate::plan::Family;
use crate::state;

/// The comment of the sentinels (no `/`: never read as an owner tag).
pub const SENTINEL_COMMENT: &str = "cni-portmap layout sentinel";

/// The protocol number of sentinel keys (reserved: no packet carries it).
const SENTINEL_PROTO: u8 = 255;

/// The skeleton's layout version, carried as the sentinels' port. Bump it
/// whenever [`skeleton_batch`] changes (a new rule, map or set): a table
/// written by an older release then lacks this version's sentinels, so the
/// next verb re-applies the skeleton (chains are flushed and rewritten,
/// maps and sets keep their elements) and every node picks up the change
/// without a restart. Version 1: the first with sentinels, and with the
/// 127.0.0.0/8 drop in `prerouting`.
pub const LAYOUT_VERSION: u16 = 1;

fn zero_addr(family: Family) -> Vec<u8> {
    match family {
        Family::V4 => vec![0; 4],
        Family::V6 => vec![0; 16],
    }
}

/// One sentinel per map and set of the skeleton.
pub fn sentinels() -> Vec<RawMember> {
    let mut out = Vec::new();
    for (family, host_ip) in MAPS {
        let mut key = if host_ip {
            zero_addr(family)
        } else {
            Vec::new()
        };
        let [hi, lo] = LAYOUT_VERSION.to_be_bytes();
        key.extend_from_slice(&[SENTINEL_PROTO, 0, 0, 0, hi, lo, 0, 0]);
        let member = |set: String, data: DataAttribute| RawMember {
            set,
            key: key.clone(),
            data: Some(data),
        };
        out.push(member(
            map_name(family, host_ip),
            DataAttribute::Value(zero_addr(family)),
        ));
        out.push(member(
            port_map_name(family, host_ip),
            DataAttribute::Value(vec![0, 0]),
        ));
        out.push(member(
            cond_map_name(family, host_ip),
            DataAttribute::Verdict(vec![VerdictAttribute::Code(Verdict::Continue)]),
        ));
    }
    for (set, family) in MASQ_SETS {
        let mut key = zero_addr(family);
        if set.starts_with("masq_hairpin") {
            key.extend(zero_addr(family));
        }
        out.push(RawMember {
            set: set.to_string(),
            key,
            data: None,
        });
    }
    out
}

/// Whether every map and set of our table is there with its sentinel.
pub fn is_whole(nf: &mut Nfnl) -> Result<bool, CniError> {
    let present = nf
        .present(&sentinels())
        .map_err(|e| nfnl_err("checking the nftables layout", e))?;
    Ok(present.iter().all(|p| *p))
}

/// What [`ensure_whole`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Whole, nothing done.
    Whole,
    /// Missing, and no attachment needed it (nothing created).
    NotNeeded,
    /// Rebuilt: `restored` of `attachments` indexes replayed; `whole` says
    /// whether the layout is whole afterwards.
    Healed {
        /// Indexes replayed successfully.
        restored: usize,
        /// Indexes found.
        attachments: usize,
        /// The layout is whole after healing.
        whole: bool,
    },
}

/// Makes the layout whole: nothing when it is; else (when an index exists,
/// or `create` because the caller is about to add elements) the skeleton,
/// the sentinels and every index replayed. An index that cannot be
/// replayed (its key was taken meanwhile, say) is skipped; its pod keeps
/// its state file, and GC or its DEL cleans it.
pub fn ensure_whole(nft: &Nft, nf: &mut Nfnl, create: bool) -> Result<Layout, CniError> {
    if is_whole(nf)? {
        return Ok(Layout::Whole);
    }
    let indexes: Vec<Index> = state::read_indexes()?;
    if indexes.is_empty() && !create {
        return Ok(Layout::NotNeeded);
    }
    rebuild(nft, nf)?;
    let restored = indexes
        .iter()
        .filter(|i| replay(nft, nf, i).is_ok())
        .count();
    Ok(Layout::Healed {
        restored,
        attachments: indexes.len(),
        whole: is_whole(nf)?,
    })
}

/// Attempts at rebuilding the skeleton when a flush races the rebuild.
const REBUILD_ATTEMPTS: usize = 3;

/// The skeleton, then the sentinels; again (bounded) when another flush
/// removes the table in between.
fn rebuild(nft: &Nft, nf: &mut Nfnl) -> Result<(), CniError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        nft.apply(&skeleton_batch())
            .map_err(|e| nft_err(format!("creating table inet {}", super::elements::TABLE), e))?;
        match nf.add_raw(&sentinels(), SENTINEL_COMMENT) {
            Ok(()) => return Ok(()),
            Err(e) if e.is_not_found() && attempt < REBUILD_ATTEMPTS => {}
            Err(e) => return Err(nfnl_err("adding the layout sentinels", e)),
        }
    }
}

/// Re-adds what one index lists (`add` semantics: what survived is kept):
/// a pod with conditions through its stored nft batch, others over
/// nfnetlink.
fn replay(nft: &Nft, nf: &mut Nfnl, index: &Index) -> Result<(), CniError> {
    let what = || format!("restoring hostPort DNAT ({})", index.comment);
    if let Some(batch) = &index.chain_batch {
        return nft.apply(batch).map(drop).map_err(|e| nft_err(what(), e));
    }
    let shared: Vec<SetElement> = index
        .elements
        .iter()
        .map(|e| SetElement {
            exclusive: false,
            ..e.clone()
        })
        .collect();
    let ops: Vec<ElementOp<'_>> = shared
        .iter()
        .map(|e| ElementOp::Add(e, &index.comment))
        .collect();
    nf.transact(&ops).map_err(|e| nfnl_err(what(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sentinel_per_map_and_set_with_keys_of_its_type() {
        let s = sentinels();
        assert_eq!(s.len(), MAPS.len() * 3 + MASQ_SETS.len());
        let len = |set: &str| s.iter().find(|m| m.set == set).map(|m| m.key.len());
        assert_eq!(len("hostip_v4"), Some(12));
        assert_eq!(len("ports_v6"), Some(8));
        assert_eq!(len("hostip_v6_port"), Some(24));
        assert_eq!(len("masq_hairpin_v6"), Some(32));
        assert_eq!(len("masq_all_v4"), Some(4));
        assert!(cni::args::Owner::parse_tag(SENTINEL_COMMENT).is_none());
    }
}
