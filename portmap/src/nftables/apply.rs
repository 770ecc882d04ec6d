//! The nftables backend's changes: ADD (hot path over nfnetlink, pods with
//! conditions through `nft`), the same-owner replacement and foreign-owner
//! refusal, and the removal DEL and a failed ADD share. Every entry point
//! runs under the caller's [`crate::state::NetnsLock`] (P12) and with one
//! [`NftPod`] computed by the caller.

use std::collections::BTreeSet;

use cni::args::Owner;
use cni::CniError;

use super::elements::{ElementData, SetElement};
use super::installed::Listing;
use super::nfnl::{ElementOp, Nfnl, NfnlError};
use super::nft::{Nft, NftError};
use super::ruleset::{delete_batch, NftPod};
use super::skeleton::skeleton_batch;
use super::{list_table, nfnl_err, nft_err, Index};
use crate::config::Protocol;
use crate::plan::{self, Family, MapKey};
use crate::state;

/// A kernel refusal that can mean "the skeleton is missing" or "a created
/// object exists": both transports report these.
trait Refusal {
    fn is_not_found(&self) -> bool;
    fn is_exists(&self) -> bool;
}

impl Refusal for NftError {
    fn is_not_found(&self) -> bool {
        NftError::is_not_found(self)
    }
    fn is_exists(&self) -> bool {
        NftError::is_exists(self)
    }
}

impl Refusal for NfnlError {
    fn is_not_found(&self) -> bool {
        NfnlError::is_not_found(self)
    }
    fn is_exists(&self) -> bool {
        NfnlError::is_exists(self)
    }
}

/// The one retry policy of ADD: runs `attempt`; a missing table, map or
/// set (ENOENT) creates the skeleton and runs it once more; an existing
/// key or chain (EEXIST) goes to [`replace`], which refuses foreign owners.
fn create_or_replace<E: Refusal>(
    nft: &Nft,
    pod: &NftPod<'_>,
    mut attempt: impl FnMut() -> Result<(), E>,
    fail: impl FnOnce(E) -> CniError,
) -> Result<(), CniError> {
    let result = match attempt() {
        Err(e) if e.is_not_found() => {
            nft.apply(&skeleton_batch()).map_err(|e| {
                nft_err(format!("creating table inet {}", super::elements::TABLE), e)
            })?;
            attempt()
        }
        other => other,
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.is_exists() => replace(nft, pod),
        Err(e) => Err(fail(e)),
    }
}

pub(super) fn dnat_keys<'a>(
    elements: impl IntoIterator<Item = &'a SetElement>,
) -> BTreeSet<MapKey> {
    elements
        .into_iter()
        .filter_map(MapKey::from_element)
        .collect()
}

/// The elements of `candidates` that still carry `comment`.
fn still_ours(
    nf: &mut Nfnl,
    candidates: &[SetElement],
    comment: &str,
) -> Result<Vec<SetElement>, NfnlError> {
    let refs: Vec<&SetElement> = candidates.iter().collect();
    let comments = nf.comments(&refs)?;
    Ok(candidates
        .iter()
        .zip(comments)
        .filter(|(_, c)| c.as_deref() == Some(comment))
        .map(|(e, _)| e.clone())
        .collect())
}

/// ADD under the lock: installs `pod` (replacing what a previous ADD of
/// the same owner left) and records the index. Returns the DNAT keys
/// whose stale UDP conntrack the caller flushes (in the background).
pub(super) fn add(
    pod: &NftPod<'_>,
    nft: &Nft,
    nf: &mut Nfnl,
    previous: Option<Index>,
) -> Result<BTreeSet<MapKey>, CniError> {
    let plan = pod.plan;
    refuse_overlaps(nf, pod)?;
    let needs_nft = plan.chain.is_some() || previous.as_ref().is_some_and(|i| i.chain.is_some());
    match (&previous, needs_nft) {
        (Some(_), true) => replace(nft, pod)?,
        (None, true) => create_or_replace(
            nft,
            pod,
            || nft.apply(&pod.add_batch()).map(drop),
            |e| nft_err(format!("adding hostPort DNAT for {}", plan.owner.tag()), e),
        )?,
        (_, false) => add_elements(pod, nft, nf, previous.as_ref())?,
    }
    let index = Index {
        comment: plan.comment.clone(),
        elements: pod.elements.clone(),
        chain: plan.chain.clone(),
        chain_batch: pod.chain_batch(),
    };
    let undo = |nf: &mut Nfnl| {
        let _ = remove_installed(nf, nft, &index);
        let _ = state::remove_index(&plan.owner);
    };
    if let Err(e) = state::write_index(&plan.owner, &index) {
        undo(nf);
        return Err(e);
    }
    Ok(dnat_keys(&pod.elements))
}

