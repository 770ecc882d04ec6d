//! Taking over from upstream portmap: DEL and GC also remove what the
//! reference plugin installed for the same attachment, and ADD refuses a
//! hostPort an upstream rule maps for another container.
//!
//! Flavours handled, per family (IPv4 and IPv6):
//! - iptables-nft: upstream's `nat` table is an nf_tables table of family
//!   ip/ip6; one netlink GETCHAIN of `CNI-HOSTPORT-DNAT` in it says whether
//!   anything is there (no process). Only then `ip[6]tables-nft-save -t nat`
//!   and one `ip[6]tables-nft-restore -w 5 --noflush` transaction (which,
//!   when the last attachment goes, also removes the iptables backend's
//!   IPv4 `raw` chain `CNI-HOSTPORT-LOCALNET`, if there).
//! - iptables-legacy: `/proc/net/ip[6]_tables_names` lists `nat` only when
//!   the legacy nat table is loaded (a file read); only then
//!   `ip[6]tables-legacy-save`/`-restore` the same way.
//! - upstream's nftables backend: a netlink GETTABLE of `cni_hostport`
//!   (ip/ip6); only then `nft -a list table` and one `nft -f -` deleting the
//!   rules commented with the container ID.
//!
//! The parsing and the restore input are pure ([`iptables`], [`nft`]).

pub mod iptables;
pub mod nft;

use std::collections::BTreeSet;

use cni::args::Owner;
use cni::netlink::netfilter::Nfnl;
use cni::CniError;
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, NfTablesMessage, TableAttribute, TableMessage,
};
use netlink_packet_netfilter::NetfilterProtoFamily;

use self::iptables::{NatTable, UpstreamOwner};
use crate::iptables::exec::{self, Flavour};
use crate::plan::{Family, MapKey};

fn family(v6: bool) -> NetfilterProtoFamily {
    if v6 {
        NetfilterProtoFamily::IPv6
    } else {
        NetfilterProtoFamily::IPv4
    }
}

/// What the no-spawn probe found.
#[derive(Debug, Default)]
pub(crate) struct Present {
    /// Flavours whose `nat` table may hold upstream's layout: iptables-nft
    /// when `CNI-HOSTPORT-DNAT` exists, iptables-legacy when its `nat` table
    /// is loaded.
    pub(crate) iptables: Vec<Flavour>,
    nft_v4: bool,
    nft_v6: bool,
}

fn legacy_nat(v6: bool) -> bool {
    let path = if v6 {
        "/proc/net/ip6_tables_names"
    } else {
        "/proc/net/ip_tables_names"
    };
    std::fs::read_to_string(path)
        .map(|s| s.lines().any(|l| l.trim() == "nat"))
        .unwrap_or(false)
}

/// The legacy flavours whose `nat` table is loaded (file reads only: what
/// can be known without nfnetlink).
pub(crate) fn probe_legacy() -> Present {
    let iptables = [false, true]
        .into_iter()
        .filter(|v6| legacy_nat(*v6))
        .map(|v6| Flavour::Legacy { v6 })
        .collect();
    Present {
        iptables,
        ..Present::default()
    }
}

/// What of upstream's layout is present, seen through `sock` (the caller's
/// nfnetlink socket: the nftables backend probes on the socket of its own
/// transaction, so an ADD opens one socket and closes it once).
pub(crate) fn probe(sock: &Nfnl) -> Present {
    let mut present = probe_legacy();
    for v6 in [false, true] {
        let chain = NfTablesMessage::GetChain(ChainMessage {
            attributes: vec![
                ChainAttribute::Table("nat".into()),
                ChainAttribute::Name(iptables::DNAT.into()),
            ],
        });
        let table = NfTablesMessage::GetTable(TableMessage {
            attributes: vec![TableAttribute::Name(nft::TABLE.into())],
        });
        if let Ok(answers) = sock.nftables_get(family(v6), vec![chain, table]) {
            if answers.first().is_some_and(|a| a.is_ok()) {
                present.iptables.push(Flavour::Nft { v6 });
            }
            if answers.get(1).is_some_and(|a| a.is_ok()) {
                if v6 {
                    present.nft_v6 = true;
                } else {
                    present.nft_v4 = true;
                }
            }
        }
    }
    present
}

fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<String, CniError> {
    exec::run(program, args, input).map_err(|e| e.into_cni("removing upstream portmap's rules"))
}

fn save(f: Flavour) -> Result<NatTable, CniError> {
    exec::save(f).map_err(|e| e.into_cni("removing upstream portmap's rules"))
}

fn restore(f: Flavour, input: &str) -> Result<(), CniError> {
    exec::restore(f, input).map_err(|e| e.into_cni("removing upstream portmap's rules"))
}

