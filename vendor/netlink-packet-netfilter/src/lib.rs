// SPDX-License-Identifier: MIT

mod message;
pub(crate) mod nlas;

// test data are using hard coded little endian byte order, not for big-endian
#[cfg(all(test, not(target_endian = "big")))]
mod tests;

pub mod conntrack;
pub mod nflog;
pub mod nftables;
pub mod none;
pub use self::message::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner,
    NetfilterProtoFamily, NetfilterSubsystem,
};
