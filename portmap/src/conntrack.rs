//! Stale UDP conntrack removal over ctnetlink (no `conntrack` shell-out):
//! dumps the current netns's conntrack table for one family and deletes every
//! UDP entry whose original destination port is a hostPort, so a new pod (or
//! a host process) receives traffic that a cached NAT binding would otherwise
//! blackhole. Uses `netlink-packet-netfilter`'s conntrack messages over the
//! caller's nfnetlink socket (one socket per invocation, closed in the
//! background, see [`crate::nfnl`]); knows nothing about nft.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, ProtoTuple, Protocol, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::Socket;

use crate::plan::Family;

/// A ctnetlink failure.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    #[error("conntrack netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("conntrack netlink: {0}")]
    Kernel(std::io::Error),
    #[error("conntrack netlink: decoding a reply: {0}")]
    Decode(String),
}

fn request(inner: ConntrackMessage, family: Family, flags: u16, seq: u32) -> Vec<u8> {
    let nf_family = match family {
        Family::V4 => NetfilterProtoFamily::IPv4,
        Family::V6 => NetfilterProtoFamily::IPv6,
    };
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(NetfilterMessage::new(
            NetfilterHeader::new(nf_family, 0, 0),
            inner,
        )),
    );
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// Reads replies until Done (dump) or the ACK/error (`ack`); returns the
/// conntrack messages received.
fn read_replies(sock: &Socket, ack: bool) -> Result<Vec<ConntrackMessage>, ConntrackError> {
    let mut out = Vec::new();
    loop {
        let (buf, _) = sock.recv_from_full().map_err(ConntrackError::Socket)?;
        if buf.is_empty() {
            return Ok(out);
        }
        let mut offset = 0;
        while offset < buf.len() {
            let msg = NetlinkMessage::<NetfilterMessage>::deserialize(&buf[offset..])
                .map_err(|e| ConntrackError::Decode(e.to_string()))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(out),
                        Some(code) if ack => Err(ConntrackError::Kernel(
                            std::io::Error::from_raw_os_error(-code.get()),
                        )),
                        Some(code) => Err(ConntrackError::Kernel(
                            std::io::Error::from_raw_os_error(-code.get()),
                        )),
                    }
                }
                NetlinkPayload::InnerMessage(NetfilterMessage {
                    inner: NetfilterMessageInner::Conntrack(m),
                    ..
                }) => out.push(m),
                _ => {}
            }
            if len == 0 {
                return Ok(out);
            }
            offset += (len + 3) & !3;
        }
    }
}

fn udp_dport(tuple: &[Tuple]) -> Option<u16> {
    let mut udp = false;
    let mut port = None;
    for t in tuple {
        if let Tuple::Proto(p) = t {
            for a in p {
                match a {
                    ProtoTuple::Protocol(Protocol::Udp) => udp = true,
                    ProtoTuple::DestinationPort(d) => port = Some(*d),
                    _ => {}
                }
            }
        }
    }
    port.filter(|_| udp)
}

/// Deletes every UDP entry of `family` whose original destination port is in
/// `ports`; returns how many went. Entries that vanish meanwhile are fine.
pub fn delete_udp_by_dport(
    sock: &Socket,
    family: Family,
    ports: &[u16],
) -> Result<usize, ConntrackError> {
    if ports.is_empty() {
        return Ok(0);
    }
    let dump = request(
        ConntrackMessage::Get(vec![]),
        family,
        NLM_F_REQUEST | NLM_F_DUMP,
        1,
    );
    sock.send(&dump, 0).map_err(ConntrackError::Socket)?;
    let entries = read_replies(sock, false)?;
    let mut deleted = 0;
    for (i, entry) in entries.iter().enumerate() {
        let attrs = match entry {
            ConntrackMessage::New(a) | ConntrackMessage::Get(a) => a,
            _ => continue,
        };
        let Some(orig) = attrs.iter().find_map(|a| match a {
            ConntrackAttribute::CtaTupleOrig(t) => Some(t),
            _ => None,
        }) else {
            continue;
        };
        if !udp_dport(orig).is_some_and(|p| ports.contains(&p)) {
            continue;
        }
        let del = request(
            ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(orig.clone())]),
            family,
            NLM_F_REQUEST | NLM_F_ACK,
            2 + i as u32,
        );
        sock.send(&del, 0).map_err(ConntrackError::Socket)?;
        match read_replies(sock, true) {
            Ok(_) => deleted += 1,
            Err(ConntrackError::Kernel(e)) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}
