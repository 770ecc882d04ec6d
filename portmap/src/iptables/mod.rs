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
//! shared chains exist), then restores once; on iptables-nft, an
//! attachment's first ADD into an intact layout reads what it needs over
//! the verb's socket instead ([`fresh`]), so its cost does not grow with
//! the pods mapped; DEL and GC save and restore
//! once per flavour that holds something; the two families run side by
//! side. DEL of an indexed attachment skips the save (`remove_indexed`):
//! on iptables-nft one nf_tables transaction over the verb's socket, no
//! process, also for the last attachment ([`nfnl`]); on iptables-legacy,
//! when another attachment keeps the shared chains, one restore per
//! family deleting what its index lists; else it falls back to the save.
//! Both fast paths read `CNI-HOSTPORT-DNAT`'s rules from [`dnat_cache`]
//! while its file is true (the nf_tables generation it names is the
//! current one), else with one dump: with 1000 pods mapped that dump was
//! most of an ADD's and a DEL's cost. ADD
//! records the attachment's [`rules::PodRules`] in its index file
//! ([`IptablesIndex`]); a table that lost our layout is rebuilt from
//! those by the next ADD or STATUS (`heal`). IPv4 also keeps the `raw`
//! table's drop of 127.0.0.0/8 from outside ([`rules::localnet_add`]):
//! ADD completes it in its restore, the DEL or GC of the last attachment
//! removes it ([`removal`]), CHECK reports it missing. Every verb opens one
//! nfnetlink socket ([`session`]: the flavour probe, whether ADD need read
//! the `raw` table) and closes it once the family threads are done, in a
//! detached child that first flushes the stale UDP conntrack entries of
//! the ports the verb touched. Localhost and conntrack are the
//! backend-neutral [`crate::localnet`] and [`crate::conntrack`].

pub mod dnat_cache;
pub mod exec;
pub mod fresh;
pub mod nfnl;
pub mod rules;
pub mod session;

use std::collections::BTreeSet;

use cni::args::Owner;
use cni::types::Attachment;
use cni::{CniError, ErrorCode};
use serde::{Deserialize, Serialize};

