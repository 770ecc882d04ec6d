// SPDX-License-Identifier: MIT

mod config;
mod message;
mod nlas;

pub use self::{
    config::config_request,
    message::{ULogMessage, ULogMessageType},
    nlas::{
        ConfigCmd, ConfigFlags, ConfigMode, ConfigNla, CopyMode, HwAddr,
        HwAddrBuffer, PacketHdr, PacketHdrBuffer, PacketNla, TimeStamp,
        TimeStampBuffer, Timeout,
    },
};
