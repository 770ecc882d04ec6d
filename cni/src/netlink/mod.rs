//! The one netlink socket layer of the workspace: a blocking socket generic
//! over the protocol ([`Socket<F>`], `F` = [`Route`] or [`Netfilter`]), with
//! the one send/receive loop every exchange goes through — a request and its
//! ack, error, reply or multi-part dump ([`Socket::request`]), or several
//! messages in one datagram answered together ([`Socket::exchange`], what
//! nf_tables batches need). No async runtime, no background task: a socket
//! is opened in the current netns or inside a netns path (the thread enters,
//! creates the socket and leaves at once; a socket stays in the netns it was
//! made in).
//!
//! The protocols' own verbs live next to it: links and routes in [`route`],
//! nf_tables batches, conntrack and the background close in [`netfilter`].
//! Messages come from `netlink-packet-route` / `netlink-packet-netfilter`;
//! this layer knows nothing about plugins, owners or plans.

mod background;
mod closing;
pub mod netfilter;
pub mod route;

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_sys::protocols::{NETLINK_NETFILTER, NETLINK_ROUTE};

use crate::netns::{NetnsError, NetnsGuard};

pub use netfilter::Netfilter;
pub use route::Route;

/// errno values the kernel reports for missing or existing objects.
pub const ENODEV: i32 = libc::ENODEV;
/// No such file or directory: a missing table, set, element, route or entry.
pub const ENOENT: i32 = libc::ENOENT;
/// Something created exclusively exists already.
pub const EEXIST: i32 = libc::EEXIST;
/// Invalid argument: also what tc answers for a qdisc that is not the one a
/// request names (handle or kind).
pub const EINVAL: i32 = libc::EINVAL;

/// A netlink protocol: which socket to open and which messages it carries.
pub trait NetlinkFamily {
    /// The protocol number for `socket(AF_NETLINK, SOCK_RAW, protocol)`.
    const PROTOCOL: isize;
    /// The messages of this protocol (requests and answers).
    type Message: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug;
}

impl NetlinkFamily for Route {
    const PROTOCOL: isize = NETLINK_ROUTE;
    type Message = netlink_packet_route::RouteNetlinkMessage;
}

impl NetlinkFamily for Netfilter {
    const PROTOCOL: isize = NETLINK_NETFILTER;
    type Message = netlink_packet_netfilter::NetfilterMessage;
}

/// A failed netlink exchange.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
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

impl NetlinkError {
    /// The kernel's (positive) errno, when it answered with one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Errno(n) => Some(*n),
            _ => None,
        }
    }

    /// True when the netns to open the socket in does not exist.
    pub fn is_netns_missing(&self) -> bool {
        matches!(self, NetlinkError::Netns(e) if e.is_not_found())
    }
}

impl From<NetlinkError> for crate::CniError {
    fn from(e: NetlinkError) -> Self {
        crate::CniError::internal(e.to_string())
    }
}

/// Receive buffer: the kernel fills one dump skb up to 32 KiB, so 64 KiB
/// always holds a whole datagram (a larger one is reported, not cut).
const RECV_BUF: usize = 64 * 1024;
const HEADER_LEN: usize = 16;
/// `NLM_F_MULTI`: one part of a multi-part answer.
const NLM_F_MULTI: u16 = 2;

/// One blocking netlink socket of protocol `F`, used for one exchange at a
/// time.
pub struct Socket<F: NetlinkFamily> {
    sock: netlink_sys::Socket,
    seq: Cell<u32>,
    buf: RefCell<Vec<u8>>,
    family: PhantomData<F>,
}

impl<F: NetlinkFamily> std::fmt::Debug for Socket<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("protocol", &F::PROTOCOL)
            .field("seq", &self.seq.get())
            .finish()
    }
}

impl<F: NetlinkFamily> AsRawFd for Socket<F> {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// How one message of an [`Socket::exchange`] was answered.
#[derive(Debug)]
pub struct Answer<M> {
    /// The objects the kernel sent for it (replies, dump parts, echoes).
    pub messages: Vec<M>,
    /// `Some(Ok(()))` acknowledged, `Some(Err(errno))` refused, `None`: no
    /// ack or error arrived for it.
    pub status: Option<Result<(), i32>>,
}

impl<M> Default for Answer<M> {
    fn default() -> Self {
        Answer {
            messages: Vec::new(),
            status: None,
        }
    }
}

/// When an exchange has received everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Block until the one request is answered (ack, error, done or its
    /// single reply).
    Complete { dump: bool, acked: bool },
    /// Take what the kernel queued while processing the send (nfnetlink
    /// handles a batch inside `sendmsg`), without blocking.
    Queued,
}

