// SPDX-License-Identifier: MIT

mod attribute;
mod message;

pub use self::{attribute::RuleAttribute, message::RuleMessage};
