//! NETLINK_ROUTE verbs over [`super::Socket`]: the generic link verbs every
//! plugin needs (look up by name or index, dump, create, change, delete),
//! readers for a link message's common attributes (name, alias, MTU, MAC,
//! kind, peer), and the one-destination route lookup (output interface,
//! local or not). tc messages are built
//! by their users (bandwidth) and sent with [`Socket::request`]; nothing
//! here knows about plugins.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkExtentMask, LinkInfo, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{NetlinkError, Socket, ENODEV};

/// What a route lookup answers for a destination no route reaches.
const UNROUTABLE: [i32; 3] = [libc::ENETUNREACH, libc::EHOSTUNREACH, libc::EINVAL];

/// The NETLINK_ROUTE protocol (links, addresses, routes, qdiscs).
#[derive(Debug, Clone, Copy)]
pub struct Route;

/// A NETLINK_ROUTE socket.
pub type Rtnl = Socket<Route>;

/// The name of a link message, if it has one.
pub fn link_name(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// The alias (`IFLA_IFALIAS`) of a link message, if set.
pub fn link_alias(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(s) => Some(s.as_str()),
        _ => None,
    })
}

/// The MTU of a link message, if present.
pub fn link_mtu(msg: &LinkMessage) -> Option<u32> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// The hardware address of a link message as `aa:bb:…`, if it has one.
pub fn link_mac(msg: &LinkMessage) -> Option<String> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(b) if !b.is_empty() => Some(
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        _ => None,
    })
}

/// The kind (`veth`, `ifb`, …) of a link message, if it says.
pub fn link_kind(msg: &LinkMessage) -> Option<InfoKind> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k.clone()),
            _ => None,
        }),
        _ => None,
    })
}

/// The ifindex of the link's peer or lower device (`IFLA_LINK`), if any.
pub fn link_peer(msg: &LinkMessage) -> Option<u32> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Link(i) => Some(*i),
        _ => None,
    })
}

const CREATE: u16 = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;

