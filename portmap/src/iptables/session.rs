//! One verb's nfnetlink socket in the iptables backend, opened once and
//! closed once: which flavours may hold upstream's layout (the no-spawn
//! probe of [`crate::upstream`]), whether iptables-nft's IPv4 `raw` table
//! still has the localnet drop (one GETCHAIN instead of an
//! `iptables-nft-save -t raw`, which reads every table: 46 ms with 1000 pods
//! mapped), and, when the verb is over, the UDP conntrack flush of the ports
//! it touched, done by a detached child after the plugin exited
//! ([`Nfnl::close_in_background_after`]): the runtime does not wait for the
//! conntrack dumps, and they still happen, a fraction of a second later.
//!
//! ADD and DEL also open a second socket that receives nf_tables'
//! notifications, for [`super::dnat_cache`] ([`Session::open_tracked`]);
//! its last close is the detached child's too.
//!
//! [`Session::finish`] forks, so it runs on the verb's only thread, after
//! the family threads joined. Runs no process.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use cni::netlink::netfilter::Nfnl;
use netlink_packet_netfilter::nftables::{ChainAttribute, ChainMessage, NfTablesMessage};
use netlink_packet_netfilter::NetfilterProtoFamily;

use super::dnat_cache::Tracker;
use super::exec::Flavour;
use super::rules::LOCALNET;
use crate::plan::MapKey;
use crate::{conntrack, upstream};

/// What one verb knows from its socket, and the socket.
pub struct Session {
    /// None: nfnetlink could not be opened (legacy-only hosts still work).
    sock: Option<Nfnl>,
    /// The flavours whose `nat` table may hold upstream's layout.
    pub present: Vec<Flavour>,
    /// nf_tables' notifications, for [`Self::dnat`] (ADD and DEL where
    /// iptables-nft holds the layout).
    events: Option<Nfnl>,
    /// `CNI-HOSTPORT-DNAT` as this verb knows it ([`super::dnat_cache`]).
    dnat: RefCell<Tracker>,
}

impl Session {
    /// Opens the socket and probes.
    pub fn open() -> Session {
        match Nfnl::open() {
            Ok(sock) => {
                let present = upstream::probe(&sock).iptables;
                Session {
                    sock: Some(sock),
                    present,
                    events: None,
                    dnat: RefCell::default(),
                }
            }
            Err(_) => Session {
                sock: None,
                present: upstream::probe_legacy().iptables,
                events: None,
                dnat: RefCell::default(),
            },
        }
    }

    /// [`Self::open`], and where iptables-nft holds the layout, tracks
    /// `CNI-HOSTPORT-DNAT` across the verb ([`Tracker`]): the
    /// verb reads it from the cache file when still true, and the file is
    /// brought up to date by [`Self::finish`]. Call under the netns lock.
    pub fn open_tracked() -> Session {
        let mut session = Session::open();
        let nft = session
            .present
            .iter()
            .any(|f| matches!(f, Flavour::Nft { .. }));
        if let (Some(sock), true) = (&session.sock, nft) {
            session.events = Nfnl::nftables_events().ok();
            session.dnat = RefCell::new(Tracker::begin(sock, session.events.as_ref()));
        }
        session
    }

    /// The verb's view of `CNI-HOSTPORT-DNAT` (read from the cache file or
    /// dumped once, see [`Tracker::rules`]), for `f`; None: no socket.
    pub fn dnat<R>(&self, f: impl FnOnce(&Nfnl, &mut Tracker) -> R) -> Option<R> {
        let sock = self.sock.as_ref()?;
        Some(f(sock, &mut self.dnat.borrow_mut()))
    }

    /// The socket (None: nfnetlink could not be opened).
    pub fn sock(&self) -> Option<&Nfnl> {
        self.sock.as_ref()
    }

    /// Whether iptables-nft's IPv4 `raw` table holds [`LOCALNET`] with its
    /// one rule and the `PREROUTING` jump to it: the chain's use count (its
    /// rules plus the jumps to it) is 2. Anything else (missing, flushed,
    /// unreferenced, or rules added by someone) is `false`, and the caller
    /// reads the table to complete it exactly.
    pub fn localnet_in_place(&self) -> bool {
        let Some(sock) = &self.sock else {
            return false;
        };
        let get = NfTablesMessage::GetChain(ChainMessage {
            attributes: vec![
                ChainAttribute::Table("raw".into()),
                ChainAttribute::Name(LOCALNET.into()),
            ],
        });
        let Ok(answers) = sock.nftables_get(NetfilterProtoFamily::IPv4, vec![get]) else {
            return false;
        };
        answers
            .into_iter()
            .next()
            .and_then(Result::ok)
            .into_iter()
            .flatten()
            .any(|m| match m {
                NfTablesMessage::NewChain(c) => c
                    .attributes
                    .iter()
                    .any(|a| matches!(a, ChainAttribute::Use(2))),
                _ => false,
            })
    }

    /// Ends a verb that deleted nothing (STATUS): a plain close, no fork.
    /// It waits for an RCU grace period only when something in the netns
    /// deleted nf_tables objects within the last few milliseconds (see
    /// [`cni::netlink::netfilter`]), rare for STATUS, which containerd
    /// calls every 5 s; the fork it saves is 0.4 ms of every call.
    pub fn close(self) {
        drop(self.sock);
    }

    /// Ends the verb: the socket is closed by a detached child, which first
    /// deletes the stale UDP conntrack entries of `udp` (both families;
    /// failures are logged, as upstream does), but for those already NATed
    /// to one of `keep`. Without a socket, the flush runs here on a new one.
    /// A tracked session ([`Self::open_tracked`]) first brings the cache
    /// file up to date; the notification socket's last close is the
    /// child's too.
    pub fn finish(self, udp: &BTreeSet<MapKey>, keep: &BTreeSet<SocketAddr>) {
        let wanted = conntrack::has_udp(udp);
        if let Some(sock) = &self.sock {
            self.dnat.into_inner().finish(sock, self.events.as_ref());
        }
        let also: Vec<RawFd> = self.events.iter().map(AsRawFd::as_raw_fd).collect();
        match self.sock {
            Some(sock) if wanted => {
                sock.close_in_background_keeping(&also, |s| conntrack::flush_udp(s, udp, keep));
            }
            Some(sock) => sock.close_in_background_holding(&also),
            None if wanted => match Nfnl::open() {
                Ok(sock) => {
                    conntrack::flush_udp(&sock, udp, keep);
                    sock.close_in_background();
                }
                Err(e) => eprintln!("portmap: opening a conntrack netlink socket: {e}"),
            },
            None => {}
        }
    }
}
