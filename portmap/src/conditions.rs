//! `conditionsV4` / `conditionsV6`: the nft-syntax match tokens users add in
//! front of their DNAT rules, parsed into a small typed subset and turned into
//! `nftables` JSON statements. Pure. Anything outside the subset is refused
//! with code 7 before any side effect (upstream only fails when nft does).

use std::borrow::Cow;
use std::net::IpAddr;

use cni::CniError;
use nftables::expr::{
    Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, SetItem,
};
use nftables::stmt::{Match, Operator, Statement};

/// What a condition looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKey {
    /// `ip saddr` / `ip6 saddr` (the family of the list it came from).
    Saddr,
    Daddr,
    Iifname,
    Oifname,
    Mark,
}

/// One value a condition compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionValue {
    Addr(IpAddr),
    Prefix(IpAddr, u8),
    Name(String),
    Number(u32),
}

/// One `<key> [==|!=] <value | { v, ... }>` match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub key: ConditionKey,
    pub v4: bool,
    pub negate: bool,
    pub values: Vec<ConditionValue>,
}

fn bad(field: &str, msg: impl std::fmt::Display) -> CniError {
    CniError::invalid_config(format!("portmap: {field}: {msg}")).with_details(
        "supported nft conditions: ip/ip6 saddr|daddr, iifname, oifname, meta mark; \
         each with an optional == or != and a value or { set }",
    )
}

/// Parses one conditions list; `v4` says which family it belongs to.
pub fn parse_conditions(
    field: &str,
    tokens: Option<&[String]>,
    v4: bool,
) -> Result<Vec<Condition>, CniError> {
    let Some(tokens) = tokens else {
        return Ok(Vec::new());
    };
    if tokens
        .first()
        .is_some_and(|t| t.starts_with('-') || t.starts_with('!'))
    {
        return Err(bad(
            field,
            "iptables-style conditions need the iptables backend; the nftables backend takes nft syntax",
        ));
    }
    let text = tokens
        .join(" ")
        .replace('{', " { ")
        .replace('}', " } ")
        .replace(',', " , ");
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let (key, used) = match (words[i], words.get(i + 1).copied()) {
            ("ip", Some(f)) | ("ip6", Some(f)) => {
                if (words[i] == "ip") != v4 {
                    return Err(bad(
                        field,
                        format!("{:?} does not match this family", words[i]),
                    ));
                }
                match f {
                    "saddr" => (ConditionKey::Saddr, 2),
                    "daddr" => (ConditionKey::Daddr, 2),
                    other => return Err(bad(field, format!("unsupported field {other:?}"))),
                }
            }
            ("meta", Some("iifname")) => (ConditionKey::Iifname, 2),
            ("meta", Some("oifname")) => (ConditionKey::Oifname, 2),
            ("meta", Some("mark")) => (ConditionKey::Mark, 2),
            ("iifname", _) => (ConditionKey::Iifname, 1),
            ("oifname", _) => (ConditionKey::Oifname, 1),
            ("mark", _) => (ConditionKey::Mark, 1),
            (other, _) => return Err(bad(field, format!("unsupported condition near {other:?}"))),
        };
        i += used;
        let negate = match words.get(i).copied() {
            Some("!=") | Some("ne") => {
                i += 1;
                true
            }
            Some("==") | Some("eq") => {
                i += 1;
                false
            }
            _ => false,
        };
        let mut raw_values = Vec::new();
        match words.get(i).copied() {
            Some("{") => {
                i += 1;
                loop {
                    match words.get(i).copied() {
                        Some("}") => {
                            i += 1;
                            break;
                        }
                        Some(",") => i += 1,
                        Some(v) => {
                            raw_values.push(v);
                            i += 1;
                        }
                        None => return Err(bad(field, "unterminated { set }")),
                    }
                }
            }
            Some(v) => {
                raw_values.push(v);
                i += 1;
            }
            None => return Err(bad(field, "condition without a value")),
        }
        if raw_values.is_empty() {
            return Err(bad(field, "empty { set }"));
        }
        let values = raw_values
            .iter()
            .map(|v| value(field, key, v4, v))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(Condition {
            key,
            v4,
            negate,
            values,
        });
    }
    Ok(out)
}

