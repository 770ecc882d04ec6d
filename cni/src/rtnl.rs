//! A small blocking rtnetlink client for every plugin: one plain
//! NETLINK_ROUTE socket (no async runtime, no background task), opened in the
//! current netns or inside a netns path (the thread enters, creates the
//! socket and leaves at once: a socket stays in the netns it was made in).
//! [`Rtnl::request`] sends one `RouteNetlinkMessage` and collects what the
//! kernel answers: acks, errors (positive errno kept), echoes and multi-part
//! dumps. It builds no messages beyond link lookups and knows nothing about
//! plugins, owners or plans. Every netlink user in the workspace goes
//! through it (there is no second, async client).

use std::cell::{Cell, RefCell};
use std::path::Path;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkExtentMask, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};

use crate::netns::{NetnsError, NetnsGuard};

/// errno values the kernel reports for missing or existing objects.
pub const ENODEV: i32 = libc::ENODEV;
pub const ENOENT: i32 = libc::ENOENT;
pub const EEXIST: i32 = libc::EEXIST;

/// The name of a link message, if it has one.
pub fn link_name(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// A failed rtnetlink exchange.
#[derive(Debug, thiserror::Error)]
pub enum RtnlError {
    /// The kernel answered with this (positive) errno.
    #[error("{}", std::io::Error::from_raw_os_error(*.0))]
    Errno(i32),
    /// The socket itself failed (open, send, recv).
    #[error("{0}")]
    Io(std::io::Error),
    /// The kernel's answer could not be decoded.
    #[error("decoding the kernel's answer: {0}")]
    Decode(String),
    /// The netns to open the socket in could not be entered or left.
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

impl RtnlError {
    /// The kernel's (positive) errno, when it answered with one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            RtnlError::Errno(n) => Some(*n),
            _ => None,
        }
    }

    /// True when the netns to open the socket in does not exist.
    pub fn is_netns_missing(&self) -> bool {
        matches!(self, RtnlError::Netns(e) if e.is_not_found())
    }
}

impl From<RtnlError> for crate::CniError {
    fn from(e: RtnlError) -> Self {
        crate::CniError::internal(e.to_string())
    }
}

/// Receive buffer: the kernel fills one dump skb up to 32 KiB, so 64 KiB
/// always holds a whole datagram (a larger one is reported, not cut).
const RECV_BUF: usize = 64 * 1024;
const HEADER_LEN: usize = 16;
/// `NLM_F_MULTI`: one part of a multi-part answer.
const NLM_F_MULTI: u16 = 2;

/// One blocking NETLINK_ROUTE socket, used for one request at a time.
pub struct Rtnl {
    sock: Socket,
    seq: Cell<u32>,
    buf: RefCell<Vec<u8>>,
}

impl std::fmt::Debug for Rtnl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtnl")
            .field("seq", &self.seq.get())
            .finish()
    }
}

impl Rtnl {
    /// A socket in the calling thread's current netns.
    pub fn open() -> Result<Rtnl, RtnlError> {
        // No bind/connect: the kernel binds on the first send, and a send
        // without an address goes to the kernel.
        Ok(Rtnl {
            sock: Socket::new(NETLINK_ROUTE).map_err(RtnlError::Io)?,
            seq: Cell::new(0),
            buf: RefCell::new(Vec::new()),
        })
    }

    /// A socket in the netns at `netns`; the calling thread is back in its
    /// own netns when this returns (also on error).
    pub fn open_in(netns: &Path) -> Result<Rtnl, RtnlError> {
        let guard = NetnsGuard::enter(netns)?;
        let rtnl = Rtnl::open();
        guard.leave()?;
        rtnl
    }

