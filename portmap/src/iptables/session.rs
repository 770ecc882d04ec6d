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
//! [`Session::finish`] forks, so it runs on the verb's only thread, after
//! the family threads joined. Runs no process.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use cni::netlink::netfilter::Nfnl;
use netlink_packet_netfilter::nftables::{ChainAttribute, ChainMessage, NfTablesMessage};
use netlink_packet_netfilter::NetfilterProtoFamily;

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
                }
            }
            Err(_) => Session {
                sock: None,
                present: upstream::probe_legacy().iptables,
            },
        }
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
    pub fn finish(self, udp: &BTreeSet<MapKey>, keep: &BTreeSet<SocketAddr>) {
        let wanted = conntrack::has_udp(udp);
        match self.sock {
            Some(sock) if wanted => {
                sock.close_in_background_after(|s| conntrack::flush_udp(s, udp, keep));
            }
            Some(sock) => sock.close_in_background(),
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
