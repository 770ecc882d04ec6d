//! The iptables backend: upstream portmap's layout and comments
//! ([`rules`]), so either plugin tears down what the other installed, with
//! each ADD, DEL and GC one `iptables-restore --noflush` transaction per
//! family ([`exec`], the only place processes run). [`Iptables`] is the
//! [`crate::backend::Firewall`] the verbs call; [`IptablesError`] is the
//! one error type, turned into a [`CniError`] in [`IptablesError::into_cni`].
//!
//! Which iptables (per family): the flavour already holding
//! `CNI-HOSTPORT-DNAT` (iptables-nft, seen by one netlink GETCHAIN; else
//! iptables-legacy, saved only when its `nat` table is loaded), else the one
//! the host's `iptables` command resolves to (`xtables-legacy-multi` ⇒
//! legacy, anything else ⇒ nft). DEL and GC look in every flavour present.
//!
//! Per verb: ADD saves the family's `nat` table once (conflicts, which
//! shared chains exist), then restores once; DEL and GC save and restore
//! once per flavour that holds something; the two families run side by
//! side. DEL of an indexed attachment next to another indexed one of the
//! same family skips the save: one restore per family deletes what its
//! index lists (`remove_indexed`), else it falls back to the save. ADD
//! records the attachment's [`rules::PodRules`] in its index file
//! ([`IptablesIndex`]); a table that lost our layout is rebuilt from
//! those by the next ADD or STATUS (`heal`). IPv4 also keeps the `raw`
//! table's drop of 127.0.0.0/8 from outside ([`rules::localnet_add`]):
//! ADD completes it in its restore, the DEL or GC of the last attachment
//! removes it ([`removal`]), CHECK reports it missing. Localhost and conntrack are
//! the backend-neutral [`crate::localnet`] and [`crate::conntrack`].

pub mod exec;
pub mod rules;

use std::collections::BTreeSet;

use cni::args::Owner;
use cni::netlink::netfilter::Nfnl;
use cni::types::Attachment;
use cni::{CniError, ErrorCode};
use serde::{Deserialize, Serialize};

use self::exec::Flavour;
use self::rules::{udp_keys_of, PodRules};
use crate::backend::Firewall;
use crate::config::Protocol;
use crate::plan::{Family, MapKey, Masq, PodPlan};
use crate::state::{self, NetnsLock};
use crate::upstream::iptables::{NatTable, UpstreamOwner, DNAT};
use crate::{conntrack, localnet, upstream};

/// Everything that can go wrong in this backend.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    /// The program could not be run (or fed).
    #[error("{program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The program ran and failed.
    #[error("{program}: {stderr}")]
    Failed {
        program: String,
        stderr: String,
        /// The restore input, if any (goes to the error's details).
        input: Option<String>,
    },
    /// Another attachment maps one of the keys.
    #[error("{}", .0.join("; "))]
    Conflict(Vec<String>),
    /// CHECK found rules missing or wrong.
    #[error("{}", .0.join("; "))]
    Differs(Vec<String>),
    /// Reading the index files.
    #[error("{}", .0.msg)]
    State(CniError),
}

impl IptablesError {
    /// The CNI error for this failure while doing `what`.
    pub fn into_cni(self, what: &str) -> CniError {
        let msg = format!("portmap: {what}: {self}");
        match self {
            IptablesError::Spawn { .. } => CniError::new(ErrorCode::PluginNotAvailable, msg),
            IptablesError::Failed {
                input: Some(input), ..
            } => CniError::internal(msg).with_details(format!("restore input:\n{input}")),
            IptablesError::Failed { input: None, .. } | IptablesError::Differs(_) => {
                CniError::internal(msg)
            }
            IptablesError::State(e) => e,
            IptablesError::Conflict(_) => CniError::internal(msg).with_details(
                "a hostIP:hostPort/protocol can be mapped by one attachment at a time; delete the other attachment first",
            ),
        }
    }
}

/// The iptables backend.
#[derive(Debug, Clone, Default)]
pub struct Iptables;

fn v6(family: Family) -> bool {
    family == Family::V6
}

/// The flavour `family`'s rules go to and its saved `nat` table.
fn chosen(present: &[Flavour], family: Family) -> Result<(Flavour, NatTable), IptablesError> {
    let v6 = v6(family);
    if present.contains(&Flavour::Nft { v6 }) {
        let f = Flavour::Nft { v6 };
        return Ok((f, exec::save(f)?));
    }
    if present.contains(&Flavour::Legacy { v6 }) {
        let f = Flavour::Legacy { v6 };
        let table = exec::save(f)?;
        if table.has_upstream() {
            return Ok((f, table));
        }
    }
    let f = exec::system_flavour(v6);
    Ok((f, exec::save(f)?))
}

