// SPDX-License-Identifier: MIT

mod attribute;
mod flags;
mod list;
mod message;

pub use self::{
    attribute::SetElementAttribute, flags::SetElementFlags,
    list::SetElementList, message::SetElementMessage,
};