impl<F: NetlinkFamily> Socket<F> {
    /// A socket in the calling thread's current netns.
    pub fn open() -> Result<Self, NetlinkError> {
        // No bind/connect: the kernel binds on the first send, and a send
        // without an address goes to the kernel.
        Ok(Socket {
            sock: netlink_sys::Socket::new(F::PROTOCOL).map_err(NetlinkError::Io)?,
            seq: Cell::new(0),
            buf: RefCell::new(Vec::new()),
            family: PhantomData,
        })
    }

    /// A socket in the netns at `netns`; the calling thread is back in its
    /// own netns when this returns (also on error).
    pub fn open_in(netns: &Path) -> Result<Self, NetlinkError> {
        let guard = NetnsGuard::enter(netns)?;
        let sock = Self::open();
        guard.leave()?;
        sock
    }

    /// Sends `msg` with `flags` (`NLM_F_REQUEST` is always added) and
    /// returns the messages the kernel answers with: nothing for an
    /// acknowledged change, the object for a GET, every part of a dump
    /// (`NLM_F_DUMP`), the echo of an `NLM_F_ECHO` change. An error answer
    /// (NLMSG_ERROR with a code, or a NLMSG_DONE carrying one) is
    /// [`NetlinkError::Errno`].
    pub fn request(&self, msg: F::Message, flags: u16) -> Result<Vec<F::Message>, NetlinkError> {
        let wait = Wait::Complete {
            dump: flags & NLM_F_DUMP == NLM_F_DUMP,
            acked: flags & NLM_F_ACK != 0,
        };
        let mut answers = self.transact(vec![(msg, flags)], wait)?;
        let answer = answers.pop().unwrap_or_default();
        match answer.status {
            Some(Err(errno)) => Err(NetlinkError::Errno(errno)),
            _ => Ok(answer.messages),
        }
    }

    /// Sends every message in one datagram and returns, in order, how each
    /// was answered — what the kernel queued while it processed the send
    /// (nfnetlink runs a whole batch inside `sendmsg`). Messages that want
    /// an answer carry `NLM_F_ACK` (or are GETs).
    pub fn exchange(
        &self,
        msgs: Vec<(F::Message, u16)>,
    ) -> Result<Vec<Answer<F::Message>>, NetlinkError> {
        self.transact(msgs, Wait::Queued)
    }

    /// Binds the socket (the kernel delivers no notification to an unbound
    /// one) and joins the netlink multicast `group`: the kernel then also
    /// queues the group's notifications on it, read with [`Self::drain`].
    /// Keep requests on another socket: a notification carries the
    /// sequence number of someone else's request, which could pass for the
    /// answer to one of this socket's.
    pub fn join(&mut self, group: u32) -> Result<(), NetlinkError> {
        self.sock.bind_auto().map_err(NetlinkError::Io)?;
        self.sock.add_membership(group).map_err(NetlinkError::Io)
    }

