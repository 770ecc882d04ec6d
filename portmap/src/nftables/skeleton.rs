//! The shared skeleton of our table, as one nft JSON batch: the table, the
//! DNAT maps (address, port and verdict map per registry map), the
//! masquerade sets, `hostports` with its lookups, the `prerouting`/`output`
//! entry chains (`fib daddr type local`) and `postrouting`'s masquerade
//! rules. Created only when missing (ADD after ENOENT) and validated by
//! STATUS. Pure.
//!
//! Layout (one `inet` table, `cni_portmap`), flat so that per-pod work is
//! set elements only:
//! - `prerouting` / `output` (nat, dstnat): `fib daddr type local jump hostports`;
//!   `prerouting` first drops new connections to 127.0.0.0/8 from any
//!   interface but `lo` (see [`localhost_from_outside_drop`]).
//! - `hostports`, per family, most specific first: hostIP mappings
//!   (`ip daddr . meta l4proto . th dport`), then wildcard ones
//!   (`meta l4proto . th dport`); each first as a verdict-map lookup in
//!   `cond_hostip_v4` / `cond_ports_v4` (pods with conditions: `goto` their
//!   `pod-<hash>` chain), then as `dnat ip to <key> map @ports_v4 : <key> map
//!   @ports_v4_port` (container address and port; two maps because nft 1.0.6
//!   crashes on JSON DNAT with concatenated map values), likewise `hostip_v4`.
//! - `postrouting` (nat, srcnat), for DNAT'ed connections only (`ct status
//!   dnat`): masquerade hairpin (`ip saddr . ip daddr @masq_hairpin_v4`, the
//!   pod to itself), IPv4 localhost (`ip saddr 127.0.0.0/8 ip daddr
//!   @masq_local_v4`) and masqAll (`ip daddr @masq_all_v4`); IPv6 likewise
//!   without localhost.
//!
//! The DNAT maps are also the hostPort registry: their elements are added
//! with `create` semantics, so another attachment's key fails the whole
//! batch. A pod with conditions still claims its keys there (its verdict-map
//! entry is looked up first and `goto` never returns into `hostports`).
//! Masquerade elements are keyed by pod address (one per pod and set, plain
//! `add`). Every element carries the owner tag as its comment. `markMasqBit` is
//! validated for compatibility and unused: the sets decide masquerading.
//!
//! A new connection costs a handful of hash lookups whatever the number of
//! pods, and an ADD or DEL touches only the pod's elements.

use std::borrow::Cow;

use nftables::batch::Batch;
use nftables::expr::{Expression, Fib, FibFlag, FibResult, MetaKey, NamedExpression, CT};
use nftables::schema::{FlushObject, Map, NfCmd, NfListObject, Set, SetType, SetTypeValue, Table};
use nftables::stmt::{JumpTarget, Match, Operator, Statement, VerdictMap, NAT};
use nftables::types::NfHook;
use serde_json::Value;

use super::elements::{cond_map_name, map_name, port_map_name, FAMILY, MAPS, MASQ_SETS, TABLE};
use super::ruleset::{
    base_chain, eq, map_lookup, meta, nat_family, payload, prefix, regular_chain, s, s_owned,
    static_rule,
};
use super::schema_gaps::with_verdict_maps;
use crate::plan::Family;

/// Creates what is missing of the skeleton: table, maps, sets, and the
/// chains with their static rules (flushed and rewritten, so a repeat is
/// harmless; maps and sets are only added, keeping their elements).
pub fn skeleton_batch() -> Value {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(Table {
        family: FAMILY,
        name: Cow::Borrowed(TABLE),
        handle: None,
    }));
    let verdict_maps = add_maps(&mut batch);
    add_masq_sets(&mut batch);
    add_hostports(&mut batch);
    add_entry_chains(&mut batch);
    add_postrouting(&mut batch);
    with_verdict_maps(batch, &verdict_maps)
}

fn set_types(fields: &[SetType]) -> SetTypeValue<'static> {
    match fields {
        [one] => SetTypeValue::Single(*one),
        many => SetTypeValue::Concatenated(Cow::Owned(many.to_vec())),
    }
}

fn addr_type(family: Family) -> SetType {
    match family {
        Family::V4 => SetType::Ipv4Addr,
        Family::V6 => SetType::Ipv6Addr,
    }
}

/// The three maps of each registry map; returns the verdict maps' names
/// (see [`super::schema_gaps`]).
fn add_maps(batch: &mut Batch<'static>) -> Vec<String> {
    let mut verdict_maps = Vec::new();
    for (family, host_ip) in MAPS {
        let mut key = Vec::new();
        if host_ip {
            key.push(addr_type(family));
        }
        key.push(SetType::InetProto);
        key.push(SetType::InetService);
        let map = |name: String, data: SetTypeValue<'static>| {
            NfListObject::Map(Box::new(Map {
                family: FAMILY,
                table: Cow::Borrowed(TABLE),
                name: Cow::Owned(name),
                set_type: set_types(&key),
                map: data,
                ..Map::default()
            }))
        };
        batch.add(map(
            map_name(family, host_ip),
            SetTypeValue::Single(addr_type(family)),
        ));
        batch.add(map(
            port_map_name(family, host_ip),
            SetTypeValue::Single(SetType::InetService),
        ));
        // A placeholder data type, patched to "verdict" in schema_gaps.
        let cond = cond_map_name(family, host_ip);
        verdict_maps.push(cond.clone());
        batch.add(map(cond, SetTypeValue::Single(SetType::Mark)));
    }
    verdict_maps
}