/// The hot path: one nfnetlink transaction that deletes what a previous
/// ADD of this owner left and creates the pod's elements.
fn add_elements(
    pod: &NftPod<'_>,
    nft: &Nft,
    nf: &mut Nfnl,
    previous: Option<&Index>,
) -> Result<(), CniError> {
    let plan = pod.plan;
    let what = || format!("adding hostPort DNAT for {}", plan.owner.tag());
    let old = match previous {
        Some(index) => {
            still_ours(nf, &index.elements, &plan.comment).map_err(|e| nfnl_err(what(), e))?
        }
        None => Vec::new(),
    };
    let mut ops: Vec<ElementOp<'_>> = old.iter().map(ElementOp::Delete).collect();
    ops.extend(
        pod.elements
            .iter()
            .map(|e| ElementOp::Add(e, &plan.comment)),
    );
    create_or_replace(nft, pod, || nf.transact(&ops), |e| nfnl_err(what(), e))
}

/// Slow path of ADD: a DNAT key or the pod chain exists. Refuse foreign
/// owners; replace our own state atomically.
fn replace(nft: &Nft, pod: &NftPod<'_>) -> Result<(), CniError> {
    let plan = pod.plan;
    let listing = list_table(nft)?;
    let conflicts = conflicts(&listing, pod);
    if !conflicts.is_empty() {
        return Err(refusal(plan, &conflicts));
    }
    let old: Vec<SetElement> = listing.elements_of(&plan.comment).into_iter().collect();
    let chains = listing.chain_named(&plan::chain_name(&plan.owner));
    nft.apply(&pod.replace_batch(&old, &chains))
        .map(drop)
        .map_err(|e| {
            nft_err(
                format!("replacing hostPort DNAT for {}", plan.owner.tag()),
                e,
            )
        })
}

/// Each key of `pod` that conflicts ([`MapKey::conflicts_with`]) with a
/// DNAT key another owner holds in `listing`, described.
fn conflicts(listing: &Listing, pod: &NftPod<'_>) -> Vec<String> {
    let mine = pod.plan.keys();
    let mut out = Vec::new();
    for have in &listing.elements {
        let Some(theirs) = MapKey::from_element(&have.element) else {
            continue;
        };
        if have.comment.as_deref() == Some(pod.plan.comment.as_str()) {
            continue;
        }
        for k in mine.iter().filter(|k| k.conflicts_with(&theirs)) {
            out.push(conflict_line(k, &theirs, have.comment.as_deref()));
        }
    }
    out
}

fn conflict_line(mine: &MapKey, theirs: &MapKey, who: Option<&str>) -> String {
    mine.conflict_text(theirs, who.unwrap_or("an unknown owner"))
}

/// The refusal of an ADD whose keys conflict with another attachment's.
fn refusal(plan: &plan::PodPlan, conflicts: &[String]) -> CniError {
    CniError::internal(format!(
        "portmap: adding hostPort DNAT for {}: {}",
        plan.owner.tag(),
        conflicts.join("; ")
    ))
    .with_details("a hostIP:hostPort/protocol can be mapped by one attachment at a time (a hostIP overlaps the wildcard of its family); delete the other attachment first")
}

