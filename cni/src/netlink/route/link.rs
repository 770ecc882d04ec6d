//! Link verbs over a NETLINK_ROUTE socket, one per operation, in
//! rtnetlink's handle → request → `execute()` shape: look a link up by name
//! or index, dump them all, create ([`LinkAdd`]), change ([`LinkSet`]) and
//! delete one. Each verb is one request and its answer; none of them knows
//! about plugins, owners or what a link is for.

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoKind, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::{Route, Rtnl};
use crate::netlink::{NetlinkError, Socket, ENODEV};

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

    /// A request to create a link named `name` of `kind`; see [`LinkAdd`].
    pub fn link_add(&self, name: &str, kind: InfoKind) -> LinkAdd<'_> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(kind)]));
        LinkAdd { rtnl: self, msg }
    }

    /// A request to change the link with ifindex `index`; see [`LinkSet`].
    pub fn link_set(&self, index: u32) -> LinkSet<'_> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        LinkSet { rtnl: self, msg }
    }

    /// A request to change the link named `name` (no lookup first: a
    /// missing link is ENODEV from the change itself); see [`LinkSet`].
    pub fn link_set_by_name(&self, name: &str) -> LinkSet<'_> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        LinkSet { rtnl: self, msg }
    }

    /// Deletes the link with ifindex `index` (ENODEV when it is gone).
    pub fn link_del(&self, index: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(msg), NLM_F_ACK)
            .map(drop)
    }

    /// Deletes every link of link group `group` (nonzero) in one request
    /// (`ip link delete group N`): the kernel unregisters them as one
    /// batch, one wait for RCU for all instead of one each. ENODEV when the
    /// group has no link, EOPNOTSUPP (and nothing deleted) when one of them
    /// cannot be deleted by netlink.
    pub fn link_del_group(&self, group: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Group(group));
        self.request(RouteNetlinkMessage::DelLink(msg), NLM_F_ACK)
            .map(drop)
    }
}

/// RTM_NEWLINK, exclusive (EEXIST when the name is taken), built by
/// [`Rtnl::link_add`]: `rtnl.link_add("ifb0", InfoKind::Ifb).mtu(1500).execute()`.
#[must_use = "a request does nothing until executed"]
#[derive(Debug)]
pub struct LinkAdd<'s> {
    rtnl: &'s Rtnl,
    msg: LinkMessage,
}

impl LinkAdd<'_> {
    fn with(mut self, attr: LinkAttribute) -> Self {
        self.msg.attributes.push(attr);
        self
    }

    /// The new link's MTU.
    pub fn mtu(self, mtu: u32) -> Self {
        self.with(LinkAttribute::Mtu(mtu))
    }

    /// The new link's transmit queue length.
    pub fn tx_queue_len(self, len: u32) -> Self {
        self.with(LinkAttribute::TxQueueLen(len))
    }

    /// Creates the link and returns the kernel's description of it
    /// (NLM_F_ECHO, Linux ≥ 6.2; `None` on kernels that do not echo, then
    /// the caller looks it up).
    pub fn execute(self) -> Result<Option<LinkMessage>, NetlinkError> {
        let flags = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO;
        let replies = self
            .rtnl
            .request(RouteNetlinkMessage::NewLink(self.msg), flags)?;
        Ok(replies.into_iter().find_map(new_link))
    }
}

/// RTM_SETLINK, acknowledged, built by [`Rtnl::link_set`] or
/// [`Rtnl::link_set_by_name`]: only what the builder names changes
/// (`rtnl.link_set(7).up().execute()`).
#[must_use = "a request does nothing until executed"]
#[derive(Debug)]
pub struct LinkSet<'s> {
    rtnl: &'s Rtnl,
    msg: LinkMessage,
}

impl LinkSet<'_> {
    fn with(mut self, attr: LinkAttribute) -> Self {
        self.msg.attributes.push(attr);
        self
    }

    fn flag(mut self, flag: LinkFlags, on: bool) -> Self {
        self.msg.header.change_mask |= flag;
        if on {
            self.msg.header.flags |= flag;
        } else {
            self.msg.header.flags.remove(flag);
        }
        self
    }

    /// Sets the link up (IFF_UP).
    pub fn up(self) -> Self {
        self.flag(LinkFlags::Up, true)
    }

    /// Sets the link down.
    pub fn down(self) -> Self {
        self.flag(LinkFlags::Up, false)
    }

    /// Turns promiscuous mode (IFF_PROMISC) on or off.
    pub fn promisc(self, on: bool) -> Self {
        self.flag(LinkFlags::Promisc, on)
    }

    /// Turns all-multicast mode (IFF_ALLMULTI) on or off.
    pub fn allmulti(self, on: bool) -> Self {
        self.flag(LinkFlags::Allmulti, on)
    }

    /// Sets the hardware address.
    pub fn address(mut self, mac: &[u8]) -> Self {
        self.msg
            .attributes
            .push(LinkAttribute::Address(mac.to_vec()));
        self
    }

    /// Renames the link (IFLA_IFNAME; no unregistration, the ifindex stays).
    pub fn rename(self, name: &str) -> Self {
        self.with(LinkAttribute::IfName(name.to_string()))
    }

    /// Moves the link to link group `group` (IFLA_GROUP; 0 is the default).
    pub fn group(self, group: u32) -> Self {
        self.with(LinkAttribute::Group(group))
    }

    /// Sets the MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.msg.attributes.push(LinkAttribute::Mtu(mtu));
        self
    }

    /// Sets the transmit queue length.
    pub fn tx_queue_len(mut self, len: u32) -> Self {
        self.msg.attributes.push(LinkAttribute::TxQueueLen(len));
        self
    }

    /// Sets the alias (IFLA_IFALIAS; the kernel ignores it in the
    /// RTM_NEWLINK that creates a link, so it is always a change).
    pub fn alias(self, alias: &str) -> Self {
        self.with(LinkAttribute::IfAlias(alias.to_string()))
    }

    /// Sends the change and waits for the kernel's ack.
    pub fn execute(self) -> Result<(), NetlinkError> {
        self.rtnl
            .request(RouteNetlinkMessage::SetLink(self.msg), NLM_F_ACK)
            .map(drop)
    }
}

fn new_link(m: RouteNetlinkMessage) -> Option<LinkMessage> {
    match m {
        RouteNetlinkMessage::NewLink(l) => Some(l),
        _ => None,
    }
}
