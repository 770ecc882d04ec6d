//! NETLINK_ROUTE verbs over [`super::Socket`]: the link verbs every plugin
//! needs (`link.rs`: look up, dump, create, change, delete), readers for a
//! link message's common attributes (`attr.rs`), and the plain dumps and
//! lookups here (addresses of one link, every qdisc, the qdisc at one
//! attachment point of one link, the route to one destination). tc messages
//! are built by their users (bandwidth) and sent with [`Socket::request`];
//! nothing here knows about plugins.

mod attr;
mod link;

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_ECHO};
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::tc::{TcHandle, TcMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{NetlinkError, Socket, ENOENT};

/// What a route lookup answers for a destination no route reaches.
const UNROUTABLE: [i32; 3] = [libc::ENETUNREACH, libc::EHOSTUNREACH, libc::EINVAL];

pub use attr::{
    link_alias, link_group, link_kind, link_kind_name, link_mac, link_mtu, link_name, link_peer,
    link_qdisc,
};
pub use link::{LinkAdd, LinkSet};

/// The NETLINK_ROUTE protocol (links, addresses, routes, qdiscs).
#[derive(Debug, Clone, Copy)]
pub struct Route;

/// A NETLINK_ROUTE socket.
pub type Rtnl = Socket<Route>;

impl Socket<Route> {
    /// The addresses (RTM_GETADDR dump) on the link with ifindex `index`;
    /// the kernel filters by ifindex only under strict checking, so the
    /// filter is applied here.
    pub fn addresses(&self, index: u32) -> Result<Vec<AddressMessage>, NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        let replies = self.request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => Some(a),
                _ => None,
            })
            .collect())
    }

    /// Every qdisc of every device of the netns (RTM_GETQDISC dump).
    pub fn qdiscs(&self) -> Result<Vec<TcMessage>, NetlinkError> {
        let replies = self.request(
            RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewQueueDiscipline(q) => Some(q),
                _ => None,
            })
            .collect())
    }

    /// The qdisc attached at `parent` of the link with ifindex `index`, with
    /// its statistics: one RTM_GETQDISC of one device, where the dump walks
    /// every qdisc of every device of the netns. `parent` is
    /// [`TcHandle::ROOT`], [`TcHandle::INGRESS`] or a class (the leaf qdisc
    /// of that class). `Ok(None)` when only a kernel placeholder is there
    /// (noop) or nothing; ENODEV when the link is gone.
    ///
    /// The kernel answers such a GET as a notification: it replies only
    /// with NLM_F_ECHO, and also sends the message to the netns's
    /// RTNLGRP_TC listeners. Fine for a test harness; plugins do not use it.
    pub fn qdisc_at(
        &self,
        index: u32,
        parent: TcHandle,
    ) -> Result<Option<TcMessage>, NetlinkError> {
        let mut msg = TcMessage::with_index(index as i32);
        msg.header.parent = parent;
        let get = RouteNetlinkMessage::GetQueueDiscipline(msg);
        match self.request(get, NLM_F_ECHO | NLM_F_ACK) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewQueueDiscipline(q) if q.header.index == index as i32 => {
                    Some(q)
                }
                _ => None,
            })),
            Err(e) if e.errno() == Some(ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
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

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use netlink_packet_route::link::{InfoKind, LinkFlags};
    use netlink_packet_route::tc::TcAttribute;
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
        let e = rtnl.link_add("rt0", InfoKind::Ifb).execute().unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
        assert_eq!(e.to_string(), "File exists (os error 17)");
        // A created link is echoed; set, alias and delete act on it;
        // deleting it twice is ENODEV.
        let echoed = rtnl
            .link_add("rtifb0", InfoKind::Ifb)
            .mtu(1450)
            .tx_queue_len(0)
            .execute()
            .unwrap();
        let ifb = match echoed {
            Some(l) => l,
            None => rtnl.link_by_name("rtifb0").unwrap().unwrap(),
        };
        assert_eq!(link_mtu(&ifb), Some(1450));
        let index = ifb.header.index;
        rtnl.link_set(index)
            .alias("owner")
            .mtu(1400)
            .up()
            .promisc(true)
            .execute()
            .unwrap();
        let now = rtnl.link_by_index(index).unwrap().unwrap();
        assert_eq!(link_alias(&now), Some("owner"));
        assert_eq!(link_mtu(&now), Some(1400));
        assert!(now.header.flags.contains(LinkFlags::Up));
        assert!(now.header.flags.contains(LinkFlags::Promisc));
        // Only what a change names changes; by name works like by index.
        rtnl.link_set_by_name("rtifb0").down().execute().unwrap();
        let now = rtnl.link_by_index(index).unwrap().unwrap();
        assert!(!now.header.flags.contains(LinkFlags::Up));
        assert!(now.header.flags.contains(LinkFlags::Promisc));
        assert_eq!(link_mtu(&now), Some(1400));
        rtnl.link_set_by_name("rt1")
            .address(&[0x0a, 0x58, 0, 0, 0, 1])
            .allmulti(true)
            .execute()
            .unwrap();
        let rt1 = rtnl.link_by_name("rt1").unwrap().unwrap();
        assert_eq!(link_mac(&rt1).as_deref(), Some("0a:58:00:00:00:01"));
        assert!(rt1.header.flags.contains(LinkFlags::Allmulti));
        let e = rtnl.link_set_by_name("nosuch0").up().execute().unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV), "{e}");
        rtnl.link_del(index).unwrap();
        let e = rtnl.link_del(index).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV));
        // The addresses of one link, and the qdiscs of the netns.
        ns.exec(&["ip", "addr", "add", "10.77.0.1/24", "dev", "rt0"]);
        let addrs = rtnl.addresses(rt0.header.index).unwrap();
        assert_eq!(addrs.len(), 1, "{addrs:?}");
        assert_eq!(addrs[0].header.prefix_len, 24);
        let on_lo = rtnl.addresses(lo.header.index).unwrap();
        assert!(on_lo.iter().all(|a| a.header.index == 1), "{on_lo:?}");
        ns.exec(&["tc", "qdisc", "add", "dev", "rt1", "root", "pfifo"]);
        let rt1_index = rtnl.link_by_name("rt1").unwrap().unwrap().header.index;
        let qdiscs = rtnl.qdiscs().unwrap();
        assert!(
            qdiscs.iter().any(|q| q.header.index == rt1_index as i32),
            "{qdiscs:?}"
        );
        // One attachment point of one link: rt1's root is the pfifo (with
        // its counters); rt0, down, has only the kernel's noop placeholder;
        // no ingress qdisc on rt1 until one is added; a link that is gone is
        // ENODEV.
        let root = rtnl.qdisc_at(rt1_index, TcHandle::ROOT).unwrap().unwrap();
        assert_eq!(root.header.parent, TcHandle::ROOT, "{root:?}");
        assert_ne!(root.header.handle.major, 0, "{root:?}");
        assert!(
            root.attributes
                .iter()
                .any(|a| matches!(a, TcAttribute::Stats2(_))),
            "{root:?}"
        );
        let rt0_root = rtnl.qdisc_at(rt0.header.index, TcHandle::ROOT).unwrap();
        assert!(rt0_root.is_none(), "{rt0_root:?}");
        assert!(rtnl
            .qdisc_at(rt1_index, TcHandle::INGRESS)
            .unwrap()
            .is_none());
        ns.exec(&["tc", "qdisc", "add", "dev", "rt1", "ingress"]);
        let ingress = rtnl
            .qdisc_at(rt1_index, TcHandle::INGRESS)
            .unwrap()
            .unwrap();
        assert_eq!(ingress.header.handle.major, 0xffff, "{ingress:?}");
        ns.exec(&["tc", "qdisc", "del", "dev", "rt1", "ingress"]);
        let after = rtnl.qdisc_at(rt1_index, TcHandle::INGRESS).unwrap();
        assert!(after.is_none(), "{after:?}");
        let e = rtnl.qdisc_at(99_999, TcHandle::ROOT).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV), "{e}");
        // The route to an address on rt0's subnet leaves through rt0.
        ns.exec(&["ip", "link", "set", "rt0", "up"]);
        ns.exec(&["ip", "link", "set", "rt1", "up"]);
        let oif = rtnl.route_oif("10.77.0.9".parse().unwrap()).unwrap();
        assert_eq!(oif, Some(rt0.header.index));
        // A missing netns is reported as such.
        let e = Rtnl::open_in(Path::new("/run/netns/cnt-no-such-netns")).unwrap_err();
        assert!(e.is_netns_missing(), "{e}");
    }
}
