//! NETLINK_NETFILTER verbs over [`super::Socket`]: one atomic nf_tables
//! batch (`NFNL_MSG_BATCH_BEGIN` … `END` around `netlink-packet-netfilter`'s
//! [`NfTablesMessage`]s, every operation acknowledged), conntrack dumps and
//! deletes, and closing a socket without waiting for the kernel's RCU grace
//! period. Builds no nf_tables objects itself: tables, sets and elements are
//! its users' business.
//!
//! Closing: the close of an nfnetlink socket can wait, holding the netns's
//! nf_tables commit mutex, while a transaction committed less than an RCU
//! grace period ago (5–20 ms here) is still being freed; every commit of
//! the netns then waits behind it. The transactions are committed and
//! visible before that; the wait only frees memory. (That the transaction
//! need not have deleted anything is what the loop measured below shows;
//! we read it as nf_tables' socket-release handler flushing the kernel's
//! pending transaction-freeing work under the mutex.)
//! [`Nfnl::close_in_background`] hands the last reference of the socket to
//! a detached child that shares the plugin's memory (`closing.rs`), or to a
//! forked one that may first do work the runtime need not wait for
//! ([`Nfnl::close_in_background_after`], see `background.rs`). The child
//! waits (`membarrier`, no lock held) until a whole grace period
//! passes with no commit in the netns, then exits: by then no transaction
//! of the netns is left to free, so neither the plugin nor the next
//! transaction waits (at most [`QUIET_ROUNDS`] grace periods).
//! Measured here (kernel 6.18, load ~1.2, medians of 21 back-to-back
//! portmap ADD+DEL pairs, whole plugin process): plain close ADD 3.5 ms /
//! DEL 17–19 ms; background close after one grace period ADD 4.2–5.6 ms /
//! DEL 3.2–3.4 ms (0.4 ms is the fork). Closing after the first grace
//! period, whatever was committed during it, left about one ADD in three of
//! a back-to-back ADD, CHECK, DEL loop waiting 8–24 ms for a previous
//! verb's child; waiting for a quiet one, one in twenty.

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP};
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage};
use netlink_packet_netfilter::nftables::{GenAttribute, GenMessage, NfTablesMessage};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};

use std::os::fd::{AsRawFd, RawFd};

use super::background::BACKGROUND_NICE;

use super::{NetlinkError, Socket};

/// The NETLINK_NETFILTER protocol (nf_tables, conntrack).
#[derive(Debug, Clone, Copy)]
pub struct Netfilter;

/// A NETLINK_NETFILTER socket.
pub type Nfnl = Socket<Netfilter>;

/// `NFNLGRP_NFTABLES`: the multicast group of nf_tables' notifications.
pub const NFNLGRP_NFTABLES: u32 = 7;

/// `NFNL_SUBSYS_NFTABLES`: the subsystem a batch is addressed to.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// Conntrack deletions sent in one datagram.
const DELETES_PER_DATAGRAM: usize = 64;

/// A failed nf_tables batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The kernel refused operation `op` (its index in the batch) with this
    /// errno; nothing of the batch was committed.
    #[error("{}", std::io::Error::from_raw_os_error(*.errno))]
    Refused {
        /// The refused operation's index, when the refusal names one.
        op: Option<usize>,
        /// The (positive) errno.
        errno: i32,
    },
    /// Fewer operations were acknowledged than sent.
    #[error("{acked} of {sent} operations acknowledged")]
    Unacknowledged {
        /// Acknowledged operations.
        acked: usize,
        /// Operations sent.
        sent: usize,
    },
    /// The exchange itself failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

impl BatchError {
    /// The kernel's (positive) errno, when it refused the batch.
    pub fn errno(&self) -> Option<i32> {
        match self {
            BatchError::Refused { errno, .. } => Some(*errno),
            BatchError::Netlink(e) => e.errno(),
            BatchError::Unacknowledged { .. } => None,
        }
    }
}

/// `NFT_MSG_GETGEN`: the netns's nf_tables generation (bumped by every
/// commit).
fn get_generation() -> NetfilterMessage {
    message(
        NetfilterProtoFamily::Unspec,
        0,
        NfTablesMessage::GetGen(GenMessage { attributes: vec![] }),
    )
}

fn message(
    family: NetfilterProtoFamily,
    res_id: u16,
    inner: impl Into<NetfilterMessageInner>,
) -> NetfilterMessage {
    NetfilterMessage::new(NetfilterHeader::new(family, 0, res_id), inner)
}

