// SPDX-License-Identifier: MIT

//! Commonly used attributes by the different Nftable message kinds.

mod data;
mod expression;
pub(crate) mod list;
mod verdict;

pub use self::{
    data::DataAttribute,
    expression::{
        Bitwise, ChecksumFlags, ChecksumType, Cmp, ExpressionAttribute,
        Expressions, Immediate, Lookup, Meta, MetaKey, Operator, Payload,
        Register,
    },
    list::ListAttribute,
    verdict::{Verdict, VerdictAttribute},
};
