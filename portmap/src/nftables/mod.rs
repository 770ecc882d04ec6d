//! The nftables backend: one `inet` table of ours, whose skeleton
//! ([`skeleton`]) is created once and whose per-pod state is set elements
//! ([`elements`]) carrying the owner as comment, plus a chain only for pods
//! with conditions ([`ruleset`]). Elements travel over nfnetlink
//! ([`nfnl`], bytes the crate lacks in `raw.rs`); the skeleton, pod chains,
//! listings ([`installed`]) and fallbacks go through `nft` (`nft.rs`);
//! gaps of the `nftables` crate's schema are patched in `schema_gaps.rs`.
//! [`Nftables`] is the [`crate::backend::Firewall`] the verbs call.
//!
//! Cost per verb on a prepared host (why it does not grow with pods):
//! - Every verb opens one nfnetlink socket and closes it once, in the
//!   background; the takeover probe of [`crate::upstream`] (two GETs per
//!   family, no process on a clean node) runs on it too.
//! - Every verb but CHECK first checks the layout's sentinels (one GET per
//!   map and set in one send) and heals after a flush ([`heal`]); STATUS
//!   proves nat and fib from the committed layout or a dry run ([`probe`]).
//! - ADD of a new attachment: a netlink look-up of the keys its hostIPs
//!   overlap (Kubernetes' rule, [`crate::plan::MapKey::conflicts_with`]),
//!   then one nfnetlink transaction `create`s its DNAT
//!   elements (EEXIST ⇒ someone's hostPort: list once, then refuse naming
//!   the owner, or replace our own) and adds its masquerade elements; then
//!   the index file. No `nft` process, no listing, no deletion. The skeleton
//!   is created only when it is missing (P10).
//! - DEL: reads the index, fetches those elements' comments and deletes the
//!   ones still ours in one transaction (no index: list once and delete by
//!   comment with `nft`). Deleting makes closing an nfnetlink socket wait
//!   for an RCU grace period; that close happens in a forked child (see
//!   [`cni::netlink::netfilter`]).
//! - CHECK of an attachment without a pod chain: one GET per element the
//!   plan wants and per element its index lists besides, in one send
//!   (`element_differences` in `apply.rs`); no `nft`.
//! - Attachments with conditions keep a pod chain and go through `nft`.
//!
//! Localhost: `127.0.0.1:hostPort` works for IPv4 (DNAT in `output`,
//! masquerade, and `route_localnet=1` through [`crate::localnet`]).

mod apply;
pub mod elements;
pub mod heal;
pub mod installed;
pub mod nfnl;
mod nft;
pub mod probe;
mod raw;
pub mod ruleset;
mod schema_gaps;
pub mod skeleton;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use cni::args::Owner;
use cni::types::Attachment;
use cni::{CniError, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::elements::SetElement;
use self::installed::Listing;
use self::nfnl::{Nfnl, NfnlError};
use self::nft::{Nft, NftError};
use self::ruleset::{delete_batch, list_table_batch, NftPod};
use crate::backend::Firewall;
use crate::plan::{MapKey, PodPlan};
use crate::state::{self, NetnsLock};
use crate::upstream;

/// What one attachment's ADD installed (its index file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// The owner comment on every element.
    pub comment: String,
    /// Every element the ADD installed.
    pub elements: Vec<SetElement>,
    /// The pod chain (attachments with conditions only).
    pub chain: Option<String>,
    /// The nft batch that recreates the pod chain and its rules (with
    /// `chain`; absent in indexes written before healing existed).
    #[serde(default)]
    pub chain_batch: Option<Value>,
}

fn nft_err(what: impl std::fmt::Display, e: NftError) -> CniError {
    match e {
        NftError::Spawn { .. } => CniError::new(
            ErrorCode::PluginNotAvailable,
            format!("portmap: {what}: {e}"),
        ),
        NftError::Failed { .. } => CniError::internal(format!("portmap: {what}: {e}")),
    }
}

fn nfnl_err(what: impl std::fmt::Display, e: NfnlError) -> CniError {
    CniError::internal(format!("portmap: {what}: {e}"))
}

/// Our whole table; a missing table is an empty listing.
fn list_table(nft: &Nft) -> Result<Listing, CniError> {
    match nft.apply(&list_table_batch()) {
        Ok(out) => Ok(Listing::parse(&out)),
        Err(e) if e.is_not_found() => Ok(Listing::default()),
        Err(e) => Err(nft_err("listing nftables state", e)),
    }
}

