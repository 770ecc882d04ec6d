//! The nft JSON batches of one attachment and of the DEL/GC fallbacks,
//! built with the `nftables` crate's types: its pod chain's rules (pods
//! with conditions), the `add`/`create` batch, the same-owner replacement,
//! deletes and the table listing. The expression helpers every batch uses
//! live here too; the one place the crate's schema falls short is
//! `schema_gaps.rs`. Pure.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::IpAddr;

use nftables::batch::Batch;
use nftables::expr::{
    Elem, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, Verdict,
};
use nftables::schema::{Chain, Element, FlushObject, NfCmd, NfListObject, Rule, Table};
use nftables::stmt::{JumpTarget, Match, NATFamily, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfHook};
use serde_json::Value;

use super::elements::{self, ElementData, Field, SetElement, FAMILY, TABLE};
use super::schema_gaps::to_value;
use crate::plan::{conditions_of, Family, PodPlan};

/// A plan in nftables terms, computed once per verb: the plan and the set
/// elements it owns.
#[derive(Debug, Clone)]
pub struct NftPod<'a> {
    /// The plan.
    pub plan: &'a PodPlan,
    /// [`elements::of`] the plan.
    pub elements: Vec<SetElement>,
}

impl<'a> NftPod<'a> {
    /// The nftables form of `plan`.
    pub fn new(plan: &'a PodPlan) -> NftPod<'a> {
        NftPod {
            plan,
            elements: elements::of(plan),
        }
    }

    /// The rules of the pod chain (pods with conditions only): per
    /// effective mapping, its match, the conditions and the DNAT.
    pub fn rules(&self) -> Vec<Rule<'static>> {
        let Some(chain) = &self.plan.chain else {
            return Vec::new();
        };
        let mut rules = Vec::new();
        for d in self.plan.effective_dnats() {
            let mut expr = vec![
                eq(meta(MetaKey::Nfproto), s(d.family.nfproto())),
                eq(meta(MetaKey::L4proto), s(d.protocol.as_str())),
                eq(
                    payload("th", "dport"),
                    Expression::Number(u32::from(d.host_port)),
                ),
            ];
            if let Some(ip) = d.host_ip {
                expr.push(eq(payload(d.family.payload(), "daddr"), ip_expr(ip)));
            }
            expr.extend(
                conditions_of(&self.plan.config, d.family)
                    .iter()
                    .map(|c| c.statement()),
            );
            expr.push(Statement::DNAT(Some(NAT {
                addr: Some(ip_expr(d.container_ip)),
                family: Some(nat_family(d.family)),
                port: Some(Expression::Number(u32::from(d.container_port))),
                flags: None,
            })));
            rules.push(Rule {
                family: FAMILY,
                table: Cow::Borrowed(TABLE),
                chain: Cow::Owned(chain.clone()),
                expr: Cow::Owned(expr),
                comment: Some(Cow::Owned(self.plan.comment.clone())),
                ..Rule::default()
            });
        }
        rules
    }

    /// Adds the elements with their owner comment: DNAT keys with `create`.
    fn add_elements(&self, batch: &mut Batch<'static>) {
        for e in &self.elements {
            let obj = e.object(Some(&self.plan.comment));
            if e.exclusive {
                batch.add_cmd(NfCmd::Create(obj));
            } else {
                batch.add(obj);
            }
        }
    }

    /// The nft batch for a new attachment: `create` the pod chain (if any)
    /// and the DNAT elements, so an existing chain (re-ADD) or a hostPort
    /// owned by someone else fails the whole batch with "File exists".
    /// (The hot path sends the same elements over nfnetlink, see
    /// [`super::nfnl`]; this form serves pods with conditions.)
    pub fn add_batch(&self) -> Value {
        let mut batch = Batch::new();
        if let Some(chain) = &self.plan.chain {
            batch.add_cmd(NfCmd::Create(NfListObject::Chain(regular_chain(chain))));
            for r in self.rules() {
                batch.add(NfListObject::Rule(r));
            }
        }
        self.add_elements(&mut batch);
        to_value(batch)
    }

    /// The pod chain with its rules and the pod's elements (`add`: what is
    /// left is kept), as a batch that recreates them whatever survived
    /// (`None` without conditions): what healing after a flush replays for
    /// a pod with conditions, kept in the index.
    pub fn chain_batch(&self) -> Option<Value> {
        let chain = self.plan.chain.as_ref()?;
        let mut batch = Batch::new();
        batch.add(NfListObject::Chain(regular_chain(chain)));
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(regular_chain(chain))));
        for r in self.rules() {
            batch.add(NfListObject::Rule(r));
        }
        for e in &self.elements {
            batch.add(e.object(Some(&self.plan.comment)));
        }
        Some(to_value(batch))
    }

    /// Re-ADD by the same owner: replace its elements (and chain) atomically.
    pub fn replace_batch(&self, old: &[SetElement], chains: &BTreeSet<String>) -> Value {
        let mut batch = Batch::new();
        for e in old {
            batch.delete(e.object(None));
        }
        for c in chains {
            if Some(c) != self.plan.chain.as_ref() {
                batch.add_cmd(NfCmd::Flush(FlushObject::Chain(regular_chain(c))));
                batch.delete(NfListObject::Chain(regular_chain(c)));
            }
        }
        if let Some(chain) = &self.plan.chain {
            batch.add(NfListObject::Chain(regular_chain(chain)));
            batch.add_cmd(NfCmd::Flush(FlushObject::Chain(regular_chain(chain))));
            for r in self.rules() {
                batch.add(NfListObject::Rule(r));
            }
        }
        self.add_elements(&mut batch);
        to_value(batch)
    }
}