/// Refuses keys of `pod` that overlap another owner's key in the *other*
/// DNAT map of their family (a specific hostIP against the wildcard; exact
/// duplicates are the kernel's EEXIST, see [`replace`]): one GET per
/// specific key of the wildcard it overlaps, and for wildcard keys one dump
/// of that family's `hostip_*` map (small: hostIP mappings are rare).
fn refuse_overlaps(nf: &mut Nfnl, pod: &NftPod<'_>) -> Result<(), CniError> {
    let plan = pod.plan;
    let keys = plan.keys();
    let what = || format!("adding hostPort DNAT for {}", plan.owner.tag());
    let mine = |c: &Option<String>| c.as_deref() == Some(plan.comment.as_str());
    let mut found = Vec::new();
    let wildcards: Vec<(MapKey, SetElement)> = keys
        .iter()
        .filter(|k| k.host_ip.is_some())
        .map(|k| {
            let w = MapKey {
                host_ip: None,
                ..*k
            };
            let probe = SetElement {
                set: w.map_name(),
                key: w.fields(),
                data: ElementData::None,
                exclusive: true,
            };
            (w, probe)
        })
        .collect();
    let probes: Vec<&SetElement> = wildcards.iter().map(|(_, e)| e).collect();
    let comments = nf.comments(&probes).map_err(|e| nfnl_err(what(), e))?;
    for ((w, _), c) in wildcards.iter().zip(&comments) {
        if c.is_some() && !mine(c) {
            for k in keys.iter().filter(|k| k.conflicts_with(w)) {
                found.push(conflict_line(k, w, c.as_deref()));
            }
        }
    }
    for family in [Family::V4, Family::V6] {
        let wild: Vec<&MapKey> = keys
            .iter()
            .filter(|k| k.family == family && k.host_ip.is_none())
            .collect();
        if wild.is_empty() {
            continue;
        }
        let listed = nf
            .elements(&super::elements::map_name(family, true))
            .map_err(|e| nfnl_err(what(), e))?;
        for (bytes, c) in &listed {
            let Some(theirs) = hostip_key(family, bytes) else {
                continue;
            };
            if mine(c) {
                continue;
            }
            for k in wild.iter().filter(|k| k.conflicts_with(&theirs)) {
                found.push(conflict_line(k, &theirs, c.as_deref()));
            }
        }
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(refusal(plan, &found))
    }
}

/// A `hostip_*` element's key bytes as a registry key.
fn hostip_key(family: Family, bytes: &[u8]) -> Option<MapKey> {
    let (ip, number, port) = super::raw::decode_hostip_key(family == Family::V6, bytes)?;
    let protocol = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
        .into_iter()
        .find(|p| p.number() == number)?;
    Some(MapKey {
        family,
        host_ip: Some(ip),
        protocol,
        port,
    })
}

/// Deletes what `index` lists and still carries its comment: over
/// nfnetlink, or with `nft` when there is a pod chain. Returns the DNAT keys
/// that went.
pub(super) fn remove_installed(
    nf: &mut Nfnl,
    nft: &Nft,
    index: &Index,
) -> Result<BTreeSet<MapKey>, CniError> {
    let what = || format!("deleting hostPort DNAT ({})", index.comment);
    let ours = still_ours(nf, &index.elements, &index.comment).map_err(|e| nfnl_err(what(), e))?;
    match &index.chain {
        None => {
            let ops: Vec<ElementOp<'_>> = ours.iter().map(ElementOp::Delete).collect();
            nf.transact(&ops).map_err(|e| nfnl_err(what(), e))?;
        }
        Some(chain) => {
            let chains = list_table(nft)?.chain_named(chain);
            if !ours.is_empty() || !chains.is_empty() {
                nft.apply(&delete_batch(&ours, &chains))
                    .map_err(|e| nft_err(what(), e))?;
            }
        }
    }
    Ok(dnat_keys(&ours))
}

/// DEL under the lock: removes what the index names (or, without one, what
/// a listing attributes to `owner`) and the index. Returns the keys whose
/// stale UDP conntrack the caller flushes (in the background).
pub(super) fn del(
    owner: &Owner,
    nft: &Nft,
    nf: &mut Nfnl,
    extra_udp: &BTreeSet<MapKey>,
) -> Result<BTreeSet<MapKey>, CniError> {
    let mut keys = match state::read_index::<Index>(owner)? {
        Some(index) => remove_installed(nf, nft, &index)?,
        None => {
            let comment = plan::comment(owner);
            let listing = list_table(nft)?;
            let elements: Vec<SetElement> = listing.elements_of(&comment).into_iter().collect();
            let chains = listing.chain_named(&plan::chain_name(owner));
            if !elements.is_empty() || !chains.is_empty() {
                nft.apply(&delete_batch(&elements, &chains)).map_err(|e| {
                    nft_err(format!("deleting hostPort DNAT for {}", owner.tag()), e)
                })?;
            }
            dnat_keys(&elements)
        }
    };
    state::remove_index(owner)?;
    keys.extend(extra_udp.iter().copied());
    Ok(keys)
}

