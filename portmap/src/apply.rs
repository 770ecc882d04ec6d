//! The kernel side of portmap: applies, inspects and deletes plans in the
//! current (host) netns — set elements over nfnetlink ([`crate::nfnl`]),
//! the skeleton, listings and pod chains through `nft` ([`crate::nft`]),
//! stale UDP conntrack ([`crate::conntrack`]) and `route_localnet` on the
//! host interface that routes to the pod. Every mutation holds the per-netns
//! flock (P12).
//!
//! Cost per verb on a prepared host (why it does not grow with pods):
//! - ADD of a new attachment: one nfnetlink transaction `create`s its DNAT
//!   elements (EEXIST ⇒ someone's hostPort: list once, then refuse naming
//!   the owner, or replace our own) and adds its masquerade elements; then
//!   the index file. No `nft` process, no listing, no deletion. The skeleton
//!   is created only when that transaction says ENOENT (P10).
//! - DEL: reads the index, fetches those elements' comments and deletes the
//!   ones still ours in one transaction (no index: list once and delete by
//!   comment with `nft`). Deleting makes closing an nfnetlink socket wait
//!   for an RCU grace period; that close happens in a forked child (see
//!   [`crate::nfnl`]).
//! - Attachments with conditions keep a pod chain and go through `nft`.
//!
//! Localhost: `127.0.0.1:hostPort` works for IPv4 (DNAT in `output`,
//! masquerade, and `route_localnet=1` on the one host interface that routes to
//! the pod). `[::1]:hostPort` does not work and cannot: IPv6 has no
//! `route_localnet`, and the kernel drops packets with source `::1` that
//! leave the host through a non-loopback device before any NAT can fix them.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use cni::args::Owner;
use cni::rtnl::{link_name, Rtnl};
use cni::types::Attachment;
use cni::{CniError, ErrorCode};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde_json::Value;

use crate::config::Protocol;
use crate::conntrack;
use crate::installed::Listing;
use crate::nfnl::{ElementOp, Nfnl, NfnlError};
use crate::nft::{Nft, NftError};
use crate::plan::{self, Family, MapKey, Masq, PodPlan, SetElement};
use crate::state::{self, Index, NetnsLock};

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
    match nft.apply(&plan::list_table_batch()) {
        Ok(out) => Ok(Listing::parse(&out)),
        Err(e) if e.is_not_found() => Ok(Listing::default()),
        Err(e) => Err(nft_err("listing nftables state", e)),
    }
}

fn ensure_skeleton(nft: &Nft) -> Result<(), CniError> {
    nft.apply(&plan::skeleton_batch())
        .map(|_| ())
        .map_err(|e| nft_err(format!("creating table inet {}", plan::TABLE), e))
}

fn dnat_keys<'a>(elements: impl IntoIterator<Item = &'a SetElement>) -> BTreeSet<MapKey> {
    elements
        .into_iter()
        .filter_map(MapKey::from_element)
        .collect()
}