    /// Every message queued on the socket, in the order the kernel queued
    /// them, without blocking: the notifications of a joined group. An
    /// overrun (the kernel dropped notifications: ENOBUFS) is an error.
    pub fn drain(&self) -> Result<Vec<F::Message>, NetlinkError> {
        let mut buf = self.buf.borrow_mut();
        let mut out = Vec::new();
        loop {
            buf.clear();
            buf.reserve(RECV_BUF);
            let n = match self
                .sock
                .recv(&mut *buf, libc::MSG_TRUNC | libc::MSG_DONTWAIT)
            {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) => return Err(NetlinkError::Io(e)),
            };
            if n > buf.len() {
                return Err(NetlinkError::Decode(format!(
                    "a datagram of {n} bytes exceeds the {} byte buffer",
                    buf.len()
                )));
            }
            for one in split(&buf[..n])? {
                let msg = NetlinkMessage::<F::Message>::deserialize(one)
                    .map_err(|e| NetlinkError::Decode(e.to_string()))?;
                if let NetlinkPayload::InnerMessage(inner) = msg.payload {
                    out.push(inner);
                }
            }
        }
    }

    /// `msg` with `flags` (and `NLM_F_REQUEST`) as the bytes [`Self::request`]
    /// would send, under this socket's next sequence number: for a sender
    /// that must not allocate or parse (see `closing.rs`).
    fn encode(&self, msg: F::Message, flags: u16) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(msg, flags, &mut out);
        out
    }

    /// [`Self::encode`], appended to `buf`.
    fn encode_into(&self, msg: F::Message, flags: u16, buf: &mut Vec<u8>) {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let at = buf.len();
        buf.resize(at + nl.buffer_len(), 0);
        nl.serialize(&mut buf[at..]);
    }

    /// The one send/receive loop.
    fn transact(
        &self,
        msgs: Vec<(F::Message, u16)>,
        wait: Wait,
    ) -> Result<Vec<Answer<F::Message>>, NetlinkError> {
        let first = self.seq.get().wrapping_add(1);
        let mut buf = self.buf.borrow_mut();
        buf.clear();
        let count = msgs.len();
        for (msg, flags) in msgs {
            self.encode_into(msg, flags, &mut buf);
        }
        crate::failpoint::crash_point("netlink send");
        self.sock.send(&buf[..], 0).map_err(NetlinkError::Io)?;
        let mut answers: Vec<Answer<F::Message>> = (0..count).map(|_| Answer::default()).collect();
        let recv_flags = match wait {
            Wait::Complete { .. } => libc::MSG_TRUNC,
            Wait::Queued => libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        };
        loop {
            buf.clear();
            buf.reserve(RECV_BUF);
            let n = match self.sock.recv(&mut *buf, recv_flags) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && wait == Wait::Queued => {
                    return Ok(answers)
                }
                Err(e) => return Err(NetlinkError::Io(e)),
            };
            if n > buf.len() {
                return Err(NetlinkError::Decode(format!(
                    "a datagram of {n} bytes exceeds the {} byte buffer",
                    buf.len()
                )));
            }
            if parse_datagram::<F::Message>(&buf[..n], first, &mut answers, wait)? {
                return Ok(answers);
            }
        }
    }
}

/// The netlink messages of one received datagram, each whole (its header
/// and payload; the 4-byte alignment padding left out).
fn split(data: &[u8]) -> Result<Vec<&[u8]>, NetlinkError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + HEADER_LEN <= data.len() {
        let chunk = &data[at..];
        let len = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
        if len < HEADER_LEN || len > chunk.len() {
            return Err(NetlinkError::Decode(format!(
                "netlink message of {len} bytes in {} received",
                chunk.len()
            )));
        }
        at += (len + 3) & !3;
        out.push(&chunk[..len]);
    }
    Ok(out)
}