fn open_nfnl() -> Result<Nfnl, CniError> {
    Nfnl::open().map_err(|e| nfnl_err("opening nfnetlink", e))
}

/// Closes `nf` in the background, where the stale UDP conntrack of the
/// keys a verb touched (none when it failed) is flushed first, but for
/// entries already NATed to one of `keep`: the runtime does not wait for
/// the dump of the conntrack table.
fn close_flushing_udp(
    nf: Nfnl,
    touched: Result<BTreeSet<MapKey>, CniError>,
    keep: &BTreeSet<SocketAddr>,
) -> Result<(), CniError> {
    match &touched {
        Ok(keys) if crate::conntrack::has_udp(keys) => {
            nf.close_in_background_after(|sock| crate::conntrack::flush_udp(sock, keys, keep));
        }
        _ => nf.close_in_background(),
    }
    touched.map(drop)
}

/// The nftables backend (the default).
#[derive(Debug, Clone, Default)]
pub struct Nftables {
    nft: Nft,
}

impl Firewall for Nftables {
    fn add(&self, plan: &PodPlan) -> Result<(), CniError> {
        if plan.is_empty() {
            return Ok(());
        }
        let pod = NftPod::new(plan);
        let lock = NetnsLock::take()?;
        let previous = state::read_index::<Index>(&plan.owner)?;
        let mut nf = open_nfnl()?;
        let result = upstream::refuse_conflicts(nf.socket(), &plan.owner, &plan.keys())
            .and_then(|_| heal::ensure_whole(&self.nft, &mut nf, true))
            .and_then(|_| apply::add(&pod, &self.nft, &mut nf, previous));
        // The conntrack cleanup and the close need no lock; the fork of
        // their child is not every other verb's wait.
        drop(lock);
        close_flushing_udp(nf, result, &plan.udp_targets())
    }

    fn check(&self, plan: &PodPlan) -> Result<(), CniError> {
        let pod = NftPod::new(plan);
        let mut nf = open_nfnl()?;
        let mine = match &plan.chain {
            // Pod chains and their rules are read from a listing.
            Some(_) => list_table(&self.nft).map(|l| apply::differences(&l, &pod)),
            None => state::read_index::<Index>(&plan.owner).and_then(|index| {
                apply::element_differences(&mut nf, &pod, index.as_ref())
                    .map_err(|e| nfnl_err(format!("checking {}", plan.owner.tag()), e))
            }),
        };
        let left = mine.and_then(|mut problems| {
            let left =
                upstream::leftovers(nf.socket(), &plan.owner.network, &plan.owner.container_id)?;
            problems.extend(left);
            Ok(problems)
        });
        nf.close_in_background();
        let problems = left?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CniError::internal(format!(
                "portmap: check of {}: {}",
                plan.owner.tag(),
                problems.join("; ")
            )))
        }
    }

    fn del(&self, owner: &Owner, extra_udp: &BTreeSet<MapKey>) -> Result<(), CniError> {
        let lock = NetnsLock::take()?;
        let mut nf = open_nfnl()?;
        let touched = apply::del(owner, &self.nft, &mut nf, extra_udp);
        // Healing after the delete, so this attachment is not rebuilt; its
        // conntrack flush happens whether or not healing succeeded.
        let healed = match touched {
            Ok(_) => heal::ensure_whole(&self.nft, &mut nf, false).map(drop),
            Err(_) => Ok(()),
        };
        // Upstream's rules for the same container go too (DEL keeps going
        // past a failure above; the first error is reported).
        let theirs = upstream::del(nf.socket(), &owner.network, &owner.container_id);
        drop(lock);
        close_flushing_udp(nf, touched, &BTreeSet::new())
            .and(healed)
            .and(theirs)
    }

    fn gc(&self, network: &str, valid: &[Attachment]) -> Result<(), CniError> {
        let _lock = NetnsLock::take()?;
        state::prune_dead()?;
        forget_stale_indexes(network, valid)?;
        let mut nf = open_nfnl()?;
        let healed = heal::ensure_whole(&self.nft, &mut nf, false);
        let ids = valid.iter().map(|a| a.container_id.clone()).collect();
        let theirs = upstream::gc(nf.socket(), network, &ids);
        nf.close_in_background();
        healed?;
        theirs?;
        let table = list_table(&self.nft)?;
        let (elements, chains, owners) = stale(&table, network, valid);
        if !elements.is_empty() || !chains.is_empty() {
            self.nft
                .apply(&delete_batch(&elements, &chains))
                .map_err(|e| {
                    nft_err(
                        format!("garbage-collecting hostPort DNAT of network {network}"),
                        e,
                    )
                })?;
        }
        for o in &owners {
            state::remove_index(o)?;
        }
        if !elements.is_empty() {
            close_flushing_udp(
                open_nfnl()?,
                Ok(apply::dnat_keys(&elements)),
                &BTreeSet::new(),
            )?;
        }
        Ok(())
    }

    fn status(&self) -> Result<(), CniError> {
        if !self.nft.installed() {
            return Err(CniError::new(
                ErrorCode::PluginNotAvailable,
                "portmap: nftables is not usable: nft is not on PATH".to_string(),
            ));
        }
        let not_usable = |e: &dyn std::fmt::Display| {
            CniError::new(
                ErrorCode::PluginNotAvailable,
                format!("portmap: nftables is not usable: {e}"),
            )
        };
        let mut nf = Nfnl::open().map_err(|e| not_usable(&e))?;
        // Common case: a whole layout, whose nat chain and fib rule prove
        // the kernel can do the work (no lock, no transaction, no nft).
        if heal::is_whole(&mut nf).unwrap_or(false) && probe::layout_proves_nat_and_fib(nf.socket())
        {
            return Ok(());
        }
        probe::nat_and_fib_usable(nf.socket()).map_err(|e| not_usable(&e))?;
        // Usable but not whole (a fresh host, or a flush): build it and
        // replay every attachment, so that the next STATUS is cheap and
        // success means hostPorts work.
        let _lock = NetnsLock::take()?;
        let layout = heal::ensure_whole(&self.nft, &mut nf, true);
        nf.close_in_background();
        match layout? {
            heal::Layout::Healed {
                whole: false,
                restored,
                attachments,
            } => Err(not_usable(&format!(
                "table inet {} is still incomplete after restoring {restored} of {attachments} attachments",
                elements::TABLE
            ))),
            _ => Ok(()),
        }
    }
}

