//! The NETLINK_ROUTE names plugins have always imported from `cni::rtnl`:
//! the socket and verbs live in [`crate::netlink`] (one socket layer for
//! every protocol); this module only re-exports them.

pub use crate::netlink::route::{
    link_alias, link_group, link_kind, link_kind_name, link_mac, link_mtu, link_name, link_peer,
    link_qdisc, LinkAdd, LinkSet, Rtnl,
};
pub use crate::netlink::{NetlinkError as RtnlError, EEXIST, EINVAL, ENODEV, ENOENT};