    /// Sends `msg` with `flags` (`NLM_F_REQUEST` is always added) and
    /// returns the messages the kernel answers with: nothing for an
    /// acknowledged change, the object for a GET, every part of a dump
    /// (`NLM_F_DUMP`), the echo of an `NLM_F_ECHO` change. An error answer
    /// (NLMSG_ERROR with a code, or a NLMSG_DONE carrying one) is
    /// [`RtnlError::Errno`].
    pub fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, RtnlError> {
        let flags = flags | NLM_F_REQUEST;
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut buf = self.buf.borrow_mut();
        buf.clear();
        buf.resize(nl.buffer_len(), 0);
        nl.serialize(&mut buf[..]);
        self.sock.send(&buf[..], 0).map_err(RtnlError::Io)?;
        buf.clear();
        buf.reserve(RECV_BUF);
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let acked = flags & NLM_F_ACK != 0;
        let mut out = Vec::new();
        loop {
            buf.clear();
            let n = match self.sock.recv(&mut *buf, libc::MSG_TRUNC) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RtnlError::Io(e)),
            };
            if n > buf.len() {
                return Err(RtnlError::Decode(format!(
                    "a datagram of {n} bytes exceeds the {} byte buffer",
                    buf.len()
                )));
            }
            match parse_datagram(&buf[..n], seq, dump, acked, &mut out)? {
                Step::Done => return Ok(out),
                Step::More => {}
            }
        }
    }

    /// Looks a link up by name (per-VF stats skipped: RTEXT_FILTER_SKIP_STATS; the kernel
    /// sends the link's own counters regardless); `Ok(None)` when no link (or
    /// altname) has that name.
    pub fn link_by_name(&self, name: &str) -> Result<Option<LinkMessage>, RtnlError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(msg)
    }

    /// Looks a link up by index (per-VF stats skipped); `Ok(None)` when it does not
    /// exist.
    pub fn link_by_index(&self, index: u32) -> Result<Option<LinkMessage>, RtnlError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.get_link(msg)
    }

    /// Every link of the netns (per-VF stats skipped).
    pub fn links(&self) -> Result<Vec<LinkMessage>, RtnlError> {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        Ok(self
            .request(RouteNetlinkMessage::GetLink(msg), NLM_F_DUMP)?
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .collect())
    }

    fn get_link(&self, mut msg: LinkMessage) -> Result<Option<LinkMessage>, RtnlError> {
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(e) if e.errno() == Some(ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Whether the answer to a request is complete.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Done,
    More,
}

/// Decodes one received datagram (one or more netlink messages) of the
/// answer to request `seq`, appending its objects to `out`. Messages of
/// other sequence numbers are skipped. The answer is complete at an ack or
/// error, at NLMSG_DONE, or, for a GET that asked neither for a dump nor an
/// ack, at its single reply.
fn parse_datagram(
    data: &[u8],
    seq: u32,
    dump: bool,
    acked: bool,
    out: &mut Vec<RouteNetlinkMessage>,
) -> Result<Step, RtnlError> {
    let mut at = 0;
    while at + HEADER_LEN <= data.len() {
        let chunk = &data[at..];
        let len = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
        if len < HEADER_LEN || len > chunk.len() {
            return Err(RtnlError::Decode(format!(
                "netlink message of {len} bytes in {} received",
                chunk.len()
            )));
        }
        at += (len + 3) & !3;
        let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&chunk[..len])
            .map_err(|e| RtnlError::Decode(e.to_string()))?;
        if reply.header.sequence_number != seq {
            continue;
        }
        let multi = reply.header.flags & NLM_F_MULTI != 0;
        match reply.payload {
            NetlinkPayload::Error(e) => {
                return match e.code {
                    None => Ok(Step::Done),
                    Some(code) => Err(RtnlError::Errno(-code.get())),
                }
            }
            NetlinkPayload::Done(d) => {
                return if d.code < 0 {
                    Err(RtnlError::Errno(-d.code))
                } else {
                    Ok(Step::Done)
                }
            }
            NetlinkPayload::InnerMessage(inner) => {
                out.push(inner);
                if !dump && !acked && !multi {
                    return Ok(Step::Done);
                }
            }
            _ => {}
        }
    }
    Ok(Step::More)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{DoneMessage, ErrorMessage, NLM_F_CREATE, NLM_F_EXCL};
    use netlink_packet_route::link::{InfoKind, LinkInfo};
    use std::num::NonZeroI32;

    fn emit(seq: u32, flags: u16, payload: NetlinkPayload<RouteNetlinkMessage>) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        header.flags = flags;
        let mut m = NetlinkMessage::new(header, payload);
        m.finalize();
        let mut b = vec![0u8; m.buffer_len()];
        m.serialize(&mut b);
        b
    }

    fn link(index: u32, name: &str) -> NetlinkPayload<RouteNetlinkMessage> {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.attributes.push(LinkAttribute::IfName(name.into()));
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l))
    }

    fn error(code: i32) -> NetlinkPayload<RouteNetlinkMessage> {
        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(code);
        NetlinkPayload::Error(e)
    }

    fn done(code: i32) -> NetlinkPayload<RouteNetlinkMessage> {
        let mut d = DoneMessage::default();
        d.code = code;
        NetlinkPayload::Done(d)
    }

    #[test]
    fn a_dump_spans_datagrams_until_done_and_skips_other_sequences() {
        let mut out = Vec::new();
        let mut first = emit(7, NLM_F_MULTI, link(1, "lo"));
        first.extend(emit(6, NLM_F_MULTI, link(9, "stale")));
        first.extend(emit(7, NLM_F_MULTI, link(2, "eth0")));
        assert_eq!(
            parse_datagram(&first, 7, true, false, &mut out).unwrap(),
            Step::More
        );
        let mut second = emit(7, NLM_F_MULTI, link(3, "eth1"));
        second.extend(emit(7, NLM_F_MULTI, done(0)));
        assert_eq!(
            parse_datagram(&second, 7, true, false, &mut out).unwrap(),
            Step::Done
        );
        let names: Vec<u32> = out
            .iter()
            .map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => l.header.index,
                _ => 0,
            })
            .collect();
        assert_eq!(names, vec![1, 2, 3]);
    }

    #[test]
    fn acks_errors_and_single_replies() {
        let mut out = Vec::new();
        // An ack ends a change; an echo before it is kept.
        let mut d = emit(3, 0, link(5, "ifb0"));
        assert_eq!(
            parse_datagram(&d, 3, false, true, &mut out).unwrap(),
            Step::More
        );
        d = emit(3, 0, error(0));
        assert_eq!(
            parse_datagram(&d, 3, false, true, &mut out).unwrap(),
            Step::Done
        );
        assert_eq!(out.len(), 1);
        // A GET without ack ends at its one reply.
        out.clear();
        d = emit(4, 0, link(1, "lo"));
        assert_eq!(
            parse_datagram(&d, 4, false, false, &mut out).unwrap(),
            Step::Done
        );
        // Errors keep the positive errno and read like io errors.
        d = emit(5, 0, error(-libc::ENODEV));
        let e = parse_datagram(&d, 5, false, true, &mut out).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV));
        assert_eq!(e.to_string(), "No such device (os error 19)");
        // A dump can fail at its end.
        d = emit(6, NLM_F_MULTI, done(-libc::EINTR));
        let e = parse_datagram(&d, 6, true, false, &mut out).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EINTR));
        // A truncated message is a decode error, not a panic.
        d = emit(7, 0, link(1, "lo"));
        d[0] = 200;
        let e = parse_datagram(&d, 7, false, false, &mut out).unwrap_err();
        assert!(matches!(e, RtnlError::Decode(_)), "{e}");
        assert_eq!(e.errno(), None);
    }

    #[cfg(feature = "testing")]
    #[test]
    fn against_the_kernel_in_a_throwaway_netns() {
        if !crate::testing::privileged("rtnl_against_the_kernel_in_a_throwaway_netns") {
            return;
        }
        let ns = crate::testing::TestNetns::new("rtnl");
        ns.exec(&[
            "ip", "link", "add", "rt0", "type", "veth", "peer", "name", "rt1",
        ]);
        let rtnl = Rtnl::open_in(&ns.path()).unwrap();
        // The thread is back in its own netns.
        assert!(!crate::netns::is_current(&ns.path()).unwrap());
        let lo = rtnl.link_by_name("lo").unwrap().unwrap();
        assert_eq!(lo.header.index, 1);
        let rt0 = rtnl.link_by_name("rt0").unwrap().unwrap();
        let by_index = rtnl.link_by_index(rt0.header.index).unwrap().unwrap();
        assert_eq!(link_name(&by_index), Some("rt0"), "{by_index:?}");
        let kind = by_index.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(i) => i.iter().find_map(|i| match i {
                LinkInfo::Kind(k) => Some(k.clone()),
                _ => None,
            }),
            _ => None,
        });
        assert_eq!(kind, Some(InfoKind::Veth));
        assert!(rtnl.link_by_name("nosuch0").unwrap().is_none());
        assert!(rtnl.link_by_index(999_999).unwrap().is_none());
        let names: Vec<String> = rtnl
            .links()
            .unwrap()
            .iter()
            .filter_map(|l| link_name(l).map(str::to_string))
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        for n in ["lo", "rt0", "rt1"] {
            assert!(names.iter().any(|x| x == n), "{names:?}");
        }
        // A change the kernel refuses surfaces its errno: creating a link
        // whose name is taken, exclusively.
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName("rt0".into()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Ifb)]));
        let e = rtnl
            .request(
                RouteNetlinkMessage::NewLink(msg.clone()),
                NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
            .unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
        assert_eq!(e.to_string(), "File exists (os error 17)");
        // An acknowledged change returns nothing; deleting it twice is ENODEV.
        msg.attributes[0] = LinkAttribute::IfName("rtifb0".into());
        let acked = rtnl
            .request(
                RouteNetlinkMessage::NewLink(msg),
                NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
            .unwrap();
        assert!(acked.is_empty(), "{acked:?}");
        let ifb = rtnl.link_by_name("rtifb0").unwrap().unwrap();
        let mut del = LinkMessage::default();
        del.header.index = ifb.header.index;
        rtnl.request(RouteNetlinkMessage::DelLink(del.clone()), NLM_F_ACK)
            .unwrap();
        let e = rtnl
            .request(RouteNetlinkMessage::DelLink(del), NLM_F_ACK)
            .unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV));
        // A missing netns is reported as such.
        let e = Rtnl::open_in(Path::new("/run/netns/cnt-no-such-netns")).unwrap_err();
        assert!(e.is_netns_missing(), "{e}");
    }
}
