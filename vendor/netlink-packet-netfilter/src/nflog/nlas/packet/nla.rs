// SPDX-License-Identifier: MIT

use std::ffi::{CStr, CString};

use derive_more::{From, IsVariant};
use netlink_packet_core::{
    emit_u16_be, emit_u32_be, parse_u16_be, parse_u32_be, DecodeError,
    DefaultNla, ErrorContext, Nla, NlaBuffer, Parseable,
};

use crate::nflog::nlas::packet::{
    hw_addr::HwAddr, packet_hdr::PacketHdr, timestamp::TimeStamp,
};

const NFULA_GID: u16 = libc::NFULA_GID as u16;
const NFULA_HWADDR: u16 = libc::NFULA_HWADDR as u16;
const NFULA_HWHEADER: u16 = libc::NFULA_HWHEADER as u16;
const NFULA_HWLEN: u16 = libc::NFULA_HWLEN as u16;
const NFULA_HWTYPE: u16 = libc::NFULA_HWTYPE as u16;
const NFULA_IFINDEX_INDEV: u16 = libc::NFULA_IFINDEX_INDEV as u16;
const NFULA_IFINDEX_OUTDEV: u16 = libc::NFULA_IFINDEX_OUTDEV as u16;
const NFULA_IFINDEX_PHYSINDEV: u16 = libc::NFULA_IFINDEX_PHYSINDEV as u16;
const NFULA_IFINDEX_PHYSOUTDEV: u16 = libc::NFULA_IFINDEX_PHYSOUTDEV as u16;
const NFULA_MARK: u16 = libc::NFULA_MARK as u16;
const NFULA_PACKET_HDR: u16 = libc::NFULA_PACKET_HDR as u16;
const NFULA_PAYLOAD: u16 = libc::NFULA_PAYLOAD as u16;
const NFULA_PREFIX: u16 = libc::NFULA_PREFIX as u16;
const NFULA_SEQ: u16 = libc::NFULA_SEQ as u16;
const NFULA_SEQ_GLOBAL: u16 = libc::NFULA_SEQ_GLOBAL as u16;
const NFULA_TIMESTAMP: u16 = libc::NFULA_TIMESTAMP as u16;
const NFULA_UID: u16 = libc::NFULA_UID as u16;

#[derive(Clone, Debug, PartialEq, Eq, From, IsVariant)]
#[non_exhaustive]
pub enum PacketNla {
    #[from]
    PacketHdr(PacketHdr),
    Mark(u32),
    #[from]
    Timestamp(TimeStamp),
    IfIndexInDev(u32),
    IfIndexOutDev(u32),
    IfIndexPhysInDev(u32),
    IfIndexPhysOutDev(u32),
    #[from]
    HwAddr(HwAddr),
    Payload(Vec<u8>),
    Prefix(CString),
    Uid(u32),
    Seq(u32),
    SeqGlobal(u32),
    Gid(u32),
    HwType(u16),
    HwHeader(Vec<u8>),
    HwHeaderLen(u16),
    #[from]
    Other(DefaultNla),
}

impl Nla for PacketNla {
    fn value_len(&self) -> usize {
        match self {
            PacketNla::PacketHdr(attr) => attr.value_len(),
            PacketNla::Mark(_) => 4,
            PacketNla::Timestamp(attr) => attr.value_len(),
            PacketNla::IfIndexInDev(_) => 4,
            PacketNla::IfIndexOutDev(_) => 4,
            PacketNla::IfIndexPhysInDev(_) => 4,
            PacketNla::IfIndexPhysOutDev(_) => 4,
            PacketNla::HwAddr(attr) => attr.value_len(),
            PacketNla::Payload(vec) => vec.len(),
            PacketNla::Prefix(cstring) => cstring.as_bytes_with_nul().len(),
            PacketNla::Uid(_) => 4,
            PacketNla::Seq(_) => 4,
            PacketNla::SeqGlobal(_) => 4,
            PacketNla::Gid(_) => 4,
            PacketNla::HwType(_) => 2,
            PacketNla::HwHeader(vec) => vec.len(),
            PacketNla::HwHeaderLen(_) => 2,
            PacketNla::Other(attr) => attr.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            PacketNla::PacketHdr(attr) => attr.kind(),
            PacketNla::Mark(_) => NFULA_MARK,
            PacketNla::Timestamp(attr) => attr.kind(),
            PacketNla::IfIndexInDev(_) => NFULA_IFINDEX_INDEV,
            PacketNla::IfIndexOutDev(_) => NFULA_IFINDEX_OUTDEV,
            PacketNla::IfIndexPhysInDev(_) => NFULA_IFINDEX_PHYSINDEV,
            PacketNla::IfIndexPhysOutDev(_) => NFULA_IFINDEX_PHYSOUTDEV,
            PacketNla::HwAddr(attr) => attr.kind(),
            PacketNla::Payload(_) => NFULA_PAYLOAD,
            PacketNla::Prefix(_) => NFULA_PREFIX,
            PacketNla::Uid(_) => NFULA_UID,
            PacketNla::Seq(_) => NFULA_SEQ,
            PacketNla::SeqGlobal(_) => NFULA_SEQ_GLOBAL,
            PacketNla::Gid(_) => NFULA_GID,
            PacketNla::HwType(_) => NFULA_HWTYPE,
            PacketNla::HwHeader(_) => NFULA_HWHEADER,
            PacketNla::HwHeaderLen(_) => NFULA_HWLEN,
            PacketNla::Other(attr) => attr.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            PacketNla::PacketHdr(attr) => attr.emit_value(buffer),
            PacketNla::Mark(value) => {
                emit_u32_be(buffer, *value).unwrap();
            }
            PacketNla::Timestamp(attr) => attr.emit_value(buffer),
            PacketNla::IfIndexInDev(value) => {
                emit_u32_be(buffer, *value).unwrap();
            }
            PacketNla::IfIndexOutDev(value) => {
                emit_u32_be(buffer, *value).unwrap();
            }
            PacketNla::IfIndexPhysInDev(value) => {
                emit_u32_be(buffer, *value).unwrap();
            }
            PacketNla::IfIndexPhysOutDev(value) => {
                emit_u32_be(buffer, *value).unwrap();
            }
            PacketNla::HwAddr(attr) => attr.emit_value(buffer),
            PacketNla::Payload(vec) => buffer.copy_from_slice(vec),
            PacketNla::Prefix(cstring) => {
                buffer.copy_from_slice(cstring.as_bytes_with_nul())
            }
            PacketNla::Uid(value) => {
                emit_u32_be(buffer, *value).unwrap();
            }
            PacketNla::Seq(value) => {
                emit_u32_be(buffer, *value).unwrap();
            }
            PacketNla::SeqGlobal(value) => {
                emit_u32_be(buffer, *value).unwrap();
            }
            PacketNla::Gid(value) => {
                emit_u32_be(buffer, *value).unwrap();
            }
            PacketNla::HwType(value) => {
                emit_u16_be(buffer, *value).unwrap();
            }
            PacketNla::HwHeader(vec) => buffer.copy_from_slice(vec),
            PacketNla::HwHeaderLen(value) => {
                emit_u16_be(buffer, *value).unwrap();
            }
            PacketNla::Other(attr) => attr.emit_value(buffer),
        }
    }
}