use self::exec::Flavour;
use self::rules::{udp_keys_of, PodRules};
use self::session::Session;
use crate::backend::Firewall;
use crate::plan::{Family, MapKey, PodPlan};
use crate::state::{self, NetnsLock};
use crate::upstream::iptables::{NatTable, UpstreamOwner, DNAT};

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
/// IDs, from each table's owners) from every flavour in `present`, one
/// thread per family; returns the UDP keys whose stale conntrack entries
/// the verb's end flushes (what they mapped and `extra_udp`, also when a
/// family failed) and the outcome.
fn remove_where(
    present: &[Flavour],
    network: &str,
    pick: &(dyn Fn(&BTreeSet<UpstreamOwner>) -> BTreeSet<String> + Sync),
    extra_udp: &BTreeSet<MapKey>,
) -> (BTreeSet<MapKey>, Result<(), IptablesError>) {
    let remove_family = |family: Family| {
        let mut udp = BTreeSet::new();
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
        (udp, result)
    };
    let mut udp = extra_udp.clone();
    let mut result = Ok(());
    for (keys, r) in side_by_side(vec![Family::V4, Family::V6], remove_family) {
        udp.extend(keys);
        result = result.and(r);
    }
    (udp, result)
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

/// DEL's fast path, without `iptables-save`, for an attachment whose
/// index lists its rules, when each family's flavour is unambiguous (one
/// in `present`): iptables-nft over the verb's socket ([`nfnl::remove`],
/// no process; the last attachment takes the shared chains and the
/// localnet drop with it), iptables-legacy, when another attachment keeps
/// the shared chains, with one restore per family (side by side)
/// deleting exactly what ADD wrote, when another indexed attachment of
/// that family exists. Returns whether all of it went (`false`: nothing,
/// or only part, removed; DEL then takes the save path, which finds
/// whatever is left) and the UDP keys of what went, for the verb's
/// conntrack flush.
fn remove_indexed(owner: &Owner, session: &Session) -> (bool, BTreeSet<MapKey>) {
    let mut udp = BTreeSet::new();
    let Ok(Some(mine)) = state::read_index::<IptablesIndex>(owner) else {
        return (false, udp);
    };
    let mut legacy = Vec::new();
    for rules in &mine.iptables {
        let v6 = v6(rules.family);
        let flavours: Vec<Flavour> = session
            .present
            .iter()
            .filter(|f| f.v6() == v6)
            .copied()
            .collect();
        match flavours.as_slice() {
            [Flavour::Nft { .. }] => {
                let removed = session
                    .dnat(|sock, dnat| nfnl::remove(sock, dnat, v6, &rules.chain))
                    .unwrap_or(false);
                if !removed {
                    return (false, udp);
                }
                udp.extend(rules.udp_keys());
            }
            [f @ Flavour::Legacy { .. }] => legacy.push((*f, rules)),
            _ => return (false, udp),
        }
    }
    if legacy.is_empty() {
        return (true, udp);
    }
    let me = owner.tag();
    let Ok(indexes) = state::read_indexes::<IptablesIndex>() else {
        return (false, udp);
    };
    let shared_kept = |family: Family| {
        indexes
            .iter()
            .filter(|i| i.owner != me)
            .any(|i| i.iptables.iter().any(|r| r.family == family))
    };
    if !legacy.iter().all(|(_, rules)| shared_kept(rules.family)) {
        return (false, udp);
    }
    let removed = side_by_side(legacy, |(f, rules)| {
        exec::restore(f, &rules.removal_input())
            .is_ok()
            .then(|| rules.udp_keys())
    });
    let all = removed.iter().all(Option::is_some);
    udp.extend(removed.into_iter().flatten().flatten());
    (all, udp)
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
    /// Reads each family's table (over netlink where [`fresh`] applies,
    /// else saved, side by side, a flushed one healed from the index
    /// files), refuses conflicts, then per family (side by side) restores
    /// its input. Returns what it installed. The IPv4 `raw` table
    /// is read only when iptables-nft's localnet drop is not known to be in
    /// place ([`Session::localnet_in_place`]) or the flavour is legacy.
    fn install(plan: &PodPlan, session: &Session) -> Result<Vec<PodRules>, IptablesError> {
        let present = &session.present;
        let localnet_in_place = plan.container_ipv4().is_some() && session.localnet_in_place();
        let me = plan.owner.tag();
        let families: Vec<PodRules> = [Family::V4, Family::V6]
            .into_iter()
            .filter_map(|f| PodRules::new(plan, f))
            .collect();
        // The socket is the verb's thread's: the fast reads go first.
        let mark = 1u32 << plan.config.mark_masq_bit;
        let read: Vec<Option<NatTable>> = families
            .iter()
            .map(|r| {
                if !present.contains(&Flavour::Nft { v6: v6(r.family) }) {
                    return None;
                }
                session
                    .dnat(|sock, dnat| fresh::table_for(sock, dnat, r, &r.keys(plan), mark))
                    .flatten()
            })
            .collect();
        let saved = side_by_side(families.iter().zip(read).collect(), |(r, read)| {
            let nft = Flavour::Nft { v6: v6(r.family) };
            let (flavour, table) = match read {
                Some(table) => (nft, table),
                None => {
                    let (flavour, mut table) = chosen(present, r.family)?;
                    if flushed(&table) {
                        table = heal(flavour, table, r.family, &me)?;
                    }
                    (flavour, table)
                }
            };
            let raw = match flavour {
                Flavour::Nft { v6: false } if localnet_in_place => String::new(),
                _ => localnet_of(flavour)?,
            };
            Ok((flavour, table, raw))
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
            staged.push((flavour, input));
        }
        side_by_side(staged, |(flavour, input)| exec::restore(flavour, &input))
            .into_iter()
            .collect::<Result<(), IptablesError>>()?;
        Ok(families)
    }
}

impl Iptables {
    /// ADD under the lock: installs, records the index, enables
    /// `route_localnet`; any failure but a conflict undoes what was done.
    fn add_in(plan: &PodPlan, session: &Session) -> Result<(), CniError> {
        let what = format!("adding hostPort DNAT for {}", plan.owner.tag());
        let owner = &plan.owner;
        let undo = || {
            let mine = |_: &BTreeSet<UpstreamOwner>| BTreeSet::from([owner.container_id.clone()]);
            // Probed again: on a host with no `nat` table yet, the session's
            // flavours are none, and the one just written must be undone.
            let present = Session::open().present;
            let _ = remove_where(&present, &owner.network, &mine, &BTreeSet::new());
            let _ = state::remove_index(owner);
        };
        let installed = match Self::install(plan, session) {
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
        Ok(())
    }
}

impl Firewall for Iptables {
    fn add(&self, plan: &PodPlan) -> Result<(), CniError> {
        if plan.is_empty() {
            return Ok(());
        }
        let _lock = NetnsLock::take()?;
        let session = Session::open_tracked();
        let result = Self::add_in(plan, &session);
        // The new mapping's stale UDP entries go after the reply (none
        // when ADD failed: nothing was installed), but not those its own
        // rules already made.
        let touched = match &result {
            Ok(()) => plan.keys(),
            Err(_) => BTreeSet::new(),
        };
        session.finish(&touched, &plan.udp_targets());
        result
    }

    fn check(&self, plan: &PodPlan) -> Result<(), CniError> {
        let what = format!("check of {}", plan.owner.tag());
        let session = Session::open();
        let present = session.present.clone();
        session.finish(&BTreeSet::new(), &BTreeSet::new());
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
        let session = Session::open_tracked();
        let (all, mut udp) = remove_indexed(owner, &session);
        udp.extend(extra_udp.iter().copied());
        let removed = if all {
            Ok(())
        } else {
            let mine = |_: &BTreeSet<UpstreamOwner>| BTreeSet::from([owner.container_id.clone()]);
            let (keys, r) = remove_where(&session.present, &owner.network, &mine, &udp);
            udp = keys;
            r.map_err(|e| e.into_cni(&format!("removing hostPort DNAT of {}", owner.tag())))
        };
        // The stale UDP entries go after the reply, whatever failed.
        session.finish(&udp, &BTreeSet::new());
        removed?;
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
        let session = Session::open();
        let (udp, removed) = remove_where(&session.present, network, &stale, &BTreeSet::new());
        session.finish(&udp, &BTreeSet::new());
        removed.map_err(|e| {
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
            let session = Session::open();
            // Where iptables-nft holds the layout and its PREROUTING still
            // enters it, the table chosen below would be that one and not
            // flushed: one GETRULE dump instead of an iptables-nft-save.
            let intact: Vec<Family> = [Family::V4, Family::V6]
                .into_iter()
                .filter(|f| {
                    let v6 = v6(*f);
                    session.present.contains(&Flavour::Nft { v6 })
                        && session
                            .sock()
                            .and_then(|s| nfnl::prerouting_enters_dnat(s, v6))
                            == Some(true)
                })
                .collect();
            let present = session.present.clone();
            session.close();
            for family in [Family::V4, Family::V6] {
                if intact.contains(&family) {
                    continue;
                }
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