/// Removes what upstream installed for `containers` of `network` (DEL: one
/// container; GC: the stale ones, chosen by `pick` from the owners found).
fn remove_where(
    sock: &Nfnl,
    network: &str,
    pick: &dyn Fn(&BTreeSet<UpstreamOwner>) -> BTreeSet<String>,
) -> Result<(), CniError> {
    let present = probe(sock);
    for f in present.iptables {
        let table = save(f)?;
        if !table.has_upstream() {
            continue;
        }
        let ids = pick(&table.owners());
        let input = crate::iptables::removal(f, &table, network, &ids)
            .map_err(|e| e.into_cni("removing upstream portmap's rules"))?;
        if let Some(input) = input {
            restore(f, &input)?;
        }
    }
    for (v6, there) in [(false, present.nft_v4), (true, present.nft_v6)] {
        if !there {
            continue;
        }
        let fam = if v6 { "ip6" } else { "ip" };
        let listing = run("nft", &["-a", "list", "table", fam, nft::TABLE], None)?;
        let rules = nft::parse_listing(&listing);
        let owners: BTreeSet<UpstreamOwner> = rules
            .iter()
            .map(|r| UpstreamOwner {
                network: network.to_string(),
                container_id: r.comment.clone(),
            })
            .collect();
        let ids = pick(&owners);
        if let Some(input) = nft::removal(fam, &rules, &ids) {
            run("nft", &["-f", "-"], Some(&input))?;
        }
    }
    Ok(())
}

/// DEL: removes upstream's rules for this attachment (network + container ID
/// only, as upstream keys them; nothing is read from a cache).
pub fn del(sock: &Nfnl, network: &str, container_id: &str) -> Result<(), CniError> {
    let id = container_id.to_string();
    remove_where(sock, network, &|_| BTreeSet::from([id.clone()]))
}

/// GC: removes upstream's rules of `network` for containers not in `valid`,
/// in iptables (entry comments name network and container) and in
/// upstream's nftables table, whose comments carry only the container ID:
/// there a container ID absent from `valid` counts as stale. (A node where
/// another network still runs upstream's nftables portmap for a sandbox
/// that this network does not list would lose that sandbox's rules; the
/// runtime lists every live sandbox of a network, and one network per node
/// is the Kubernetes case.)
pub fn gc(sock: &Nfnl, network: &str, valid: &BTreeSet<String>) -> Result<(), CniError> {
    remove_where(sock, network, &|owners| {
        owners
            .iter()
            .filter(|o| o.network == network && !valid.contains(&o.container_id))
            .map(|o| o.container_id.clone())
            .collect()
    })
}

/// ADD: refuses keys of `owner` that conflict ([`MapKey::conflicts_with`])
/// with a key an upstream rule maps for another container, naming it
/// (network + container ID from the rule's comment; upstream's nftables
/// comments carry the container ID only).
pub fn refuse_conflicts(
    sock: &Nfnl,
    owner: &Owner,
    keys: &BTreeSet<MapKey>,
) -> Result<(), CniError> {
    let present = probe(sock);
    if present.iptables.is_empty() && !present.nft_v4 && !present.nft_v6 {
        return Ok(());
    }
    let me = UpstreamOwner {
        network: owner.network.clone(),
        container_id: owner.container_id.clone(),
    };
    let mut found = Vec::new();
    let mut report = |theirs: &MapKey, whose: String| {
        for k in keys.iter().filter(|k| k.conflicts_with(theirs)) {
            let line = k.conflict_text(theirs, &format!("upstream portmap {whose}"));
            if !found.contains(&line) {
                found.push(line);
            }
        }
    };
    for f in &present.iptables {
        let family = if f.v6() { Family::V6 } else { Family::V4 };
        for (theirs, o) in save(*f)?.mapped_keys(family) {
            if o != me {
                let whose = format!("for network {:?} container {:?}", o.network, o.container_id);
                report(&theirs, whose);
            }
        }
    }
    for (v6, there) in [(false, present.nft_v4), (true, present.nft_v6)] {
        if !there {
            continue;
        }
        let fam = if v6 { "ip6" } else { "ip" };
        let family = if v6 { Family::V6 } else { Family::V4 };
        let rules = nft::parse_listing(&run(
            "nft",
            &["-a", "list", "table", fam, nft::TABLE],
            None,
        )?);
        for (theirs, id) in nft::mapped_keys(&rules, family) {
            if id != owner.container_id {
                report(&theirs, format!("(nftables) for container {id:?}"));
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(CniError::internal(format!(
        "portmap: adding hostPort DNAT for {}: {}",
        owner.tag(),
        found.join("; ")
    ))
    .with_details("a hostIP:hostPort/protocol can be mapped by one attachment at a time (a hostIP overlaps the wildcard of its family); delete the other attachment first"))
}

/// CHECK: what upstream still has installed for this attachment, described
/// (empty: nothing).
pub fn leftovers(sock: &Nfnl, network: &str, container_id: &str) -> Result<Vec<String>, CniError> {
    let present = probe(sock);
    let ids = BTreeSet::from([container_id.to_string()]);
    let mut out = Vec::new();
    for f in present.iptables {
        if save(f)?.removal(network, &ids).is_some() {
            out.push(format!(
                "upstream portmap's rules for this container are still in {}",
                f.tool("save").trim_end_matches("-save")
            ));
        }
    }
    for (v6, there) in [(false, present.nft_v4), (true, present.nft_v6)] {
        let fam = if v6 { "ip6" } else { "ip" };
        if there {
            let rules = nft::parse_listing(&run(
                "nft",
                &["-a", "list", "table", fam, nft::TABLE],
                None,
            )?);
            if nft::removal(fam, &rules, &ids).is_some() {
                out.push(format!(
                    "upstream portmap's rules for this container are still in table {fam} {}",
                    nft::TABLE
                ));
            }
        }
    }
    Ok(out)
}
