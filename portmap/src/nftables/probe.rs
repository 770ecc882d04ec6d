//! STATUS's capability check without spawning `nft`. Common case: our
//! committed `prerouting` chain is of type `nat` and holds the `fib daddr
//! type local` rule ([`layout_proves_nat_and_fib`]: one GETCHAIN and one
//! GETRULE dump, no transaction) — the kernel runs them, so it supports
//! them. Otherwise (no layout yet, or it is broken) one nfnetlink batch
//! that creates a throwaway `inet` table with a `nat` chain on prerouting
//! and a rule `fib daddr type local` → `dnat ip to 127.0.0.1`, sent
//! *without* the batch's END message. The kernel then runs every operation
//! (loading `nft_chain_nat`, `nft_fib_inet` and `nft_nat` on demand),
//! validates the table and aborts (`NFNL_ABORT_VALIDATE`, what `nft -c`
//! does): nothing is committed, every operation is acknowledged or refused
//! with the reason; it costs the kernel's RCU grace period of an aborted
//! transaction (~10 ms under load), which is why it is the fallback (the batch framing is
//! [`cni::netlink::netfilter::Nfnl::nftables_dry_run`]). The bytes of the fib, cmp, immediate and nat expressions
//! (which `netlink-packet-netfilter` does not model) are written here.

use cni::netlink::netfilter::{BatchError, Nfnl as Socket};
use netlink_packet_core::{DefaultNla, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, ExpressionAttribute, Expressions, Hook, HookNumber,
    InetHookNumber, ListAttribute, NfTablesMessage, RuleAttribute, RuleMessage, TableAttribute,
    TableFlags, TableMessage,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};

use super::elements::TABLE;

/// Our entry chain of type nat whose rule uses fib (see [`super::skeleton`]).
const ENTRY_CHAIN: &str = "prerouting";

/// The throwaway table (never committed).
const PROBE_TABLE: &str = "cni_portmap_probe";
const PROBE_CHAIN: &str = "probe";
/// `NFT_REG_1`.
const REG_1: u32 = 1;
/// `RTN_LOCAL`, as fib stores an address type (host order).
const RTN_LOCAL: u32 = 2;

/// Why nf_tables cannot do portmap's work here.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The nfnetlink exchange failed.
    #[error("nfnetlink: {0}")]
    Batch(BatchError),
    /// The kernel refused one of the operations.
    #[error("the kernel refused {what}: {}", std::io::Error::from_raw_os_error(*.errno))]
    Refused {
        /// What was refused.
        what: &'static str,
        /// The (positive) errno.
        errno: i32,
    },
}

fn u32_be(kind: u16, v: u32) -> DefaultNla {
    DefaultNla::new(kind, v.to_be_bytes().to_vec())
}

/// `NFTA_DATA_VALUE` nested in attribute `kind` (cmp and immediate data).
fn data_value(kind: u16, value: &[u8]) -> DefaultNla {
    const NFTA_DATA_VALUE: u16 = 1;
    let len = 4 + value.len();
    let mut inner = Vec::with_capacity((len + 3) & !3);
    inner.extend_from_slice(&(len as u16).to_ne_bytes());
    inner.extend_from_slice(&NFTA_DATA_VALUE.to_ne_bytes());
    inner.extend_from_slice(value);
    inner.resize((len + 3) & !3, 0);
    DefaultNla::new(kind | netlink_packet_core::NLA_F_NESTED, inner)
}

fn expr(name: &str, attributes: Vec<DefaultNla>) -> ListAttribute<ExpressionAttribute> {
    ListAttribute::Element(vec![
        ExpressionAttribute::Name(name.to_string()),
        ExpressionAttribute::Data(Expressions::Other {
            expression_type: name.to_string(),
            attributes,
        }),
    ])
}

/// `fib daddr type local dnat ip to 127.0.0.1`, as four expressions.
fn probe_rule() -> Vec<ListAttribute<ExpressionAttribute>> {
    // NFTA_FIB_{DREG,RESULT,FLAGS}; NFT_FIB_RESULT_ADDRTYPE; NFTA_FIB_F_DADDR.
    let fib = vec![u32_be(1, REG_1), u32_be(2, 3), u32_be(3, 1 << 1)];
    // NFTA_CMP_{SREG,OP,DATA}; NFT_CMP_EQ.
    let cmp = vec![
        u32_be(1, REG_1),
        u32_be(2, 0),
        data_value(3, &RTN_LOCAL.to_ne_bytes()),
    ];
    // NFTA_IMMEDIATE_{DREG,DATA}.
    let imm = vec![u32_be(1, REG_1), data_value(2, &[127, 0, 0, 1])];
    // NFTA_NAT_{TYPE,FAMILY,REG_ADDR_MIN}; NFT_NAT_DNAT; NFPROTO_IPV4.
    let nat = vec![u32_be(1, 1), u32_be(2, 2), u32_be(3, REG_1)];
    vec![
        expr("fib", fib),
        expr("cmp", cmp),
        expr("immediate", imm),
        expr("nat", nat),
    ]
}

