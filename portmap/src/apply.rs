//! The kernel side of portmap: applies, inspects and deletes plans in the
//! current (host) netns — nft batches through [`crate::nft`], stale UDP
//! conntrack through [`crate::conntrack`], and `route_localnet` on the host
//! interface that routes to the pod. Every mutation holds a per-netns flock
//! (P12). The skeleton is created only when a batch says it is missing (P10),
//! so an ADD on a prepared host is ONE nft exec.
//!
//! Localhost: `127.0.0.1:hostPort` works for IPv4 (DNAT in `output`,
//! masquerade, and `route_localnet=1` on the one host interface that routes to
//! the pod). `[::1]:hostPort` does not work and cannot: IPv6 has no
//! `route_localnet`, and the kernel drops packets with source `::1` that
//! leave the host through a non-loopback device before any NAT can fix them.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt;

use cni::args::Owner;
use cni::types::Attachment;
use cni::{CniError, ErrorCode};
use futures_util::TryStreamExt;
use netlink_packet_route::route::RouteAttribute;
use nix::fcntl::{Flock, FlockArg};
use serde_json::Value;

use crate::config::Protocol;
use crate::conntrack;
use crate::installed::Listing;
use crate::nft::{Nft, NftError};
use crate::plan::{self, Family, MapKey, Masq, PodPlan};

const LOCK_DIR: &str = "/run/cni-portmap";

/// Serialises portmap's list-then-modify sequences within one netns.
pub struct NetnsLock {
    _lock: Flock<File>,
}

