//! Generic rtnetlink link helpers bandwidth needs: attribute getters of a
//! [`LinkMessage`] (kind, peer index, mtu, alias, MAC, root qdisc) and the
//! link verbs (create with echo, set, delete) over `cni::rtnl`. Nothing here
//! knows about shaping, IFBs or owners.
//!
//! These belong in cni's netlink layer (`cni/src/netlink/`, being built on
//! another branch); they sit together here so that the move is one file
//! once both branches land.

use cni::rtnl::{Rtnl, RtnlError};
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

pub use cni::rtnl::link_name as name;

fn attr<T>(msg: &LinkMessage, f: impl Fn(&LinkAttribute) -> Option<T>) -> Option<T> {
    msg.attributes.iter().find_map(f)
}

/// The link's kind (IFLA_INFO_KIND), when it has one.
pub fn kind(msg: &LinkMessage) -> Option<InfoKind> {
    attr(msg, |a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k.clone()),
            _ => None,
        }),
        _ => None,
    })
}

/// The kind in lowercase (`veth`, `ifb`), or `unknown kind`.
pub fn kind_name(msg: &LinkMessage) -> String {
    kind(msg).map_or("unknown kind".to_string(), |k| {
        format!("{k:?}").to_lowercase()
    })
}

/// The peer's ifindex (IFLA_LINK), e.g. the other end of a veth.
pub fn peer(msg: &LinkMessage) -> Option<u32> {
    attr(msg, |a| match a {
        LinkAttribute::Link(i) => Some(*i),
        _ => None,
    })
}

/// The MTU (1500 when the kernel did not say).
pub fn mtu(msg: &LinkMessage) -> u32 {
    attr(msg, |a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
    .unwrap_or(1500)
}

/// The alias (IFLA_IFALIAS).
pub fn alias(msg: &LinkMessage) -> Option<String> {
    attr(msg, |a| match a {
        LinkAttribute::IfAlias(s) => Some(s.clone()),
        _ => None,
    })
}

/// The MAC address as `aa:bb:…`, when it has a non-empty one.
pub fn mac(msg: &LinkMessage) -> Option<String> {
    attr(msg, |a| match a {
        LinkAttribute::Address(b) if !b.is_empty() => Some(
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        _ => None,
    })
}

/// The kind of its root qdisc (IFLA_QDISC), when the kernel said.
pub fn qdisc(msg: &LinkMessage) -> Option<String> {
    attr(msg, |a| match a {
        LinkAttribute::Qdisc(q) => Some(q.clone()),
        _ => None,
    })
}

/// Creates a link (fails with EEXIST if the name is taken) and returns the
/// kernel's description of it (NLM_F_ECHO, Linux ≥ 6.2; `None` on kernels
/// that do not echo, then the caller looks it up).
pub fn add_echo(nl: &Rtnl, msg: LinkMessage) -> Result<Option<LinkMessage>, RtnlError> {
    let flags = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO;
    let replies = nl.request(RouteNetlinkMessage::NewLink(msg), flags)?;
    Ok(replies.into_iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(l) => Some(l),
        _ => None,
    }))
}

/// Changes a link (RTM_SETLINK, acknowledged).
pub fn set(nl: &Rtnl, msg: LinkMessage) -> Result<(), RtnlError> {
    nl.request(RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)
        .map(drop)
}

/// Deletes the link with ifindex `index`.
pub fn delete(nl: &Rtnl, index: u32) -> Result<(), RtnlError> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    nl.request(RouteNetlinkMessage::DelLink(msg), NLM_F_ACK)
        .map(drop)
}