/// Removes the index files of `network`'s attachments that are not in
/// `valid` (GC), whatever the kernel still holds: after a flush their
/// elements are gone, and healing must not bring them back.
fn forget_stale_indexes(network: &str, valid: &[Attachment]) -> Result<(), CniError> {
    for index in state::read_indexes::<Index>()? {
        let Some(o) = Owner::parse_tag(&index.comment) else {
            continue;
        };
        let live = valid
            .iter()
            .any(|a| a.container_id == o.container_id && a.ifname == o.ifname);
        if o.network == network && !live {
            state::remove_index(&o)?;
        }
    }
    Ok(())
}

/// The elements, pod chains and owners of `network`'s attachments that are
/// not in `valid`.
fn stale(
    table: &Listing,
    network: &str,
    valid: &[Attachment],
) -> (Vec<SetElement>, BTreeSet<String>, Vec<Owner>) {
    let keep: BTreeSet<(String, String)> = valid
        .iter()
        .map(|a| (a.container_id.clone(), a.ifname.clone()))
        .collect();
    let stale_owner = |comment: &str| {
        Owner::parse_tag(comment).filter(|o| {
            o.network == network && !keep.contains(&(o.container_id.clone(), o.ifname.clone()))
        })
    };
    let mut owners = BTreeSet::new();
    let mut chains = BTreeSet::new();
    for (chain, comment) in table.pod_chain_comments() {
        if let Some(o) = stale_owner(&comment) {
            chains.insert(chain);
            owners.insert(o.tag());
        }
    }
    let mut elements = Vec::new();
    for e in &table.elements {
        if let Some(o) = e.comment.as_deref().and_then(stale_owner) {
            elements.push(e.element.clone());
            owners.insert(o.tag());
        }
    }
    let owners = owners.iter().filter_map(|t| Owner::parse_tag(t)).collect();
    (elements, chains, owners)
}

/// The raw JSON of everything in our table (tests and debugging).
pub fn dump() -> Result<Value, CniError> {
    let out = Nft::default()
        .apply(&list_table_batch())
        .map_err(|e| nft_err("listing nftables state", e))?;
    serde_json::from_str(&out)
        .map_err(|e| CniError::internal(format!("portmap: parsing nft output: {e}")))
}