/// Runs `f` on every item at once, one thread each (the families' and
/// flavours' processes are independent; a restore that deletes waits
/// ≈15 ms for an RCU grace period when it closes its netlink socket, so
/// running them side by side halves a dual-stack DEL).
fn side_by_side<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    if items.len() < 2 {
        return items.into_iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| scope.spawn(move || f(item)))
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Removes the attachments of `network` that `pick` chooses (container
/// IDs, from each table's owners) from every flavour present, then flushes
/// the UDP conntrack entries of what they mapped and of `extra_udp`; one
/// thread per family.
fn remove_where(
    network: &str,
    pick: &(dyn Fn(&BTreeSet<UpstreamOwner>) -> BTreeSet<String> + Sync),
    extra_udp: &BTreeSet<MapKey>,
) -> Result<(), IptablesError> {
    let present = upstream::probe_alone().iptables;
    let remove_family = |family: Family| -> Result<(), IptablesError> {
        let mut udp: BTreeSet<MapKey> = extra_udp
            .iter()
            .filter(|k| k.family == family)
            .copied()
            .collect();
        let result = present
            .iter()
            .filter(|f| f.v6() == v6(family))
            .try_for_each(|f| {
                let table = exec::save(*f)?;
                if !table.has_upstream() {
                    return Ok(());
                }
                let ids = pick(&table.owners());
                let owners = ids
                    .iter()
                    .map(|id| UpstreamOwner {
                        network: network.to_string(),
                        container_id: id.clone(),
                    })
                    .collect();
                udp.extend(udp_keys_of(&table, family, &owners));
                match removal(*f, &table, network, &ids)? {
                    Some(input) => exec::restore(*f, &input),
                    None => Ok(()),
                }
            });
        flush_udp(family, &udp);
        result
    };
    side_by_side(vec![Family::V4, Family::V6], remove_family)
        .into_iter()
        .collect()
}

/// [`NatTable::removal`] of `ids` of `network` from `flavour`'s saved
/// `table`, plus (IPv4, when the last attachment goes) the removal of the
/// localnet drop from its `raw` table, as one restore input.
pub(crate) fn removal(
    flavour: Flavour,
    table: &NatTable,
    network: &str,
    ids: &BTreeSet<String>,
) -> Result<Option<String>, IptablesError> {
    let Some(mut input) = table.removal(network, ids) else {
        return Ok(None);
    };
    if !flavour.v6() && table.last_ones(network, ids) {
        input.push_str(&rules::localnet_removal(&exec::save_raw(flavour)?));
    }
    Ok(Some(input))
}

/// DEL's fast path, without `iptables-save`: when `owner`'s index lists
/// its rules, each family's flavour is unambiguous (one present) and
/// another indexed attachment of that family keeps the shared chains, one
/// restore per family deletes exactly what ADD wrote (side by side), then
/// the UDP conntrack of its ports and `extra_udp` is flushed. `false`
/// (nothing, or only part, removed) sends DEL to the save path, which
/// finds whatever is left.
fn remove_indexed(owner: &Owner, extra_udp: &BTreeSet<MapKey>) -> bool {
    let me = owner.tag();
    let Ok(indexes) = state::read_indexes::<IptablesIndex>() else {
        return false;
    };
    let Some(mine) = indexes.iter().find(|i| i.owner == me) else {
        return false;
    };
    let present = upstream::probe_alone().iptables;
    let mut staged = Vec::new();
    for rules in &mine.iptables {
        let v6 = v6(rules.family);
        let flavours: Vec<&Flavour> = present.iter().filter(|f| f.v6() == v6).collect();
        let shared_kept = indexes
            .iter()
            .filter(|i| i.owner != me)
            .any(|i| i.iptables.iter().any(|r| r.family == rules.family));
        match flavours.as_slice() {
            [f] if shared_kept => staged.push((**f, rules)),
            _ => return false,
        }
    }
    let removed = side_by_side(staged, |(f, rules)| {
        let done = exec::restore(f, &rules.removal_input()).is_ok();
        if done {
            let mut udp = rules.udp_keys();
            udp.extend(extra_udp.iter().filter(|k| k.family == rules.family));
            flush_udp(rules.family, &udp);
        }
        done
    });
    removed.into_iter().all(|done| done)
}

/// Removes stale UDP conntrack entries of `family` for `keys` (failures
/// are logged, as upstream does).
fn flush_udp(family: Family, keys: &BTreeSet<MapKey>) {
    let ports: BTreeSet<u16> = keys
        .iter()
        .filter(|k| k.family == family && k.protocol == Protocol::Udp)
        .map(|k| k.port)
        .collect();
    if ports.is_empty() {
        return;
    }
    let ports: Vec<u16> = ports.into_iter().collect();
    match Nfnl::open() {
        Ok(sock) => {
            if let Err(e) = conntrack::delete_udp_by_dport(&sock, family, &ports) {
                eprintln!(
                    "portmap: deleting stale UDP conntrack entries for ports {ports:?}: conntrack netlink: {e}"
                );
            }
            sock.close_in_background();
        }
        Err(e) => eprintln!("portmap: opening a conntrack netlink socket: {e}"),
    }
}

/// What an ADD of this backend records in its index file: enough to
/// rebuild its rules after a flush, without config or prevResult.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IptablesIndex {
    /// The owner tag (`network/containerID/ifname`).
    pub owner: String,
    /// The attachment's rules, per family.
    pub iptables: Vec<PodRules>,
}

