//! The only module of this plugin that touches the kernel: reads and sets the
//! state of `lo` in a container netns through one rtnetlink session opened
//! inside that netns. Knows nothing of CNI results or versions.

use std::net::IpAddr;
use std::path::Path;

use cni::netlink::{describe, NetlinkSession};
use cni::types::Cidr;
use futures_util::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::LinkFlags;
use rtnetlink::LinkUnspec;

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
    #[error(transparent)]
    Open(#[from] cni::netlink::NetlinkError),
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

fn is_not_a_netns(e: &cni::netlink::NetlinkError) -> bool {
    matches!(
        e,
        cni::netlink::NetlinkError::Netns(cni::netns::NetnsError::NotANamespace { .. })
    )
}

/// `lo` of one netns.
pub struct Loopback {
    session: NetlinkSession,
    netns: String,
}

impl Loopback {
    /// Opens a netlink session inside `netns`.
    pub fn open(netns: &Path) -> Result<Loopback, LoError> {
        Ok(Loopback {
            session: NetlinkSession::open(Some(netns))?,
            netns: netns.display().to_string(),
        })
    }

    /// The current flags and addresses of `lo`.
    pub fn state(&self) -> Result<LoState, LoError> {
        let link = self
            .session
            .link_by_name("lo")
            .map_err(|e| LoError::Lookup {
                netns: self.netns.clone(),
                reason: describe(&e),
            })?
            .ok_or_else(|| LoError::Missing {
                netns: self.netns.clone(),
            })?;
        let index = link.header.index;
        let up = link.header.flags.contains(LinkFlags::Up);
        let request = self
            .session
            .handle()
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let messages: Vec<_> =
            self.session
                .block_on(request.try_collect())
                .map_err(|e| LoError::Addresses {
                    netns: self.netns.clone(),
                    index,
                    reason: describe(&e),
                })?;
        let addresses = messages
            .iter()
            .filter_map(|m| {
                let ip = address_of(&m.attributes)?;
                Cidr::new(ip, m.header.prefix_len)
            })
            .collect();
        Ok(LoState {
            index,
            up,
            addresses,
        })
    }

    /// Sets `lo` up or down (idempotent).
    pub fn set_up(&self, index: u32, up: bool) -> Result<(), LoError> {
        let builder = LinkUnspec::new_with_index(index);
        let message = if up { builder.up() } else { builder.down() }.build();
        let request = self.session.handle().link().set(message).execute();
        self.session.block_on(request).map_err(|e| LoError::Set {
            netns: self.netns.clone(),
            index,
            state: if up { "up" } else { "down" },
            reason: describe(&e),
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
