// SPDX-License-Identifier: MIT

// test data are using hard coded little endian byte order, not for big-endian
#[cfg(all(test, not(target_endian = "big")))]
mod tests;

mod attributes;
mod chain;
mod gen;
mod message;
mod rule;
mod set;
mod set_element;
mod table;

pub use self::{
    attributes::{
        Bitwise, ChecksumFlags, ChecksumType, Cmp, DataAttribute,
        ExpressionAttribute, Expressions, Immediate, ListAttribute, Lookup,
        Meta, MetaKey, Operator, Payload, Register, Verdict, VerdictAttribute,
    },
    chain::{
        ChainAttribute, ChainFlags, ChainMessage, DevHookNumber, Hook,
        HookNumber, InetHookNumber,
    },
    gen::{GenAttribute, GenMessage},
    message::{NfTablesMessage, NfTablesMessageType},
    rule::{RuleAttribute, RuleMessage},
    set::{SetAttribute, SetDescription, SetFlags, SetMessage},
    set_element::{
        SetElementAttribute, SetElementFlags, SetElementList, SetElementMessage,
    },
    table::{TableAttribute, TableFlags, TableMessage},
};
