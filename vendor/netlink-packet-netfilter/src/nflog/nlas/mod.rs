// SPDX-License-Identifier: MIT

mod config;
mod packet;

pub use self::{
    config::{
        ConfigCmd, ConfigFlags, ConfigMode, ConfigNla, CopyMode, Timeout,
    },
    packet::{
        HwAddr, HwAddrBuffer, PacketHdr, PacketHdrBuffer, PacketNla, TimeStamp,
        TimeStampBuffer,
    },
};