impl Socket<Route> {
    /// Looks a link up by name (per-VF stats skipped: RTEXT_FILTER_SKIP_STATS;
    /// the kernel sends the link's own counters regardless); `Ok(None)` when
    /// no link (or altname) has that name.
    pub fn link_by_name(&self, name: &str) -> Result<Option<LinkMessage>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(msg)
    }

    /// Looks a link up by index (per-VF stats skipped); `Ok(None)` when it
    /// does not exist.
    pub fn link_by_index(&self, index: u32) -> Result<Option<LinkMessage>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.get_link(msg)
    }

    /// Every link of the netns (per-VF stats skipped).
    pub fn links(&self) -> Result<Vec<LinkMessage>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        Ok(self
            .request(RouteNetlinkMessage::GetLink(msg), NLM_F_DUMP)?
            .into_iter()
            .filter_map(new_link)
            .collect())
    }

    fn get_link(&self, mut msg: LinkMessage) -> Result<Option<LinkMessage>, NetlinkError> {
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(new_link)),
            Err(e) if e.errno() == Some(ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a link (EEXIST if the name is taken) and returns the kernel's
    /// description of it (NLM_F_ECHO, Linux ≥ 6.2; `None` on kernels that do
    /// not echo, then the caller looks it up).
    pub fn create_link(&self, msg: LinkMessage) -> Result<Option<LinkMessage>, NetlinkError> {
        let replies = self.request(RouteNetlinkMessage::NewLink(msg), CREATE | NLM_F_ECHO)?;
        Ok(replies.into_iter().find_map(new_link))
    }

    /// Changes a link (RTM_SETLINK, acknowledged): by `header.index`, or by
    /// `IfName` with index 0.
    pub fn set_link(&self, msg: LinkMessage) -> Result<(), NetlinkError> {
        self.request(RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)
            .map(drop)
    }

    /// Deletes the link with ifindex `index` (ENODEV when it is gone).
    pub fn delete_link(&self, index: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(msg), NLM_F_ACK)
            .map(drop)
    }

    /// The output interface of the route the kernel would use to reach `ip`
    /// (RTM_GETROUTE for one destination: a lookup, not a dump); `Ok(None)`
    /// when the answer names none.
    pub fn route_oif(&self, ip: IpAddr) -> Result<Option<u32>, NetlinkError> {
        Ok(self.route_get(ip)?.iter().find_map(|r| {
            r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            })
        }))
    }

    /// Whether `ip` is a local address of this netns: the kernel's route to
    /// it is of type `local` (what nft's `fib daddr type local` matches;
    /// one RTM_GETROUTE lookup, not an address dump). Unreachable is not
    /// local.
    pub fn is_local(&self, ip: IpAddr) -> Result<bool, NetlinkError> {
        match self.route_get(ip) {
            Ok(routes) => Ok(routes.iter().any(|r| r.header.kind == RouteType::Local)),
            Err(e) if e.errno().is_some_and(|n| UNROUTABLE.contains(&n)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// RTM_GETROUTE for one destination: the route the kernel would use.
    fn route_get(&self, ip: IpAddr) -> Result<Vec<RouteMessage>, NetlinkError> {
        let mut query = RouteMessage::default();
        let (family, len, dst) = match ip {
            IpAddr::V4(v4) => (AddressFamily::Inet, 32, RouteAddress::Inet(v4)),
            IpAddr::V6(v6) => (AddressFamily::Inet6, 128, RouteAddress::Inet6(v6)),
        };
        query.header.address_family = family;
        query.header.destination_prefix_length = len;
        query.attributes.push(RouteAttribute::Destination(dst));
        let replies = self.request(RouteNetlinkMessage::GetRoute(query), 0)?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .collect())
    }
}

fn new_link(m: RouteNetlinkMessage) -> Option<LinkMessage> {
    match m {
        RouteNetlinkMessage::NewLink(l) => Some(l),
        _ => None,
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use std::path::Path;

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
        assert_eq!(link_kind(&by_index), Some(InfoKind::Veth));
        assert_eq!(link_mtu(&by_index), Some(1500));
        assert!(link_peer(&by_index).is_some());
        assert_eq!(link_mac(&by_index).map(|m| m.len()), Some(17));
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
        let e = rtnl.create_link(msg.clone()).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
        assert_eq!(e.to_string(), "File exists (os error 17)");
        // A created link is echoed; set, alias and delete act on it;
        // deleting it twice is ENODEV.
        msg.attributes[0] = LinkAttribute::IfName("rtifb0".into());
        let echoed = rtnl.create_link(msg).unwrap();
        let ifb = match echoed {
            Some(l) => l,
            None => rtnl.link_by_name("rtifb0").unwrap().unwrap(),
        };
        let mut set = LinkMessage::default();
        set.header.index = ifb.header.index;
        set.attributes.push(LinkAttribute::IfAlias("owner".into()));
        set.attributes.push(LinkAttribute::Mtu(1400));
        rtnl.set_link(set).unwrap();
        let now = rtnl.link_by_index(ifb.header.index).unwrap().unwrap();
        assert_eq!(link_alias(&now), Some("owner"));
        assert_eq!(link_mtu(&now), Some(1400));
        rtnl.delete_link(ifb.header.index).unwrap();
        let e = rtnl.delete_link(ifb.header.index).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV));
        // The route to an address on rt0's subnet leaves through rt0.
        ns.exec(&["ip", "addr", "add", "10.77.0.1/24", "dev", "rt0"]);
        ns.exec(&["ip", "link", "set", "rt0", "up"]);
        ns.exec(&["ip", "link", "set", "rt1", "up"]);
        let oif = rtnl.route_oif("10.77.0.9".parse().unwrap()).unwrap();
        assert_eq!(oif, Some(rt0.header.index));
        // A missing netns is reported as such.
        let e = Rtnl::open_in(Path::new("/run/netns/cnt-no-such-netns")).unwrap_err();
        assert!(e.is_netns_missing(), "{e}");
    }
}