/// Whether `table` lost our layout: the `PREROUTING` jump to
/// `CNI-HOSTPORT-DNAT` is gone (a flush, a deleted chain, a restore of
/// someone else's ruleset). One look at a table ADD saved anyway.
fn flushed(table: &NatTable) -> bool {
    !table
        .rules
        .iter()
        .any(|r| r.chain == "PREROUTING" && r.jump.as_deref() == Some(DNAT))
}

/// IPv4: the `*raw` section completing the localnet drop in `flavour`
/// (one `iptables-save -t raw`); IPv6 (no `route_localnet`): none.
fn localnet_of(flavour: Flavour) -> Result<String, IptablesError> {
    if flavour.v6() {
        return Ok(String::new());
    }
    Ok(rules::localnet_add(&exec::save_raw(flavour)?))
}

/// Rebuilds, in `flavour`, every indexed attachment of `family` (other
/// than `except`) whose rules `table` lacks, one restore each (a rare
/// path), and the localnet drop when one is indexed; returns the `nat`
/// table as it is afterwards.
fn heal(
    flavour: Flavour,
    mut table: NatTable,
    family: Family,
    except: &str,
) -> Result<NatTable, IptablesError> {
    let indexes = state::read_indexes::<IptablesIndex>().map_err(IptablesError::State)?;
    for index in indexes.iter().filter(|i| i.owner != except) {
        for rules in index.iptables.iter().filter(|r| r.family == family) {
            if rules.differences(&table).is_empty() {
                continue;
            }
            exec::restore(flavour, &rules.add_input(&table))?;
            table = exec::save(flavour)?;
        }
    }
    let indexed = indexes
        .iter()
        .any(|i| i.owner != except && i.iptables.iter().any(|r| r.family == family));
    if indexed {
        let raw = localnet_of(flavour)?;
        if !raw.is_empty() {
            exec::restore(flavour, &raw)?;
        }
    }
    Ok(table)
}

impl Iptables {
    /// Saves each family's table (side by side; healing a flushed one from
    /// the index files), refuses conflicts, then per family (side by side)
    /// restores its input and flushes its UDP conntrack entries. Returns
    /// what it installed.
    fn install(plan: &PodPlan) -> Result<Vec<PodRules>, IptablesError> {
        let present = upstream::probe_alone().iptables;
        let me = plan.owner.tag();
        let families: Vec<PodRules> = [Family::V4, Family::V6]
            .into_iter()
            .filter_map(|f| PodRules::new(plan, f))
            .collect();
        let saved = side_by_side(families.iter().collect(), |r| {
            let (flavour, mut table) = chosen(&present, r.family)?;
            if flushed(&table) {
                table = heal(flavour, table, r.family, &me)?;
            }
            Ok((flavour, table, localnet_of(flavour)?))
        });
        let mut staged = Vec::new();
        for (rules, saved) in families.iter().zip(saved) {
            let (flavour, table, raw) = saved?;
            let keys = rules.keys(plan);
            let conflicts = rules.conflicts(&table, &keys);
            if !conflicts.is_empty() {
                return Err(IptablesError::Conflict(conflicts));
            }
            let input = rules.add_input(&table) + &raw;
            staged.push((flavour, input, rules.family, keys));
        }
        side_by_side(staged, |(flavour, input, family, keys)| {
            exec::restore(flavour, &input)?;
            flush_udp(family, &keys);
            Ok(())
        })
        .into_iter()
        .collect::<Result<(), IptablesError>>()?;
        Ok(families)
    }
}