fn value(field: &str, key: ConditionKey, v4: bool, raw: &str) -> Result<ConditionValue, CniError> {
    match key {
        ConditionKey::Saddr | ConditionKey::Daddr => {
            let (addr, prefix) = match raw.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (raw, None),
            };
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| bad(field, format!("invalid address {raw:?}")))?;
            if ip.is_ipv4() != v4 {
                return Err(bad(
                    field,
                    format!("address {raw:?} is of the other family"),
                ));
            }
            match prefix {
                None => Ok(ConditionValue::Addr(ip)),
                Some(p) => {
                    let max = if v4 { 32 } else { 128 };
                    match p.parse::<u8>() {
                        Ok(n) if n <= max => Ok(ConditionValue::Prefix(ip, n)),
                        _ => Err(bad(field, format!("invalid prefix {raw:?}"))),
                    }
                }
            }
        }
        ConditionKey::Iifname | ConditionKey::Oifname => {
            let name = raw.trim_matches('"');
            if name.is_empty() || name.len() > 15 || name.contains('"') {
                return Err(bad(field, format!("invalid interface name {raw:?}")));
            }
            Ok(ConditionValue::Name(name.to_string()))
        }
        ConditionKey::Mark => {
            let n = match raw.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => raw.parse::<u32>(),
            };
            n.map(ConditionValue::Number)
                .map_err(|_| bad(field, format!("invalid mark {raw:?}")))
        }
    }
}

impl Condition {
    /// The nft JSON match statement.
    pub fn statement(&self) -> Statement<'static> {
        let family = if self.v4 { "ip" } else { "ip6" };
        let payload = |f: &'static str| {
            Expression::Named(NamedExpression::Payload(Payload::PayloadField(
                PayloadField {
                    protocol: Cow::Borrowed(family),
                    field: Cow::Borrowed(f),
                },
            )))
        };
        let meta = |key| Expression::Named(NamedExpression::Meta(Meta { key }));
        let left = match self.key {
            ConditionKey::Saddr => payload("saddr"),
            ConditionKey::Daddr => payload("daddr"),
            ConditionKey::Iifname => meta(MetaKey::Iifname),
            ConditionKey::Oifname => meta(MetaKey::Oifname),
            ConditionKey::Mark => meta(MetaKey::Mark),
        };
        let right = if self.values.len() == 1 {
            value_expr(&self.values[0])
        } else {
            Expression::Named(NamedExpression::Set(
                self.values
                    .iter()
                    .map(|v| SetItem::Element(value_expr(v)))
                    .collect(),
            ))
        };
        Statement::Match(Match {
            left,
            right,
            op: if self.negate {
                Operator::NEQ
            } else {
                Operator::EQ
            },
        })
    }
}

fn value_expr(v: &ConditionValue) -> Expression<'static> {
    match v {
        ConditionValue::Addr(ip) => Expression::String(Cow::Owned(ip.to_string())),
        ConditionValue::Prefix(ip, len) => Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(Cow::Owned(ip.to_string()))),
            len: u32::from(*len),
        })),
        ConditionValue::Name(n) => Expression::String(Cow::Owned(n.clone())),
        ConditionValue::Number(n) => Expression::Number(*n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &[&str]) -> Vec<String> {
        s.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn parses_the_documented_shapes() {
        let c = parse_conditions(
            "conditionsV4",
            Some(&toks(&["ip", "saddr", "!=", "198.19.0.0/24"])),
            true,
        )
        .unwrap();
        assert_eq!(
            c,
            vec![Condition {
                key: ConditionKey::Saddr,
                v4: true,
                negate: true,
                values: vec![ConditionValue::Prefix("198.19.0.0".parse().unwrap(), 24)]
            }]
        );
        let c = parse_conditions(
            "conditionsV4",
            Some(&toks(&[
                "iifname { eth0, \"eth1\" } ip daddr 10.0.0.1 meta mark 0x10",
            ])),
            true,
        )
        .unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].values.len(), 2);
        assert_eq!(c[2].values, vec![ConditionValue::Number(16)]);
        assert!(parse_conditions(
            "conditionsV6",
            Some(&toks(&["ip6", "daddr", "fd00::/8"])),
            false
        )
        .is_ok());
        assert!(parse_conditions("c", Some(&[]), true).unwrap().is_empty());
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for t in [
            vec!["-s", "198.18.1.4"],
            vec!["!", "-d", "198.18.1.4"],
            vec!["ip6", "saddr", "fd00::1"],
            vec!["ip", "saddr", "fd00::1"],
            vec!["ip", "saddr"],
            vec!["tcp", "dport", "80"],
            vec!["ip", "saddr", "{", "198.18.1.4"],
            vec!["ip", "ttl", "3"],
            vec!["a", "b"],
        ] {
            let e = parse_conditions("conditionsV4", Some(&toks(&t)), true).unwrap_err();
            assert_eq!(e.code, cni::ErrorCode::InvalidNetworkConfig, "{t:?}");
            assert!(e.msg.starts_with("portmap: conditionsV4: "), "{}", e.msg);
        }
    }
}