impl NetnsLock {
    pub fn take() -> Result<NetnsLock, CniError> {
        let ino = std::fs::metadata(cni::netns::THREAD_NETNS)
            .map(|m| m.ino())
            .map_err(|e| CniError::io(format!("portmap: reading the current netns: {e}")))?;
        std::fs::create_dir_all(LOCK_DIR)
            .map_err(|e| CniError::io(format!("portmap: creating {LOCK_DIR}: {e}")))?;
        let path = format!("{LOCK_DIR}/netns-{ino}.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| CniError::io(format!("portmap: opening lock {path}: {e}")))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| CniError::io(format!("portmap: locking {path}: {e}")))?;
        Ok(NetnsLock { _lock: lock })
    }
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

/// Lists pod chain / maps / postrouting; a missing table or chain is an
/// empty listing.
fn list(nft: &Nft, chain: Option<&str>, maps: bool) -> Result<Listing, CniError> {
    match nft.apply(&plan::list_batch(chain, maps)) {
        Ok(out) => Ok(Listing::parse(&out)),
        Err(e) if e.is_not_found() => {
            // One missing object fails the whole list batch; retry the maps
            // alone so a missing pod chain still shows the elements.
            if chain.is_some() && maps {
                match nft.apply(&plan::list_batch(None, true)) {
                    Ok(out) => Ok(Listing::parse(&out)),
                    Err(e) if e.is_not_found() => Ok(Listing::default()),
                    Err(e) => Err(nft_err("listing nftables maps", e)),
                }
            } else {
                Ok(Listing::default())
            }
        }
        // nft 1.0.6 cannot list one chain whose rules hold anonymous sets
        // (`{ a, b }` in conditions); the whole table lists fine.
        Err(NftError::Failed { stderr }) if stderr.contains("Unknown set") => list_table(nft),
        Err(e) => Err(nft_err("listing nftables state", e)),
    }
}

fn ensure_skeleton(nft: &Nft, bit: u8) -> Result<(), CniError> {
    let listing = list(nft, Some("postrouting"), false)?;
    let present = listing
        .postrouting_comments
        .iter()
        .any(|c| plan::is_mark_rule_comment(c, bit));
    nft.apply(&plan::skeleton_batch(bit, present))
        .map(|_| ())
        .map_err(|e| nft_err(format!("creating table inet {}", plan::TABLE), e))
}

fn udp_ports(keys: &BTreeSet<MapKey>, family: Family) -> Vec<u16> {
    let mut ports: Vec<u16> = keys
        .iter()
        .filter(|k| k.family == family && k.protocol == Protocol::Udp)
        .map(|k| k.port)
        .collect();
    ports.dedup();
    ports
}

/// Removes stale UDP conntrack entries for these keys; failures are logged,
/// as upstream does (a missing entry is not a failure).
fn flush_udp_conntrack(keys: &BTreeSet<MapKey>) {
    for family in [Family::V4, Family::V6] {
        let ports = udp_ports(keys, family);
        if let Err(e) = conntrack::delete_udp_by_dport(family, &ports) {
            eprintln!("portmap: deleting stale UDP conntrack entries for ports {ports:?}: {e}");
        }
    }
}

/// ADD: installs the plan (idempotent for the same owner, refused when
/// another attachment owns one of the host ports).
pub fn add(plan: &PodPlan) -> Result<(), CniError> {
    if plan.is_empty() {
        return Ok(());
    }
    let nft = Nft::default();
    let _lock = NetnsLock::take()?;
    let batch = plan.add_batch();
    let what = || format!("adding hostPort DNAT for {}", plan.owner.tag());
    let first = match nft.apply(&batch) {
        Err(e) if e.is_not_found() => {
            ensure_skeleton(&nft, plan.mark_bit)?;
            nft.apply(&batch)
        }
        other => other,
    };
    match first {
        Ok(_) => {}
        Err(e) if e.is_exists() => replace(&nft, plan)?,
        Err(e) => return Err(nft_err(what(), e)),
    }
    let keys = plan.keys();
    if plan.masq != Masq::Off {
        if let Some(ip) = plan.dnats.iter().find_map(|d| match d.container_ip {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        }) {
            if let Err(e) = enable_route_localnet(ip) {
                let _ = nft.apply(&plan::delete_batch(&keys, &[plan.chain.clone()].into()));
                return Err(e);
            }
        }
    }
    flush_udp_conntrack(&keys);
    Ok(())
}

/// Slow path of ADD: the chain or an element exists. Refuse foreign owners;
/// replace our own state atomically.
fn replace(nft: &Nft, plan: &PodPlan) -> Result<(), CniError> {
    let listing = list(nft, Some(&plan.chain), true)?;
    let wanted = plan.keys();
    let mut conflicts = Vec::new();
    for e in &listing.elements {
        if wanted.contains(&e.key) && e.target.as_deref() != Some(plan.chain.as_str()) {
            let who = e
                .comment
                .clone()
                .unwrap_or_else(|| "an unknown owner".into());
            conflicts.push(format!(
                "{} is already mapped by {who}",
                describe_key(&e.key)
            ));
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
    let old = listing.elements_of(&plan.chain, &plan.comment);
    let chain_exists = listing.chains.contains(&plan.chain);
    nft.apply(&plan.replace_batch(&old, chain_exists))
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
    let session = cni::netlink::NetlinkSession::open(None).map_err(|e| ctx(e.to_string()))?;
    let msg = rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(ip, 32)
        .build();
    let req = session.handle().route().get(msg).execute();
    let route = session
        .block_on(async {
            let mut s = req;
            s.try_next().await
        })
        .map_err(|e| ctx(format!("route lookup: {}", cni::netlink::describe(&e))))?;
    let Some(oif) = route.and_then(|r| {
        r.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        })
    }) else {
        return Err(ctx("no route to the container".into()));
    };
    let link = session
        .link_by_index(oif)
        .map_err(|e| ctx(cni::netlink::describe(&e)))?
        .ok_or_else(|| ctx(format!("interface {oif} vanished")))?;
    let name = cni::netlink::link_name(&link)
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

/// DEL: removes everything `owner` installed, found through its chain name
/// (no config or prevResult needed). `extra_udp` are UDP host ports from the
/// configuration, for conntrack cleanup when nothing is installed.
pub fn del(owner: &Owner, extra_udp: &BTreeSet<MapKey>) -> Result<(), CniError> {
    let nft = Nft::default();
    let chain = plan::chain_name(owner);
    let comment = plan::comment(owner);
    let what = || format!("deleting hostPort DNAT for {}", owner.tag());
    let _lock = NetnsLock::take()?;
    let listing = list(&nft, Some(&chain), false)?;
    let mut keys = listing.keys_of_chain(&chain);
    if listing.chains.contains(&chain) {
        let chains: BTreeSet<String> = [chain.clone()].into();
        match nft.apply(&plan::delete_batch(&keys, &chains)) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                // An element went missing (or a rule hid its key): delete
                // what the maps actually hold for us.
                let maps = list(&nft, None, true)?;
                keys = maps.elements_of(&chain, &comment);
                nft.apply(&plan::delete_batch(&keys, &chains))
                    .map_err(|e| nft_err(what(), e))?;
            }
            Err(e) => return Err(nft_err(what(), e)),
        }
    }
    keys.extend(extra_udp.iter().copied());
    flush_udp_conntrack(&keys);
    Ok(())
}

/// CHECK: compares what is installed for the plan's owner with the plan.
pub fn check(plan: &PodPlan) -> Result<(), CniError> {
    let nft = Nft::default();
    let listing = list(&nft, Some(&plan.chain), true)?;
    let mut problems = Vec::new();
    if !plan.is_empty() && !listing.chains.contains(&plan.chain) {
        problems.push(format!("chain {} is missing", plan.chain));
    }
    let installed: BTreeSet<_> = listing
        .rules_of(&plan.chain)
        .filter_map(|r| r.dnat)
        .collect();
    let expected: BTreeSet<_> = plan.dnats.iter().copied().collect();
    for d in expected.difference(&installed) {
        problems.push(format!("missing dnat {d}"));
    }
    for d in installed.difference(&expected) {
        problems.push(format!("unexpected dnat {d}"));
    }
    let elements = listing.elements_of(&plan.chain, &plan.comment);
    let wanted = plan.keys();
    for k in wanted.difference(&elements) {
        problems.push(format!("missing map element {k}"));
    }
    for k in elements.difference(&wanted) {
        problems.push(format!("unexpected map element {k}"));
    }
    let masq_rules: BTreeSet<(MapKey, String, bool)> = listing
        .rules_of(&plan.chain)
        .filter_map(|r| r.masq.clone())
        .collect();
    let expected_masq: BTreeSet<(MapKey, String, bool)> = match plan.masq {
        Masq::Off => BTreeSet::new(),
        m => wanted
            .iter()
            .map(|k| {
                (
                    *k,
                    plan::mark_chain(plan.mark_bit),
                    m == Masq::HairpinAndLocalhost,
                )
            })
            .collect(),
    };
    for (k, chain, restricted) in expected_masq.difference(&masq_rules) {
        let scope = if *restricted {
            "hairpin/localhost"
        } else {
            "all sources"
        };
        problems.push(format!("missing masquerade ({scope}, {chain}) for {k}"));
    }
    for (k, chain, _) in masq_rules.difference(&expected_masq) {
        problems.push(format!("unexpected masquerade ({chain}) for {k}"));
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

/// GC: removes the pod chains and elements of attachments of `network`
/// that are not in `valid`.
pub fn gc(network: &str, valid: &[Attachment]) -> Result<(), CniError> {
    let nft = Nft::default();
    let _lock = NetnsLock::take()?;
    let table = list_table(&nft)?;
    let keep: BTreeSet<(String, String)> = valid
        .iter()
        .map(|a| (a.container_id.clone(), a.ifname.clone()))
        .collect();
    let stale_owner = |comment: &str| {
        Owner::parse_tag(comment).is_some_and(|o| {
            o.network == network && !keep.contains(&(o.container_id.clone(), o.ifname.clone()))
        })
    };
    let mut chains = BTreeSet::new();
    for (chain, comment) in table.pod_chain_comments() {
        if stale_owner(&comment) {
            chains.insert(chain);
        }
    }
    let keys: BTreeSet<MapKey> = table
        .elements
        .iter()
        .filter(|e| {
            e.comment.as_deref().is_some_and(stale_owner)
                || e.target.as_ref().is_some_and(|t| chains.contains(t))
        })
        .map(|e| e.key)
        .collect();
    if keys.is_empty() && chains.is_empty() {
        return Ok(());
    }
    nft.apply(&plan::delete_batch(&keys, &chains))
        .map_err(|e| {
            nft_err(
                format!("garbage-collecting hostPort DNAT of network {network}"),
                e,
            )
        })?;
    flush_udp_conntrack(&keys);
    Ok(())
}

fn list_table(nft: &Nft) -> Result<Listing, CniError> {
    let batch = serde_json::json!({"nftables": [{"list": {"table": {"family": "inet", "name": plan::TABLE}}}]});
    match nft.apply(&batch) {
        Ok(out) => Ok(Listing::parse(&out)),
        Err(e) if e.is_not_found() => Ok(Listing::default()),
        Err(e) => Err(nft_err("listing nftables state", e)),
    }
}

/// STATUS: nft runs and the kernel accepts our skeleton (nat hooks, fib,
/// verdict maps), validated with `nft -c` so nothing is committed.
pub fn status(bit: u8) -> Result<(), CniError> {
    let nft = Nft::default();
    let unusable = |e: NftError| {
        CniError::new(
            ErrorCode::PluginNotAvailable,
            format!("portmap: nftables is not usable: {e}"),
        )
    };
    nft.check(&plan::skeleton_batch(bit, false))
        .map_err(unusable)?;
    Ok(())
}

/// The raw JSON of everything in our table (tests and debugging).
pub fn dump() -> Result<Value, CniError> {
    let out = Nft::default()
        .apply(&serde_json::json!({"nftables": [{"list": {"table": {"family": "inet", "name": plan::TABLE}}}]}))
        .map_err(|e| nft_err("listing nftables state", e))?;
    serde_json::from_str(&out)
        .map_err(|e| CniError::internal(format!("portmap: parsing nft output: {e}")))
}
