//! Finding the host end of the pod's veth: from the container interface in
//! the pod netns (ADD, CHECK, DEL with a netns), or by the name an IFB's
//! alias recorded (DEL/GC without one).

use std::path::Path;

use netlink_packet_route::link::InfoKind;

use cni::rtnl::Rtnl;
use cni::rtnl::{link_kind, link_peer};

use super::{Host, HostVeth};
use crate::error::TcError;

impl Host {
    /// Finds the host end of `ifname`'s veth in `netns`: IFLA_LINK inside the
    /// netns gives the peer's index, which must be a veth here whose own
    /// peer is the container interface. The socket in the pod netns lives
    /// for that one lookup.
    pub fn find_host_veth(&self, netns: &Path, ifname: &str) -> Result<HostVeth, TcError> {
        let inner = {
            let pod = Rtnl::open_in(netns).map_err(TcError::netlink(format!(
                "opening netns {}",
                netns.display()
            )))?;
            pod.link_by_name(ifname)
                .map_err(TcError::netlink(format!(
                    "looking up {ifname} in netns {}",
                    netns.display()
                )))?
                .ok_or_else(|| TcError::NoContainerInterface {
                    ifname: ifname.to_string(),
                    netns: netns.display().to_string(),
                })?
        };
        match link_kind(&inner) {
            Some(InfoKind::Veth) => {}
            other => {
                return Err(TcError::NotAVeth {
                    ifname: ifname.to_string(),
                    kind: other.map_or("unknown".to_string(), |k| format!("{k:?}").to_lowercase()),
                })
            }
        }
        let peer = link_peer(&inner)
            .filter(|p| *p > 0)
            .ok_or_else(|| TcError::NoVethPeer {
                ifname: ifname.to_string(),
            })?;
        let host = self
            .nl
            .link_by_index(peer)
            .map_err(TcError::netlink(format!(
                "looking up veth peer index {peer}"
            )))?
            .filter(|h| {
                link_kind(h) == Some(InfoKind::Veth) && link_peer(h) == Some(inner.header.index)
            })
            .ok_or_else(|| TcError::PeerNotInHost {
                ifname: ifname.to_string(),
                peer,
            })?;
        Ok(HostVeth::from_link(&host))
    }

    /// The host veth by name (DEL/GC without a netns).
    pub(super) fn host_veth_by_name(&self, name: &str) -> Result<Option<HostVeth>, TcError> {
        Ok(self.link(name)?.map(|l| HostVeth {
            name: name.to_string(),
            ..HostVeth::from_link(&l)
        }))
    }
}