/// Whether our committed table shows nat and fib at work: `prerouting` is
/// a nat chain and one of its rules has a fib expression. Errors (no table,
/// no permission) read as "no".
pub fn layout_proves_nat_and_fib(sock: &Socket) -> bool {
    let chain = NfTablesMessage::GetChain(ChainMessage {
        attributes: vec![
            ChainAttribute::Table(TABLE.into()),
            ChainAttribute::Name(ENTRY_CHAIN.into()),
        ],
    });
    let Ok(answers) = sock.nftables_get(NetfilterProtoFamily::Inet, vec![chain]) else {
        return false;
    };
    let is_nat = answers.iter().flatten().flatten().any(|m| match m {
        NfTablesMessage::NewChain(c) => c
            .attributes
            .iter()
            .any(|a| matches!(a, ChainAttribute::Type(t) if t == "nat")),
        _ => false,
    });
    if !is_nat {
        return false;
    }
    let rules = NfTablesMessage::GetRule(RuleMessage {
        attributes: vec![
            RuleAttribute::Table(TABLE.into()),
            RuleAttribute::Chain(ENTRY_CHAIN.into()),
        ],
    });
    let dump = NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::Inet, 0, 0),
        rules,
    );
    let Ok(replies) = sock.request(dump, NLM_F_DUMP) else {
        return false;
    };
    replies.iter().any(|m| match &m.inner {
        NetfilterMessageInner::NfTables(NfTablesMessage::NewRule(r)) => {
            r.attributes.iter().any(|a| match a {
                RuleAttribute::Expressions(list) => list.iter().any(|e| {
                    matches!(e, ListAttribute::Element(attrs)
                        if attrs.iter().any(|x| matches!(x, ExpressionAttribute::Name(n) if n == "fib")))
                }),
                _ => false,
            })
        }
        _ => false,
    })
}

/// Checks that nf_tables with an `inet` nat chain, fib and dnat is usable
/// in the socket's netns, committing nothing.
pub fn nat_and_fib_usable(sock: &Socket) -> Result<(), ProbeError> {
    let table = NfTablesMessage::NewTable(TableMessage {
        // Dormant: its base chain registers no netfilter hook, so the
        // abort unregisters none (that would wait for an RCU grace period).
        attributes: vec![
            TableAttribute::Name(PROBE_TABLE.into()),
            TableAttribute::Flags(TableFlags::Dormant),
        ],
    });
    let chain = NfTablesMessage::NewChain(ChainMessage {
        attributes: vec![
            ChainAttribute::Table(PROBE_TABLE.into()),
            ChainAttribute::Name(PROBE_CHAIN.into()),
            ChainAttribute::Hook(vec![
                Hook::Number(HookNumber::Inet(InetHookNumber::PreRouting)),
                Hook::Priority((-100i32) as u32),
            ]),
            ChainAttribute::Type("nat".into()),
        ],
    });
    let rule = NfTablesMessage::NewRule(RuleMessage {
        attributes: vec![
            RuleAttribute::Table(PROBE_TABLE.into()),
            RuleAttribute::Chain(PROBE_CHAIN.into()),
            RuleAttribute::Expressions(probe_rule()),
        ],
    });
    const WHAT: [&str; 3] = [
        "an inet table",
        "a nat chain on prerouting",
        "a fib + dnat rule",
    ];
    let ops = vec![
        (table, NLM_F_CREATE),
        (chain, NLM_F_CREATE),
        (rule, NLM_F_CREATE | NLM_F_APPEND),
    ];
    sock.nftables_dry_run(NetfilterProtoFamily::Inet, ops)
        .map_err(|e| match e {
            BatchError::Refused { op, errno } => ProbeError::Refused {
                what: op
                    .and_then(|i| WHAT.get(i))
                    .copied()
                    .unwrap_or("an nf_tables batch"),
                errno,
            },
            other => ProbeError::Batch(other),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_data_is_one_padded_nfta_data_value() {
        use netlink_packet_core::Nla;
        let nla = data_value(2, &[127, 0, 0, 1, 9]);
        let mut value = vec![0; nla.value_len()];
        nla.emit_value(&mut value);
        assert_eq!(value, vec![9, 0, 1, 0, 127, 0, 0, 1, 9, 0, 0, 0]);
        assert_eq!(nla.kind(), 2 | netlink_packet_core::NLA_F_NESTED);
    }
}
