// SPDX-License-Identifier: MIT

mod attribute;
mod flags;
mod message;

pub use self::{
    attribute::TableAttribute, flags::TableFlags, message::TableMessage,
};