impl Firewall for Iptables {
    fn add(&self, plan: &PodPlan) -> Result<(), CniError> {
        if plan.is_empty() {
            return Ok(());
        }
        let what = format!("adding hostPort DNAT for {}", plan.owner.tag());
        let _lock = NetnsLock::take()?;
        let owner = &plan.owner;
        let undo = || {
            let _ = remove_where(
                &owner.network,
                &|_| BTreeSet::from([owner.container_id.clone()]),
                &BTreeSet::new(),
            );
            let _ = state::remove_index(owner);
        };
        let installed = match Self::install(plan) {
            Ok(rules) => rules,
            Err(e) => {
                if !matches!(e, IptablesError::Conflict(_)) {
                    undo();
                }
                return Err(e.into_cni(&what));
            }
        };
        let index = IptablesIndex {
            owner: owner.tag(),
            iptables: installed,
        };
        if let Err(e) = state::write_index(owner, &index) {
            undo();
            return Err(e);
        }
        if plan.masq != Masq::Off {
            if let Some(ip) = plan.container_ipv4() {
                if let Err(e) = localnet::enable_route_localnet(ip) {
                    undo();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn check(&self, plan: &PodPlan) -> Result<(), CniError> {
        let what = format!("check of {}", plan.owner.tag());
        let present = upstream::probe_alone().iptables;
        let mut problems = Vec::new();
        for family in [Family::V4, Family::V6] {
            let Some(rules) = PodRules::new(plan, family) else {
                continue;
            };
            let (flavour, table) = chosen(&present, family).map_err(|e| e.into_cni(&what))?;
            let tool = flavour.tool("save");
            let name = tool.trim_end_matches("-save");
            problems.extend(
                rules
                    .differences(&table)
                    .into_iter()
                    .map(|p| format!("{name}: {p}")),
            );
            if !localnet_of(flavour)
                .map_err(|e| e.into_cni(&what))?
                .is_empty()
            {
                problems.push(format!(
                    "{name}: the raw table's drop of 127.0.0.0/8 from outside ({}) is missing",
                    rules::LOCALNET
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(IptablesError::Differs(problems).into_cni(&what))
        }
    }

    fn del(&self, owner: &Owner, extra_udp: &BTreeSet<MapKey>) -> Result<(), CniError> {
        let _lock = NetnsLock::take()?;
        if remove_indexed(owner, extra_udp) {
            return state::remove_index(owner);
        }
        remove_where(
            &owner.network,
            &|_| BTreeSet::from([owner.container_id.clone()]),
            extra_udp,
        )
        .map_err(|e| e.into_cni(&format!("removing hostPort DNAT of {}", owner.tag())))?;
        state::remove_index(owner)
    }

    fn gc(&self, network: &str, valid: &[Attachment]) -> Result<(), CniError> {
        let _lock = NetnsLock::take()?;
        state::prune_dead()?;
        let keep: BTreeSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
        let stale = |owners: &BTreeSet<UpstreamOwner>| {
            owners
                .iter()
                .filter(|o| o.network == network && !keep.contains(o.container_id.as_str()))
                .map(|o| o.container_id.clone())
                .collect()
        };
        remove_where(network, &stale, &BTreeSet::new()).map_err(|e| {
            e.into_cni(&format!(
                "garbage-collecting hostPort DNAT of network {network}"
            ))
        })?;
        for index in state::read_indexes::<IptablesIndex>()? {
            if let Some(o) = Owner::parse_tag(&index.owner) {
                if o.network == network && !keep.contains(o.container_id.as_str()) {
                    state::remove_index(&o)?;
                }
            }
        }
        Ok(())
    }

    /// STATUS: the tools are there, and (when attachments are indexed) a
    /// flushed table is rebuilt first.
    fn status(&self) -> Result<(), CniError> {
        let what = "rebuilding hostPort DNAT after a flush";
        let _lock = NetnsLock::take()?;
        if !state::read_indexes::<IptablesIndex>()?.is_empty() {
            let present = upstream::probe_alone().iptables;
            for family in [Family::V4, Family::V6] {
                let (flavour, table) = chosen(&present, family).map_err(|e| e.into_cni(what))?;
                if flushed(&table) {
                    heal(flavour, table, family, "").map_err(|e| e.into_cni(what))?;
                }
            }
        }
        for v6 in [false, true] {
            let f = exec::system_flavour(v6);
            for what in ["save", "restore"] {
                let tool = f.tool(what);
                if exec::find_program(&tool).is_none() {
                    return Err(CniError::new(
                        ErrorCode::PluginNotAvailable,
                        format!("portmap: iptables is not usable: {tool} not found"),
                    ));
                }
            }
        }
        Ok(())
    }
}