/// Decodes one received datagram (one or more netlink messages) into the
/// answers of the requests numbered from `first`; messages of other
/// sequence numbers are skipped. Returns true when a [`Wait::Complete`]
/// request is fully answered: at an ack or error, at NLMSG_DONE, or, for a
/// GET that asked neither for a dump nor an ack, at its single reply.
fn parse_datagram<M: NetlinkDeserializable>(
    data: &[u8],
    first: u32,
    answers: &mut [Answer<M>],
    wait: Wait,
) -> Result<bool, NetlinkError> {
    let mut complete = false;
    for one in split(data)? {
        let reply = NetlinkMessage::<M>::deserialize(one)
            .map_err(|e| NetlinkError::Decode(e.to_string()))?;
        let index = reply.header.sequence_number.wrapping_sub(first) as usize;
        let Some(answer) = answers.get_mut(index) else {
            continue;
        };
        let multi = reply.header.flags & NLM_F_MULTI != 0;
        match reply.payload {
            NetlinkPayload::Error(e) => {
                answer.status = Some(match e.code {
                    None => Ok(()),
                    Some(code) => Err(-code.get()),
                });
                complete = true;
            }
            NetlinkPayload::Done(d) => {
                answer.status = Some(if d.code < 0 { Err(-d.code) } else { Ok(()) });
                complete = true;
            }
            NetlinkPayload::InnerMessage(inner) => {
                answer.messages.push(inner);
                if let Wait::Complete { dump, acked } = wait {
                    complete |= !dump && !acked && !multi;
                }
            }
            _ => {}
        }
        if complete && matches!(wait, Wait::Complete { .. }) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{DoneMessage, ErrorMessage};
    use netlink_packet_route::link::{LinkAttribute, LinkMessage};
    use netlink_packet_route::RouteNetlinkMessage;
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

    const DUMP: Wait = Wait::Complete {
        dump: true,
        acked: false,
    };
    const CHANGE: Wait = Wait::Complete {
        dump: false,
        acked: true,
    };
    const GET: Wait = Wait::Complete {
        dump: false,
        acked: false,
    };

    fn one() -> Vec<Answer<RouteNetlinkMessage>> {
        vec![Answer::default()]
    }

    #[test]
    fn a_dump_spans_datagrams_until_done_and_skips_other_sequences() {
        let mut out = one();
        let mut first = emit(7, NLM_F_MULTI, link(1, "lo"));
        first.extend(emit(6, NLM_F_MULTI, link(9, "stale")));
        first.extend(emit(7, NLM_F_MULTI, link(2, "eth0")));
        assert!(!parse_datagram(&first, 7, &mut out, DUMP).unwrap());
        let mut second = emit(7, NLM_F_MULTI, link(3, "eth1"));
        second.extend(emit(7, NLM_F_MULTI, done(0)));
        assert!(parse_datagram(&second, 7, &mut out, DUMP).unwrap());
        let names: Vec<u32> = out[0]
            .messages
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
        let mut out = one();
        // An ack ends a change; an echo before it is kept.
        let mut d = emit(3, 0, link(5, "ifb0"));
        assert!(!parse_datagram(&d, 3, &mut out, CHANGE).unwrap());
        d = emit(3, 0, error(0));
        assert!(parse_datagram(&d, 3, &mut out, CHANGE).unwrap());
        assert_eq!(out[0].messages.len(), 1);
        assert!(matches!(out[0].status, Some(Ok(()))));
        // A GET without ack ends at its one reply.
        let mut out = one();
        d = emit(4, 0, link(1, "lo"));
        assert!(parse_datagram(&d, 4, &mut out, GET).unwrap());
        // Errors keep the positive errno and read like io errors.
        let mut out = one();
        d = emit(5, 0, error(-libc::ENODEV));
        assert!(parse_datagram(&d, 5, &mut out, CHANGE).unwrap());
        assert!(matches!(out[0].status, Some(Err(libc::ENODEV))));
        assert_eq!(
            NetlinkError::Errno(libc::ENODEV).to_string(),
            "No such device (os error 19)"
        );
        // A dump can fail at its end.
        let mut out = one();
        d = emit(6, NLM_F_MULTI, done(-libc::EINTR));
        assert!(parse_datagram(&d, 6, &mut out, DUMP).unwrap());
        assert!(matches!(out[0].status, Some(Err(libc::EINTR))));
        // A truncated message is a decode error, not a panic.
        d = emit(7, 0, link(1, "lo"));
        d[0] = 200;
        let e = parse_datagram(&d, 7, &mut one(), GET).unwrap_err();
        assert!(matches!(e, NetlinkError::Decode(_)), "{e}");
        assert_eq!(e.errno(), None);
    }

    #[test]
    fn a_batch_collects_every_answer_by_sequence() {
        // Three messages numbered 10..=12: the first acked, the second
        // refused, the third unanswered; the datagram does not end it.
        let mut out: Vec<Answer<RouteNetlinkMessage>> = (0..3).map(|_| Answer::default()).collect();
        let mut d = emit(10, 0, error(0));
        d.extend(emit(11, 0, error(-libc::EEXIST)));
        d.extend(emit(9, 0, error(-libc::EPERM)));
        assert!(!parse_datagram(&d, 10, &mut out, Wait::Queued).unwrap());
        assert!(matches!(out[0].status, Some(Ok(()))));
        assert!(matches!(out[1].status, Some(Err(libc::EEXIST))));
        assert!(out[2].status.is_none());
    }
}