impl Socket<Netfilter> {
    /// Applies `ops` (nf_tables messages of `family`, each with its extra
    /// netlink flags such as `NLM_F_CREATE`/`NLM_F_EXCL`) as one atomic
    /// transaction: all or nothing. Every operation is acknowledged; the
    /// first refusal names its operation.
    pub fn nftables_batch(
        &self,
        family: NetfilterProtoFamily,
        ops: Vec<(NfTablesMessage, u16)>,
    ) -> Result<(), BatchError> {
        self.batch(family, ops, true)
    }

    /// Runs `ops` as [`Self::nftables_batch`] does but without the batch's
    /// END message: the kernel performs and validates every operation
    /// (loading modules as needed), then aborts the transaction
    /// (`NFNL_ABORT_VALIDATE`, what `nft -c` does). Nothing is committed;
    /// the first refusal names its operation.
    pub fn nftables_dry_run(
        &self,
        family: NetfilterProtoFamily,
        ops: Vec<(NfTablesMessage, u16)>,
    ) -> Result<(), BatchError> {
        self.batch(family, ops, false)
    }

    fn batch(
        &self,
        family: NetfilterProtoFamily,
        ops: Vec<(NfTablesMessage, u16)>,
        commit: bool,
    ) -> Result<(), BatchError> {
        if ops.is_empty() {
            return Ok(());
        }
        let sent = ops.len();
        let mut msgs = Vec::with_capacity(sent + 2);
        let begin = ControlMessage::BatchBegin;
        msgs.push((
            message(NetfilterProtoFamily::Unspec, NFNL_SUBSYS_NFTABLES, begin),
            0,
        ));
        for (op, flags) in ops {
            msgs.push((message(family, 0, op), flags | NLM_F_ACK));
        }
        if commit {
            let end = ControlMessage::BatchEnd;
            msgs.push((
                message(NetfilterProtoFamily::Unspec, NFNL_SUBSYS_NFTABLES, end),
                0,
            ));
        }
        let answers = self.exchange(msgs)?;
        let mut acked = 0;
        // The begin and end messages are not acknowledged unless they fail.
        for (i, answer) in answers.iter().enumerate() {
            match answer.status {
                Some(Ok(())) => acked += 1,
                Some(Err(errno)) => {
                    let op = i.checked_sub(1).filter(|op| *op < sent);
                    return Err(BatchError::Refused { op, errno });
                }
                None => {}
            }
        }
        if acked < sent {
            return Err(BatchError::Unacknowledged { acked, sent });
        }
        Ok(())
    }

    /// Sends each request (nf_tables GETs of `family`, acknowledged) in one
    /// datagram and returns each one's answer: the replies, or the errno it
    /// was refused with.
    pub fn nftables_get(
        &self,
        family: NetfilterProtoFamily,
        requests: Vec<NfTablesMessage>,
    ) -> Result<Vec<Result<Vec<NfTablesMessage>, i32>>, NetlinkError> {
        let msgs = requests
            .into_iter()
            .map(|r| (message(family, 0, r), NLM_F_ACK))
            .collect();
        Ok(self
            .exchange(msgs)?
            .into_iter()
            .map(|a| match a.status {
                Some(Err(errno)) => Err(errno),
                _ => Ok(a
                    .messages
                    .into_iter()
                    .filter_map(|m| match m.inner {
                        NetfilterMessageInner::NfTables(t) => Some(t),
                        _ => None,
                    })
                    .collect()),
            })
            .collect())
    }

    /// Every conntrack entry of `family` (`IPv4`, `IPv6`, or `Unspec` for
    /// every family in one walk of the kernel's table), as attributes.
    pub fn conntrack_dump(
        &self,
        family: NetfilterProtoFamily,
    ) -> Result<Vec<Vec<ConntrackAttribute>>, NetlinkError> {
        let dump = message(family, 0, ConntrackMessage::Get(vec![]));
        Ok(self
            .request(dump, NLM_F_DUMP)?
            .into_iter()
            .filter_map(|m| match m.inner {
                NetfilterMessageInner::Conntrack(
                    ConntrackMessage::New(a) | ConntrackMessage::Get(a),
                ) => Some(a),
                _ => None,
            })
            .collect())
    }