/// CHECK's comparison of what is installed with `pod`: one line per
/// missing or unexpected element, chain or DNAT rule.
pub(super) fn differences(listing: &Listing, pod: &NftPod<'_>) -> Vec<String> {
    let plan = pod.plan;
    let mut problems = Vec::new();
    let installed = listing.elements_of(&plan.comment);
    let wanted: BTreeSet<SetElement> = pod.elements.iter().cloned().collect();
    problems.extend(wanted.difference(&installed).map(missing));
    problems.extend(installed.difference(&wanted).map(unexpected));
    if let Some(chain) = &plan.chain {
        if !listing.chains.contains(chain) {
            problems.push(format!("chain {chain} is missing"));
        }
        let have: BTreeSet<_> = listing.rules_of(chain).filter_map(|r| r.dnat).collect();
        let want: BTreeSet<_> = plan.effective_dnats().into_iter().collect();
        for d in want.difference(&have) {
            problems.push(format!("missing dnat {d} in {chain}"));
        }
        for d in have.difference(&want) {
            problems.push(format!("unexpected dnat {d} in {chain}"));
        }
    }
    problems
}

fn missing(e: &SetElement) -> String {
    let kind = if e.data == ElementData::None {
        "set"
    } else {
        "map"
    };
    format!("missing {kind} element {e}")
}

fn unexpected(e: &SetElement) -> String {
    format!("unexpected element {e}")
}

/// [`differences`] for an attachment without a pod chain, over nfnetlink
/// (no `nft`, no listing): one GET per element the plan wants and per
/// element `index` (its last ADD) lists besides, in one send. An element
/// counts as installed when it carries the plan's comment; a map element
/// whose value differs is missing (the wanted one) and unexpected (the one
/// installed, as the kernel holds it), as in the listing's comparison.
pub(super) fn element_differences(
    nf: &mut Nfnl,
    pod: &NftPod<'_>,
    index: Option<&Index>,
) -> Result<Vec<String>, NfnlError> {
    let comment = pod.plan.comment.as_str();
    let wanted: BTreeSet<SetElement> = pod.elements.iter().cloned().collect();
    let same_key = |a: &SetElement, b: &SetElement| a.set == b.set && a.key == b.key;
    let mut candidates: Vec<&SetElement> = wanted.iter().collect();
    if let Some(index) = index {
        candidates.extend(
            index
                .elements
                .iter()
                .filter(|e| !wanted.iter().any(|w| same_key(w, e))),
        );
    }
    let found = nf.lookup(&candidates)?;
    let (mut absent, mut extra) = (Vec::new(), Vec::new());
    for (e, installed) in candidates.iter().zip(found) {
        let Some(installed) = installed.filter(|i| i.comment.as_deref() == Some(comment)) else {
            if wanted.contains(*e) {
                absent.push(missing(e));
            }
            continue;
        };
        let have = match (&e.data, &installed.data) {
            (ElementData::Fields(like), Some(bytes)) => super::raw::decode_fields(like, bytes)
                .map(ElementData::Fields)
                .unwrap_or_else(|| e.data.clone()),
            _ => e.data.clone(),
        };
        let have = SetElement {
            data: have,
            ..(*e).clone()
        };
        let wrong = match (&e.data, &installed.data) {
            (ElementData::Fields(v), Some(bytes)) => super::raw::encode_fields(v) != *bytes,
            _ => false,
        };
        if !wanted.contains(*e) {
            extra.push(unexpected(&have));
        } else if wrong {
            absent.push(missing(e));
            extra.push(unexpected(&have));
        }
    }
    absent.append(&mut extra);
    Ok(absent)
}