impl Field {
    fn expr(&self) -> Expression<'static> {
        match self {
            Field::Addr(ip) => ip_expr(*ip),
            Field::Proto(p) => s(p.as_str()),
            Field::Port(p) => Expression::Number(u32::from(*p)),
        }
    }
}

impl SetElement {
    fn key_expr(&self) -> Expression<'static> {
        concat_expr(&self.key)
    }

    /// The element as nft JSON (`add`/`create`/`delete element`).
    fn object(&self, comment: Option<&str>) -> NfListObject<'static> {
        let mut item = self.key_expr();
        if let Some(c) = comment {
            item = Expression::Named(NamedExpression::Elem(Elem {
                val: Box::new(item),
                timeout: None,
                expires: None,
                comment: Some(Cow::Owned(c.to_string())),
                counter: None,
            }));
        }
        let item = match (&self.data, comment) {
            (_, None) | (ElementData::None, _) => item,
            (ElementData::Fields(v), Some(_)) => Expression::List(vec![item, concat_expr(v)]),
            (ElementData::Goto(chain), Some(_)) => Expression::List(vec![
                item,
                Expression::Verdict(Verdict::Goto(JumpTarget {
                    target: Cow::Owned(chain.clone()),
                })),
            ]),
        };
        NfListObject::Element(Element {
            family: FAMILY,
            table: Cow::Borrowed(TABLE),
            name: Cow::Owned(self.set.clone()),
            elem: Cow::Owned(vec![item]),
        })
    }
}

pub(super) fn concat_expr(fields: &[Field]) -> Expression<'static> {
    if let [one] = fields {
        return one.expr();
    }
    Expression::Named(NamedExpression::Concat(
        fields.iter().map(Field::expr).collect(),
    ))
}

pub(super) fn map_lookup(key: Expression<'static>, map: String) -> Expression<'static> {
    Expression::Named(NamedExpression::Map(Box::new(nftables::expr::Map {
        key,
        data: s_owned(format!("@{map}")),
    })))
}

pub(super) fn nat_family(family: Family) -> NATFamily {
    match family {
        Family::V4 => NATFamily::IP,
        Family::V6 => NATFamily::IP6,
    }
}

/// Deletes the given elements and pod chains (DEL fallback, GC).
pub fn delete_batch(elements: &[SetElement], chains: &BTreeSet<String>) -> Value {
    let mut batch = Batch::new();
    for e in elements {
        batch.delete(e.object(None));
    }
    for c in chains {
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(regular_chain(c))));
        batch.delete(NfListObject::Chain(regular_chain(c)));
    }
    to_value(batch)
}

/// Lists our whole table (one JSON document).
pub fn list_table_batch() -> Value {
    let mut batch = Batch::new();
    batch.add_cmd(NfCmd::List(NfListObject::Table(Table {
        family: FAMILY,
        name: Cow::Borrowed(TABLE),
        handle: None,
    })));
    to_value(batch)
}

pub(super) fn regular_chain(name: &str) -> Chain<'static> {
    Chain {
        family: FAMILY,
        table: Cow::Borrowed(TABLE),
        name: Cow::Owned(name.to_string()),
        ..Chain::default()
    }
}

pub(super) fn base_chain(name: &str, hook: NfHook, prio: i32) -> Chain<'static> {
    Chain {
        _type: Some(NfChainType::NAT),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..regular_chain(name)
    }
}

pub(super) fn static_rule(chain: &str, expr: Vec<Statement<'static>>) -> Rule<'static> {
    Rule {
        family: FAMILY,
        table: Cow::Borrowed(TABLE),
        chain: Cow::Owned(chain.to_string()),
        expr: Cow::Owned(expr),
        ..Rule::default()
    }
}

pub(super) fn s(v: &'static str) -> Expression<'static> {
    Expression::String(Cow::Borrowed(v))
}

pub(super) fn s_owned(v: String) -> Expression<'static> {
    Expression::String(Cow::Owned(v))
}

pub(super) fn ip_expr(ip: IpAddr) -> Expression<'static> {
    s_owned(ip.to_string())
}

pub(super) fn prefix(addr: &'static str, len: u32) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(addr)),
        len,
    }))
}

pub(super) fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

pub(super) fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

pub(super) fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}
