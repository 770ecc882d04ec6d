// SPDX-License-Identifier: MIT

mod attribute;
mod description;
mod flags;
mod message;

pub use self::{
    attribute::SetAttribute, description::SetDescription, flags::SetFlags,
    message::SetMessage,
};
