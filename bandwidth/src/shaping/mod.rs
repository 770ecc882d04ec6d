//! The only part of bandwidth that changes the kernel: a [`Host`] (one
//! blocking rtnetlink socket in the host netns, the netns the plugin runs
//! in) finds the host end of the pod's veth and applies, verifies and
//! removes a [`ShapingPlan`]. One file per job:
//!
//! - `veth`: the host end of the pod's veth (the pod netns gets a socket
//!   only for the one lookup of the container interface);
//! - `apply`: ADD, the fast exclusive way and the careful way;
//! - `undo`: the journal of what an ADD created, and undoing it;
//! - `verify`: CHECK;
//! - `remove`: DEL and GC;
//! - `probe`: STATUS (every kind of object ADD needs, in a throwaway netns).
//!
//! This file holds what they share: the socket, the veth and IFB
//! descriptions, and what makes a link or qdisc ours. tc messages are
//! built in `tc_raw`, sent by `tc`; link verbs are `cni::netlink::route`. It never
//! decides *what* to shape (that is `plan`) and never reads stdin or the
//! environment. Failures are [`TcError`].

mod apply;
mod probe;
mod remove;
mod undo;
mod verify;
mod veth;

use netlink_packet_route::link::{InfoKind, LinkMessage};
use netlink_packet_route::tc::{TcHandle, TcMessage};

use cni::args::Owner;
use cni::rtnl::{link_alias, link_kind, link_mtu, link_name, link_qdisc};
use cni::rtnl::{Rtnl, RtnlError};

use crate::error::TcError;
#[cfg(doc)]
use crate::plan::ShapingPlan;
use crate::plan::{IfbAlias, ROOT_HANDLE};
use crate::tc;
use crate::tc_raw::{self, tc_handle};

pub use probe::prerequisites;

/// The host end of the pod's veth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVeth {
    /// Its name in the host netns.
    pub name: String,
    /// Its ifindex in the host netns.
    pub index: u32,
    /// Its MTU.
    pub mtu: u32,
    /// The kind of its root qdisc (IFLA_QDISC), when the kernel said.
    pub qdisc: Option<String>,
}

impl HostVeth {
    fn from_link(link: &LinkMessage) -> HostVeth {
        HostVeth {
            name: link_name(link).unwrap_or_default().to_string(),
            index: link.header.index,
            mtu: link_mtu(link).unwrap_or(1500),
            qdisc: link_qdisc(link).map(str::to_string),
        }
    }
}

/// The MTU of every IFB bandwidth creates: one below IPv6's minimum
/// (1280), so that the kernel never gives the IFB IPv6 at all. Bringing up
/// a link that has IPv6 walks every IPv6 route of the host netns and joins
/// the lists that hold every other link's `fe80::/64` and `ff00::/8`
/// routes, under the RTNL lock: with 1000 shaped pods, several
/// milliseconds per ADD, growing with the pods, and two more routes per
/// pod in `ip -6 route`. Writing the IFB's `disable_ipv6` before it is up
/// costs the same walk. The MTU of an IFB changes nothing for what it
/// carries: mirred hands it packets of any size (GSO ones included) and
/// the TBF's limits come from the plan, not from the device. IFBs that
/// earlier releases made with the host veth's MTU still pass CHECK.
pub const IFB_MTU: u32 = 1279;

/// The IFB ADD created, for the result's `interfaces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedIfb {
    /// The IFB's name.
    pub name: String,
    /// Its MAC address, when it has one.
    pub mac: Option<String>,
}

/// A netlink socket in the host netns (where the plugin runs).
pub struct Host {
    nl: Rtnl,
}

/// The owner record of `link` when it is ours: an IFB named `name` whose
/// alias names `owner`. Anything else holding that name is someone else's.
fn our_ifb(link: &LinkMessage, name: &str, owner: &Owner) -> Option<IfbAlias> {
    if link_kind(link) != Some(InfoKind::Ifb) || link_name(link) != Some(name) {
        return None;
    }
    link_alias(link)
        .and_then(IfbAlias::parse)
        .filter(|a| &a.owner == owner)
}

/// An IFB with our name and no alias at all: the creation and the alias
/// are two netlink requests (the kernel ignores IFLA_IFALIAS on create),
/// so an ADD killed between them leaves this (issue #15 §3). The name is a
/// hash of the owner that only we choose, and nothing of the pod uses the
/// IFB yet (the redirect comes later), so DEL and ADD remove it.
fn unlabelled_ifb(link: &LinkMessage, name: &str) -> bool {
    link_kind(link) == Some(InfoKind::Ifb)
        && link_name(link) == Some(name)
        && link_alias(link).is_none_or(|a| a.is_empty())
}

/// The kinds of root qdisc bandwidth creates on a veth, with handle `1:`:
/// a tbf, or the htb of a subnet split.
const ROOT_KINDS: [&str; 2] = ["tbf", "htb"];

/// A root qdisc bandwidth creates (`1:` tbf or htb); ADD replaces it and
/// DEL removes it.
fn is_our_root(q: &TcMessage) -> bool {
    q.header.parent == TcHandle::ROOT
        && q.header.handle == tc_handle(ROOT_HANDLE)
        && tc_raw::kind(q).is_some_and(|k| ROOT_KINDS.contains(&k))
}

/// Records `r`'s failure in `errors` unless the object was already gone.
fn unless_gone(r: Result<(), RtnlError>, what: String, errors: &mut Vec<TcError>) {
    if let Err(e) = r.map_err(TcError::netlink(what)) {
        if !e.is_gone() {
            errors.push(e);
        }
    }
}

impl Host {
    /// Opens the socket in the calling thread's netns.
    pub fn open() -> Result<Host, TcError> {
        let nl = Rtnl::open().map_err(TcError::netlink("opening netlink in the host netns"))?;
        Ok(Host { nl })
    }

    /// A cheap request proving netlink is usable (STATUS where no netns
    /// can be made for [`prerequisites`]).
    pub fn probe(&self) -> Result<(), TcError> {
        self.nl
            .link_by_name("lo")
            .map(drop)
            .map_err(TcError::netlink("netlink is not usable (looking up lo)"))
    }

    fn link(&self, name: &str) -> Result<Option<LinkMessage>, TcError> {
        self.nl
            .link_by_name(name)
            .map_err(TcError::netlink(format!("looking up link {name}")))
    }

    /// The qdiscs of one device; `what` names it for the error.
    fn qdiscs(&self, ifindex: u32, what: &str) -> Result<Vec<TcMessage>, TcError> {
        tc::qdiscs(&self.nl, ifindex).map_err(TcError::netlink(format!(
            "listing qdiscs of {what} (ifindex {ifindex})"
        )))
    }
}
