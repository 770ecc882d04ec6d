// SPDX-License-Identifier: MIT

mod hw_addr;
mod nla;
mod packet_hdr;
mod timestamp;

pub use hw_addr::{HwAddr, HwAddrBuffer};
pub use nla::PacketNla;
pub use packet_hdr::{PacketHdr, PacketHdrBuffer};
pub use timestamp::{TimeStamp, TimeStampBuffer};
