//! The only module of this plugin that touches the kernel: reads and sets the
//! state of `lo` in a container netns through one blocking rtnetlink socket
//! (`cni::rtnl`, cni's link and address verbs) opened inside that netns. Knows nothing of CNI results or
//! versions.

use std::net::IpAddr;
use std::path::Path;

use cni::netns::NetnsError;
use cni::rtnl::{Rtnl, RtnlError};
use cni::types::Cidr;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::LinkFlags;

/// What `lo` looks like right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoState {
    pub index: u32,
    pub up: bool,
    /// Every address on `lo`, in the kernel's order.
    pub addresses: Vec<Cidr>,
}

/// A failure talking to the kernel, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum LoError {
    #[error("{}", describe_open(.0))]
    Open(#[from] RtnlError),
    #[error("looking up lo in {netns}: {reason}")]
    Lookup { netns: String, reason: String },
    #[error("no lo interface in {netns}")]
    Missing { netns: String },
    #[error("listing the addresses of lo (ifindex {index}) in {netns}: {reason}")]
    Addresses {
        netns: String,
        index: u32,
        reason: String,
    },
    #[error("setting lo (ifindex {index}) {state} in {netns}: {reason}")]
    Set {
        netns: String,
        index: u32,
        state: &'static str,
        reason: String,
    },
}

impl LoError {
    /// The netns itself is gone (DEL treats that as done).
    pub fn is_netns_gone(&self) -> bool {
        matches!(self, LoError::Open(e) if e.is_netns_missing() || is_not_a_netns(e))
    }
}

fn is_not_a_netns(e: &RtnlError) -> bool {
    matches!(e, RtnlError::Netns(NetnsError::NotANamespace { .. }))
}

/// Opening the socket: a netns error reads as itself, a socket error says
/// what failed.
fn describe_open(e: &RtnlError) -> String {
    match e {
        RtnlError::Io(io) => format!("opening a netlink socket: {io}"),
        e => e.to_string(),
    }
}

/// `lo` of one netns.
pub struct Loopback {
    rtnl: Rtnl,
    netns: String,
}

impl Loopback {
    /// Opens a netlink socket inside `netns`.
    pub fn open(netns: &Path) -> Result<Loopback, LoError> {
        Ok(Loopback {
            rtnl: Rtnl::open_in(netns)?,
            netns: netns.display().to_string(),
        })
    }

    /// The current flags and addresses of `lo`.
    pub fn state(&self) -> Result<LoState, LoError> {
        let link = self
            .rtnl
            .link_by_name("lo")
            .map_err(|e| LoError::Lookup {
                netns: self.netns.clone(),
                reason: e.to_string(),
            })?
            .ok_or_else(|| LoError::Missing {
                netns: self.netns.clone(),
            })?;
        let index = link.header.index;
        let up = link.header.flags.contains(LinkFlags::Up);
        let messages = self.rtnl.addresses(index).map_err(|e| LoError::Addresses {
            netns: self.netns.clone(),
            index,
            reason: e.to_string(),
        })?;
        let addresses = messages
            .iter()
            .filter_map(|a| Cidr::new(address_of(&a.attributes)?, a.header.prefix_len))
            .collect();
        Ok(LoState {
            index,
            up,
            addresses,
        })
    }

    /// Sets `lo` up or down (idempotent): one acknowledged RTM_SETLINK
    /// that changes only IFF_UP.
    pub fn set_up(&self, index: u32, up: bool) -> Result<(), LoError> {
        let set = self.rtnl.link_set(index);
        let set = if up { set.up() } else { set.down() };
        set.execute().map_err(|e| LoError::Set {
            netns: self.netns.clone(),
            index,
            state: if up { "up" } else { "down" },
            reason: e.to_string(),
        })
    }
}

/// IFA_LOCAL for IPv4 (the interface's own address), else IFA_ADDRESS.
fn address_of(attributes: &[AddressAttribute]) -> Option<IpAddr> {
    let local = attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    local.or_else(|| {
        attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })
}