fn add_masq_sets(batch: &mut Batch<'static>) {
    for (name, family) in MASQ_SETS {
        let types: Vec<SetType> = if name.starts_with("masq_hairpin") {
            vec![addr_type(family), addr_type(family)]
        } else {
            vec![addr_type(family)]
        };
        batch.add(NfListObject::Set(Box::new(Set {
            family: FAMILY,
            table: Cow::Borrowed(TABLE),
            name: Cow::Borrowed(name),
            set_type: set_types(&types),
            ..Set::default()
        })));
    }
}

/// `hostports`: per registry map, the verdict-map lookup then the DNAT.
fn add_hostports(batch: &mut Batch<'static>) {
    let hostports = regular_chain("hostports");
    batch.add(NfListObject::Chain(hostports.clone()));
    batch.add_cmd(NfCmd::Flush(FlushObject::Chain(hostports)));
    for (family, host_ip) in MAPS {
        let mut key = Vec::new();
        if host_ip {
            key.push(payload(family.payload(), "daddr"));
        }
        key.push(meta(MetaKey::L4proto));
        key.push(payload("th", "dport"));
        let key = Expression::Named(NamedExpression::Concat(key));
        let guard = || eq(meta(MetaKey::Nfproto), s(family.nfproto()));
        batch.add(NfListObject::Rule(static_rule(
            "hostports",
            vec![
                guard(),
                Statement::VerdictMap(VerdictMap {
                    key: key.clone(),
                    data: s_owned(format!("@{}", cond_map_name(family, host_ip))),
                }),
            ],
        )));
        batch.add(NfListObject::Rule(static_rule(
            "hostports",
            vec![
                guard(),
                Statement::DNAT(Some(NAT {
                    addr: Some(map_lookup(key.clone(), map_name(family, host_ip))),
                    family: Some(nat_family(family)),
                    port: Some(map_lookup(key, port_map_name(family, host_ip))),
                    flags: None,
                })),
            ],
        )));
    }
}

/// `prerouting` and `output`: local destinations go to `hostports`.
fn add_entry_chains(batch: &mut Batch<'static>) {
    for (name, hook) in [
        ("prerouting", NfHook::Prerouting),
        ("output", NfHook::Output),
    ] {
        let chain = base_chain(name, hook, -100);
        batch.add(NfListObject::Chain(chain.clone()));
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(chain)));
        if hook == NfHook::Prerouting {
            batch.add(NfListObject::Rule(localhost_from_outside_drop()));
        }
        batch.add(NfListObject::Rule(static_rule(
            name,
            vec![
                eq(
                    Expression::Named(NamedExpression::Fib(Fib {
                        result: FibResult::Type,
                        flags: [FibFlag::Daddr].into_iter().collect(),
                    })),
                    s("local"),
                ),
                Statement::Jump(JumpTarget {
                    target: Cow::Borrowed("hostports"),
                }),
            ],
        )));
    }
}

/// `iifname != "lo" ip daddr 127.0.0.0/8 drop`, first in `prerouting`: a
/// new connection to localhost that arrives from outside the host (the
/// martian `route_localnet=1` lets through, CVE-2020-8558) never reaches a
/// localhost hostPort's DNAT. A nat chain sees first packets only, so
/// replies to our own localhost masquerade are not affected.
fn localhost_from_outside_drop() -> nftables::schema::Rule<'static> {
    static_rule(
        "prerouting",
        vec![
            Statement::Match(Match {
                left: meta(MetaKey::Iifname),
                right: s("lo"),
                op: Operator::NEQ,
            }),
            eq(payload("ip", "daddr"), prefix("127.0.0.0", 8)),
            Statement::Drop(Some(nftables::stmt::Drop {})),
        ],
    )
}

fn ct_status_dnat() -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::CT(CT {
            key: Cow::Borrowed("status"),
            family: None,
            dir: None,
        })),
        right: s("dnat"),
        op: Operator::IN,
    })
}

/// `postrouting`: one masquerade rule per masquerade set.
fn add_postrouting(batch: &mut Batch<'static>) {
    let post = base_chain("postrouting", NfHook::Postrouting, 100);
    batch.add(NfListObject::Chain(post.clone()));
    batch.add_cmd(NfCmd::Flush(FlushObject::Chain(post)));
    for (name, family) in MASQ_SETS {
        let p = family.payload();
        let mut expr = vec![ct_status_dnat()];
        let daddr = payload(p, "daddr");
        let set = s_owned(format!("@{name}"));
        if name.starts_with("masq_hairpin") {
            expr.push(eq(
                Expression::Named(NamedExpression::Concat(vec![payload(p, "saddr"), daddr])),
                set,
            ));
        } else {
            if name.starts_with("masq_local") {
                expr.push(eq(payload(p, "saddr"), prefix("127.0.0.0", 8)));
            }
            expr.push(eq(daddr, set));
        }
        expr.push(Statement::Masquerade(None));
        batch.add(NfListObject::Rule(static_rule("postrouting", expr)));
    }
}
