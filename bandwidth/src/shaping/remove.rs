//! DEL and GC: removing everything an owner has in the host netns, found
//! from the owner alone (the IFB's name and alias; the veth from the pod
//! netns when it still exists, else the name the alias recorded). Keeps
//! going past errors and returns them all; missing objects are fine, and
//! anything not carrying our owner tag is never touched.

use netlink_packet_route::link::InfoKind;
use netlink_packet_route::tc::{TcHandle, TcMessage};

use cni::args::Owner;
use cni::rtnl::ENODEV;
use cni::types::Attachment;

use super::{is_our_root, our_ifb, unlabelled_ifb, unless_gone, Host, HostVeth};
use crate::error::TcError;
use crate::link;
use crate::plan::{ifb_name, IfbAlias, ETH_P_ALL, REDIRECT_PRIO};
use crate::tc;
use crate::tc_raw::{self, INGRESS_HOOK};

impl Host {
    /// Removes everything `owner` has in this netns: our redirect filter (and
    /// the ingress qdisc if we created it and nothing else uses it) and our
    /// root qdisc on the host veth, then the IFB. `veth` comes from the pod
    /// netns when it still exists; otherwise the IFB's alias names it.
    /// Keeps going past errors and returns them all; missing objects are fine.
    pub fn remove(&self, owner: &Owner, veth: Option<&HostVeth>) -> Vec<TcError> {
        let mut errors = Vec::new();
        let name = ifb_name(owner);
        let ifb = self.link(&name).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        if let Some(l) = ifb.as_ref().filter(|l| unlabelled_ifb(l, &name)) {
            self.delete_ifb(&name, l.header.index, &mut errors);
        }
        // A link with our IFB's name that is not an IFB carrying our owner
        // tag is someone else's: never touched, and nothing of ours.
        let (ifb, alias) = match ifb.and_then(|l| our_ifb(&l, &name, owner).map(|a| (l, a))) {
            Some((l, a)) => (Some(l), Some(a)),
            None => (None, None),
        };
        let ifb_index = ifb.as_ref().map(|l| l.header.index);
        let veth: Option<HostVeth> = match (veth, &alias) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(a)) if !a.host_veth.is_empty() => {
                match self.host_veth_by_name(&a.host_veth) {
                    // A veth by that name must still redirect to our IFB to be ours.
                    Ok(Some(v)) if self.redirects_to(&v, ifb_index) => Some(v),
                    Ok(_) => None,
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                }
            }
            _ => None,
        };
        if let Some(v) = &veth {
            errors.extend(self.remove_from_veth(v, alias.as_ref()));
        }
        if let Some(index) = ifb_index {
            self.delete_ifb(&name, index, &mut errors);
        }
        errors
    }

    /// GC: removes IFBs of `network` whose owner is not a valid attachment.
    pub fn gc(&self, network: &str, valid: &[Attachment]) -> Vec<TcError> {
        let links = match self.nl.links() {
            Ok(l) => l,
            Err(e) => return vec![TcError::netlink("listing links for GC")(e)],
        };
        let mut errors = Vec::new();
        for link in links {
            let Some(alias) = link::alias(&link).and_then(|a| IfbAlias::parse(&a)) else {
                continue;
            };
            if alias.owner.network != network || link::kind(&link) != Some(InfoKind::Ifb) {
                continue;
            }
            let keep = valid.iter().any(|a| {
                a.container_id == alias.owner.container_id && a.ifname == alias.owner.ifname
            });
            if !keep {
                errors.extend(self.remove(&alias.owner, None));
            }
        }
        errors
    }

    /// Deletes the IFB with ifindex `index`; already gone is fine.
    pub(super) fn delete_ifb(&self, name: &str, index: u32, errors: &mut Vec<TcError>) {
        match link::delete(&self.nl, index) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(ENODEV) => {}
            Err(e) => errors.push(TcError::netlink(format!(
                "deleting ifb {name} (ifindex {index})"
            ))(e)),
        }
    }

    fn redirects_to(&self, veth: &HostVeth, ifb_index: Option<u32>) -> bool {
        let Some(ifb_index) = ifb_index else {
            return false;
        };
        self.our_redirect_filters(veth)
            .unwrap_or_default()
            .iter()
            .any(|f| tc_raw::redirect_target(f) == Some(ifb_index))
    }

    /// The filters at our redirect priority on the veth's ingress hook (none
    /// when the veth or its ingress qdisc is gone).
    pub(super) fn our_redirect_filters(&self, veth: &HostVeth) -> Result<Vec<TcMessage>, TcError> {
        let what = || format!("listing ingress filters of host veth {}", veth.name);
        match tc::filters(&self.nl, veth.index, INGRESS_HOOK)
            .map_err(|e| TcError::netlink(what())(e))
        {
            Ok(fs) => Ok(fs
                .into_iter()
                .filter(|f| tc_raw::filter_prio_protocol(f).0 == REDIRECT_PRIO)
                .collect()),
            Err(e) if e.is_gone() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the ingress qdisc we created on a veth once no filter is left
    /// on it (someone else's filter keeps it); "gone" is success.
    pub(super) fn remove_ingress_qdisc_if_unused(
        &self,
        ifindex: u32,
        on: &str,
        errors: &mut Vec<TcError>,
    ) {
        match tc::filters(&self.nl, ifindex, INGRESS_HOOK) {
            Ok(rest) if rest.is_empty() => {
                let deleted = tc::del_qdisc(&self.nl, ifindex, TcHandle::INGRESS);
                unless_gone(
                    deleted,
                    format!("deleting the ingress qdisc on {on}"),
                    errors,
                );
            }
            Ok(_) => {}
            Err(e) => unless_gone(Err(e), format!("listing ingress filters of {on}"), errors),
        }
    }

    fn remove_from_veth(&self, v: &HostVeth, alias: Option<&IfbAlias>) -> Vec<TcError> {
        let mut errors = Vec::new();
        let on = format!("host veth {} (ifindex {})", v.name, v.index);
        let deleted = tc::del_filters(&self.nl, v.index, INGRESS_HOOK, REDIRECT_PRIO, ETH_P_ALL);
        unless_gone(
            deleted,
            format!("deleting the redirect filter on {on}"),
            &mut errors,
        );
        if alias.is_some_and(|a| a.created_ingress_qdisc) {
            self.remove_ingress_qdisc_if_unused(v.index, &on, &mut errors);
        }
        match tc::qdiscs(&self.nl, v.index) {
            Ok(qs) if qs.iter().any(is_our_root) => {
                let deleted = tc::del_qdisc(&self.nl, v.index, TcHandle::ROOT);
                unless_gone(
                    deleted,
                    format!("deleting the root qdisc on {on}"),
                    &mut errors,
                );
            }
            Ok(_) => {}
            Err(e) => unless_gone(Err(e), format!("listing qdiscs of {on}"), &mut errors),
        }
        errors
    }
}