    /// Deletes the conntrack entries of `family` identified by each
    /// attribute list (typically its `CtaTupleOrig`), many per datagram;
    /// returns each deletion's outcome (`Err(ENOENT)`: already gone).
    pub fn conntrack_delete(
        &self,
        family: NetfilterProtoFamily,
        entries: Vec<Vec<ConntrackAttribute>>,
    ) -> Result<Vec<Result<(), i32>>, NetlinkError> {
        let mut out = Vec::with_capacity(entries.len());
        // Chunks keep each datagram and its queued answers well inside the
        // socket buffers.
        for chunk in entries.chunks(DELETES_PER_DATAGRAM) {
            let msgs = chunk
                .iter()
                .map(|a| {
                    let delete = ConntrackMessage::Delete(a.clone());
                    (message(family, 0, delete), NLM_F_ACK)
                })
                .collect();
            out.extend(
                self.exchange(msgs)?
                    .into_iter()
                    .map(|a| a.status.unwrap_or(Ok(()))),
            );
        }
        Ok(out)
    }

    /// A socket of the calling thread's netns that receives nf_tables'
    /// notifications ([`NFNLGRP_NFTABLES`], read with [`Socket::drain`]):
    /// from the moment this returns, each committed transaction, whoever
    /// made it, queues a message per object it added or deleted (rules with
    /// their table, chain, handle and expressions), then `NFT_MSG_NEWGEN`
    /// with the generation it started.
    pub fn nftables_events() -> Result<Self, NetlinkError> {
        let mut sock = Self::open()?;
        sock.join(NFNLGRP_NFTABLES)?;
        Ok(sock)
    }

    /// The netns's current nf_tables generation (`NFT_MSG_GETGEN`): a
    /// counter every committed transaction, in any family, moves on.
    pub fn nftables_generation(&self) -> Result<u32, NetlinkError> {
        self.request(get_generation(), 0)?
            .into_iter()
            .find_map(|m| match m.inner {
                NetfilterMessageInner::NfTables(NfTablesMessage::NewGen(g)) => {
                    g.attributes.into_iter().find_map(|a| match a {
                        GenAttribute::Id(id) => Some(id),
                        _ => None,
                    })
                }
                _ => None,
            })
            .ok_or_else(|| NetlinkError::Decode("NFT_MSG_NEWGEN without an id".into()))
    }

    /// Closes the socket without waiting for the kernel's RCU grace period
    /// (see the module doc): a detached child keeps the last reference,
    /// waits without holding any lock until a grace period passed with no
    /// commit in the netns, and exits. The child shares this process's
    /// memory (`closing.rs`: no fork); a forked one where that child cannot
    /// start, and a plain (waiting) close where neither can.
    pub fn close_in_background(self) {
        self.close_in_background_holding(&[]);
    }

    /// Like [`Self::close_in_background`], and the child also holds the
    /// descriptors `keep` (see [`Self::close_in_background_keeping`]).
    pub fn close_in_background_holding(self, keep: &[RawFd]) {
        if !crate::failpoint::children_steered() {
            let probe = self.encode(get_generation(), 0);
            let mut held = vec![self.as_raw_fd()];
            held.extend(keep.iter().filter(|fd| **fd != self.as_raw_fd()));
            if super::closing::spawn(&held, &probe, QUIET_ROUNDS, BACKGROUND_NICE) {
                return;
            }
        }
        self.close_in_background_keeping(keep, |_| {});
    }

    /// Like [`Self::close_in_background`], but the child first runs `work`
    /// on this socket: work the runtime need not wait for (conntrack
    /// cleanup) still happens, right away, while the caller goes on to
    /// reply ([`Socket::in_detached_child`]).
    pub fn close_in_background_after(self, work: impl FnOnce(&Self)) {
        self.close_in_background_keeping(&[], work);
    }

    /// Like [`Self::close_in_background_after`], and the child also holds
    /// the descriptors `keep` (another nfnetlink socket of the verb, such
    /// as an [`Self::nftables_events`] one) until it exits: the caller's
    /// close of those, after this returns, is not the last one, so it does
    /// not wait for the grace period either.
    ///
    /// The child closes only once a whole grace period passed with no
    /// commit in the netns (the nf_tables generation did not move): the
    /// close waits, holding the commit mutex, for the freeing work of every
    /// transaction still pending, and a transaction committed in the last
    /// grace period is still pending. Back-to-back verbs commit within each
    /// other's grace periods; closing after the first one made about one ADD
    /// in three wait 8–24 ms for a previous verb's child here.
    pub fn close_in_background_keeping(self, keep: &[RawFd], work: impl FnOnce(&Self)) {
        let probe = self.encode(get_generation(), 0);
        self.in_detached_child_keeping(keep, |sock| {
            work(sock);
            super::closing::hold_until_quiet(sock.as_raw_fd(), &probe, QUIET_ROUNDS);
        });
        drop(self);
    }
}

/// How many grace periods a closing child waits at most for one with no
/// commit in it (about 10–20 ms each here); it closes anyway after them.
const QUIET_ROUNDS: usize = 8;