fn udp_ports(keys: &BTreeSet<MapKey>, family: Family) -> Vec<u16> {
    let mut ports: Vec<u16> = keys
        .iter()
        .filter(|k| k.family == family && k.protocol == Protocol::Udp)
        .map(|k| k.port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Removes stale UDP conntrack entries for these keys; failures are logged,
/// as upstream does (a missing entry is not a failure).
fn flush_udp_conntrack(nf: &Nfnl, keys: &BTreeSet<MapKey>) {
    for family in [Family::V4, Family::V6] {
        let ports = udp_ports(keys, family);
        if let Err(e) = conntrack::delete_udp_by_dport(nf.socket(), family, &ports) {
            eprintln!("portmap: deleting stale UDP conntrack entries for ports {ports:?}: {e}");
        }
    }
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

/// ADD: installs the plan (idempotent for the same owner, refused when
/// another attachment owns one of the host ports).
pub fn add(plan: &PodPlan) -> Result<(), CniError> {
    if plan.is_empty() {
        return Ok(());
    }
    let nft = Nft::default();
    let _lock = NetnsLock::take()?;
    let previous = state::read_index(&plan.owner)?;
    let mut nf = Nfnl::open().map_err(|e| nfnl_err("opening nfnetlink", e))?;
    let result = add_locked(plan, &nft, &mut nf, previous);
    nf.close_in_background();
    result
}

fn add_locked(
    plan: &PodPlan,
    nft: &Nft,
    nf: &mut Nfnl,
    previous: Option<Index>,
) -> Result<(), CniError> {
    let what = || format!("adding hostPort DNAT for {}", plan.owner.tag());
    let elements = plan.elements();
    let needs_nft = plan.chain.is_some() || previous.as_ref().is_some_and(|i| i.chain.is_some());
    if needs_nft {
        match previous {
            Some(_) => replace(nft, plan)?,
            None => add_with_nft(plan, nft)?,
        }
    } else {
        // A re-ADD replaces what the previous ADD left, in the same batch.
        let old = match &previous {
            Some(index) => {
                still_ours(nf, &index.elements, &plan.comment).map_err(|e| nfnl_err(what(), e))?
            }
            None => Vec::new(),
        };
        let mut ops: Vec<ElementOp<'_>> = old.iter().map(ElementOp::Delete).collect();
        ops.extend(elements.iter().map(|e| ElementOp::Add(e, &plan.comment)));
        let first = match nf.transact(&ops) {
            Err(e) if e.is_not_found() => {
                ensure_skeleton(nft)?;
                nf.transact(&ops)
            }
            other => other,
        };
        match first {
            Ok(()) => {}
            Err(e) if e.is_exists() => replace(nft, plan)?,
            Err(e) => return Err(nfnl_err(what(), e)),
        }
    }
    let index = Index {
        comment: plan.comment.clone(),
        elements: elements.clone(),
        chain: plan.chain.clone(),
    };
    let undo = |nf: &mut Nfnl| {
        let _ = remove_installed(nf, nft, &index);
        let _ = state::remove_index(&plan.owner);
    };
    if let Err(e) = state::write_index(&plan.owner, &index) {
        undo(nf);
        return Err(e);
    }
    if plan.masq != Masq::Off {
        if let Some(ip) = plan.dnats.iter().find_map(|d| match d.container_ip {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        }) {
            if let Err(e) = enable_route_localnet(ip) {
                undo(nf);
                return Err(e);
            }
        }
    }
    flush_udp_conntrack(nf, &dnat_keys(&elements));
    Ok(())
}

/// ADD of an attachment with a pod chain: one `nft` batch, skeleton on
/// ENOENT, [`replace`] on EEXIST.
fn add_with_nft(plan: &PodPlan, nft: &Nft) -> Result<(), CniError> {
    let batch = plan.add_batch();
    let first = match nft.apply(&batch) {
        Err(e) if e.is_not_found() => {
            ensure_skeleton(nft)?;
            nft.apply(&batch)
        }
        other => other,
    };
    match first {
        Ok(_) => Ok(()),
        Err(e) if e.is_exists() => replace(nft, plan),
        Err(e) => Err(nft_err(
            format!("adding hostPort DNAT for {}", plan.owner.tag()),
            e,
        )),
    }
}

/// Slow path of ADD: a DNAT key or the pod chain exists. Refuse foreign
/// owners; replace our own state atomically.
fn replace(nft: &Nft, plan: &PodPlan) -> Result<(), CniError> {
    let listing = list_table(nft)?;
    let mut conflicts = Vec::new();
    let registry = plan
        .elements()
        .into_iter()
        .filter(|e| MapKey::from_element(e).is_some());
    for want in registry {
        if let Some(have) = listing.find(&want.set, &want.key) {
            if have.comment.as_deref() != Some(plan.comment.as_str()) {
                let who = have
                    .comment
                    .clone()
                    .unwrap_or_else(|| "an unknown owner".into());
                let key = MapKey::from_element(&want)
                    .map(|k| describe_key(&k))
                    .unwrap_or_else(|| want.to_string());
                conflicts.push(format!("{key} is already mapped by {who}"));
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(CniError::internal(format!(
            "portmap: adding hostPort DNAT for {}: {}",
            plan.owner.tag(),
            conflicts.join("; ")
        ))
        .with_details("a hostIP:hostPort/protocol can be mapped by one attachment at a time; delete the other attachment first"));
    }
    let old: Vec<SetElement> = listing.elements_of(&plan.comment).into_iter().collect();
    let own_chain = plan::chain_name(&plan.owner);
    let chains: BTreeSet<String> = listing
        .chains
        .iter()
        .filter(|c| **c == own_chain)
        .cloned()
        .collect();
    nft.apply(&plan.replace_batch(&old, &chains))
        .map(|_| ())
        .map_err(|e| {
            nft_err(
                format!("replacing hostPort DNAT for {}", plan.owner.tag()),
                e,
            )
        })
}

fn describe_key(k: &MapKey) -> String {
    let host = match (k.host_ip, k.family) {
        (Some(IpAddr::V6(ip)), _) => format!("[{ip}]"),
        (Some(ip), _) => ip.to_string(),
        (None, Family::V4) => "0.0.0.0".into(),
        (None, Family::V6) => "[::]".into(),
    };
    format!("{host}:{}/{}", k.port, k.protocol.as_str())
}

/// `route_localnet=1` on the host interface that routes to `ip`, so that
/// 127.0.0.1-sourced DNAT'ed packets may leave through it.
fn enable_route_localnet(ip: Ipv4Addr) -> Result<(), CniError> {
    let ctx =
        |m: String| CniError::internal(format!("portmap: enabling route_localnet for {ip}: {m}"));
    let rtnl = Rtnl::open().map_err(|e| ctx(format!("opening a netlink socket: {e}")))?;
    // RTM_GETROUTE for the one destination: the kernel answers with the
    // route it would use (a lookup, not a dump).
    let mut query = RouteMessage::default();
    query.header.address_family = AddressFamily::Inet;
    query.header.destination_prefix_length = 32;
    query
        .attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(ip)));
    let replies = rtnl
        .request(RouteNetlinkMessage::GetRoute(query), 0)
        .map_err(|e| ctx(format!("route lookup: {e}")))?;
    let Some(oif) = replies.iter().find_map(|m| match m {
        RouteNetlinkMessage::NewRoute(r) => r.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        }),
        _ => None,
    }) else {
        return Err(ctx("no route to the container".into()));
    };
    let link = rtnl
        .link_by_index(oif)
        .map_err(|e| ctx(e.to_string()))?
        .ok_or_else(|| ctx(format!("interface {oif} vanished")))?;
    let name = link_name(&link)
        .ok_or_else(|| ctx(format!("interface {oif} has no name")))?
        .to_string();
    let key = cni::sysctl::SysctlKey::parse("net.ipv4.conf.IFNAME.route_localnet", &name)
        .map_err(|e| ctx(e.to_string()))?;
    let sysctl = cni::sysctl::Sysctl::default();
    if sysctl.read(&key).map(|v| v == "1").unwrap_or(false) {
        return Ok(());
    }
    sysctl
        .write(&key, "1")
        .map_err(|e| ctx(format!("writing {key} on {name}: {e}")))
}

/// Deletes what `index` lists and still carries its comment: over
/// nfnetlink, or with `nft` when there is a pod chain. Returns the DNAT keys
/// that went.
fn remove_installed(nf: &mut Nfnl, nft: &Nft, index: &Index) -> Result<BTreeSet<MapKey>, CniError> {
    let what = || format!("deleting hostPort DNAT ({})", index.comment);
    let ours = still_ours(nf, &index.elements, &index.comment).map_err(|e| nfnl_err(what(), e))?;
    match &index.chain {
        None => {
            let ops: Vec<ElementOp<'_>> = ours.iter().map(ElementOp::Delete).collect();
            nf.transact(&ops).map_err(|e| nfnl_err(what(), e))?;
        }
        Some(chain) => {
            let listing = list_table(nft)?;
            let chains: BTreeSet<String> = listing
                .chains
                .iter()
                .filter(|c| *c == chain)
                .cloned()
                .collect();
            if !ours.is_empty() || !chains.is_empty() {
                nft.apply(&plan::delete_batch(&ours, &chains))
                    .map_err(|e| nft_err(what(), e))?;
            }
        }
    }
    Ok(dnat_keys(&ours))
}

/// DEL: removes everything `owner` installed, found through its index file
/// (or, without one, by listing and matching comments); no config or
/// prevResult needed. `extra_udp` are UDP host ports from the
/// configuration, for conntrack cleanup when nothing is installed.
pub fn del(owner: &Owner, extra_udp: &BTreeSet<MapKey>) -> Result<(), CniError> {
    let nft = Nft::default();
    let comment = plan::comment(owner);
    let _lock = NetnsLock::take()?;
    let mut nf = Nfnl::open().map_err(|e| nfnl_err("opening nfnetlink", e))?;
    let result = del_locked(owner, &comment, &nft, &mut nf, extra_udp);
    nf.close_in_background();
    result
}

fn del_locked(
    owner: &Owner,
    comment: &str,
    nft: &Nft,
    nf: &mut Nfnl,
    extra_udp: &BTreeSet<MapKey>,
) -> Result<(), CniError> {
    let mut keys = match state::read_index(owner)? {
        Some(index) => remove_installed(nf, nft, &index)?,
        None => {
            let listing = list_table(nft)?;
            let elements: Vec<SetElement> = listing.elements_of(comment).into_iter().collect();
            let chain = plan::chain_name(owner);
            let chains: BTreeSet<String> = listing
                .chains
                .iter()
                .filter(|c| **c == chain)
                .cloned()
                .collect();
            if !elements.is_empty() || !chains.is_empty() {
                nft.apply(&plan::delete_batch(&elements, &chains))
                    .map_err(|e| {
                        nft_err(format!("deleting hostPort DNAT for {}", owner.tag()), e)
                    })?;
            }
            dnat_keys(&elements)
        }
    };
    state::remove_index(owner)?;
    keys.extend(extra_udp.iter().copied());
    flush_udp_conntrack(nf, &keys);
    Ok(())
}

/// CHECK: compares what is installed for the plan's owner with the plan.
pub fn check(plan: &PodPlan) -> Result<(), CniError> {
    let listing = list_table(&Nft::default())?;
    let mut problems = Vec::new();
    let installed = listing.elements_of(&plan.comment);
    let wanted: BTreeSet<SetElement> = plan.elements().into_iter().collect();
    for e in wanted.difference(&installed) {
        let kind = if e.data == plan::ElementData::None {
            "set"
        } else {
            "map"
        };
        problems.push(format!("missing {kind} element {e}"));
    }
    for e in installed.difference(&wanted) {
        problems.push(format!("unexpected element {e}"));
    }
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

/// GC: removes the elements, pod chains and index files of attachments of
/// `network` that are not in `valid`.
pub fn gc(network: &str, valid: &[Attachment]) -> Result<(), CniError> {
    let nft = Nft::default();
    let _lock = NetnsLock::take()?;
    let table = list_table(&nft)?;
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
    if !elements.is_empty() || !chains.is_empty() {
        nft.apply(&plan::delete_batch(&elements, &chains))
            .map_err(|e| {
                nft_err(
                    format!("garbage-collecting hostPort DNAT of network {network}"),
                    e,
                )
            })?;
    }
    for tag in &owners {
        if let Some(o) = Owner::parse_tag(tag) {
            state::remove_index(&o)?;
        }
    }
    if !elements.is_empty() {
        let nf = Nfnl::open().map_err(|e| nfnl_err("opening nfnetlink", e))?;
        flush_udp_conntrack(&nf, &dnat_keys(&elements));
        nf.close_in_background();
    }
    Ok(())
}

/// STATUS: nft runs and the kernel accepts our skeleton (nat hooks, fib,
/// maps), validated with `nft -c` so nothing is committed.
pub fn status() -> Result<(), CniError> {
    let nft = Nft::default();
    nft.check(&plan::skeleton_batch()).map_err(|e| {
        CniError::new(
            ErrorCode::PluginNotAvailable,
            format!("portmap: nftables is not usable: {e}"),
        )
    })?;
    Ok(())
}

/// The raw JSON of everything in our table (tests and debugging).
pub fn dump() -> Result<Value, CniError> {
    let out = Nft::default()
        .apply(&plan::list_table_batch())
        .map_err(|e| nft_err("listing nftables state", e))?;
    serde_json::from_str(&out)
        .map_err(|e| CniError::internal(format!("portmap: parsing nft output: {e}")))
}
