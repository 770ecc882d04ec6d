// SPDX-License-Identifier: MIT

mod attribute;
mod flags;
mod hook;
mod message;

pub use self::{
    attribute::ChainAttribute,
    flags::ChainFlags,
    hook::{DevHookNumber, Hook, HookNumber, InetHookNumber},
    message::ChainMessage,
};