impl<'buffer, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'buffer T>>
    for PacketNla
{
    fn parse(buf: &NlaBuffer<&'buffer T>) -> Result<Self, DecodeError> {
        let kind = buf.kind();
        let payload = buf.value();
        let nla = match kind {
            NFULA_PACKET_HDR => PacketHdr::parse(payload)
                .context("invalid NFULA_PACKET_HDR value")?
                .into(),

            NFULA_MARK => PacketNla::Mark(
                parse_u32_be(payload).context("invalid NFULA_MARK value")?,
            ),
            NFULA_TIMESTAMP => PacketNla::Timestamp(
                TimeStamp::parse(payload)
                    .context("invalid NFULA_TIMESTAMP value")?,
            ),
            NFULA_IFINDEX_INDEV => PacketNla::IfIndexInDev(
                parse_u32_be(payload)
                    .context("invalid NFULA_IFINDEX_INDEV value")?,
            ),
            NFULA_IFINDEX_OUTDEV => PacketNla::IfIndexOutDev(
                parse_u32_be(payload)
                    .context("invalid NFULA_IFINDEX_OUTDEV value")?,
            ),
            NFULA_IFINDEX_PHYSINDEV => PacketNla::IfIndexPhysInDev(
                parse_u32_be(payload)
                    .context("invalid NFULA_IFINDEX_PHYSINDEV value")?,
            ),
            NFULA_IFINDEX_PHYSOUTDEV => PacketNla::IfIndexPhysOutDev(
                parse_u32_be(payload)
                    .context("invalid NFULA_IFINDEX_PHYSOUTDEV value")?,
            ),
            NFULA_HWADDR => PacketNla::HwAddr(
                HwAddr::parse(payload).context("invalid NFULA_HWADDR value")?,
            ),
            NFULA_PAYLOAD => PacketNla::Payload(payload.to_vec()),
            NFULA_PREFIX => PacketNla::Prefix(
                CStr::from_bytes_with_nul(payload)
                    .map_err(|e| DecodeError::from(e.to_string()))
                    .context("invalid NFULA_PREFIX value")?
                    .to_owned(),
            ),
            NFULA_UID => PacketNla::Uid(
                parse_u32_be(payload).context("invalid NFULA_UID value")?,
            ),
            NFULA_SEQ => PacketNla::Seq(
                parse_u32_be(payload).context("invalid NFULA_SEQ value")?,
            ),
            NFULA_SEQ_GLOBAL => PacketNla::SeqGlobal(
                parse_u32_be(payload)
                    .context("invalid NFULA_SEQ_GLOBAL value")?,
            ),
            NFULA_GID => PacketNla::Gid(
                parse_u32_be(payload).context("invalid NFULA_GID value")?,
            ),
            NFULA_HWTYPE => PacketNla::HwType(
                parse_u16_be(payload).context("invalid NFULA_HWTYPE value")?,
            ),
            NFULA_HWHEADER => PacketNla::HwHeader(payload.to_vec()),
            NFULA_HWLEN => PacketNla::HwHeaderLen(
                parse_u16_be(payload).context("invalid NFULA_HWLEN value")?,
            ),

            _ => PacketNla::Other(DefaultNla::parse(buf)?),
        };
        Ok(nla)
    }
}
