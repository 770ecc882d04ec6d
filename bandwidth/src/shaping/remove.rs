//! DEL and GC: removing everything an owner has in the host netns, found
//! from the owner alone (the IFB's name and alias; the veth from the pod
//! netns when it still exists, else the name the alias recorded). Keeps
//! going past errors and returns them all; missing objects are fine, and
//! anything not carrying our owner tag is never touched.
//!
//! Deleting an IFB makes the kernel unregister it synchronously (30–40 ms
//! here, most of a DEL). DEL instead renames it to its retired name
//! ([`retired_ifb_name`]; the redirect to it is gone by then, so it carries
//! no traffic) and deletes it in a detached child
//! ([`cni::netlink::Socket::in_detached_child`]) after the plugin replied:
//! the live name is free for a re-ADD at once, and a retired IFB that a
//! killed DEL left is deleted by the next DEL of that owner or by any GC of
//! its network. GC deletes synchronously.
//!
//! A retired IFB also joins link group [`RETIRED_GROUP`]; the child deletes
//! the whole group in one request when every link in it is a retired IFB
//! of ours. The kernel unregisters a group as one batch: 20 IFBs deleted
//! one by one took 452 ms here (a wait for RCU each, holding the rtnl lock
//! that every link change of the node waits for), as a group 21 ms. So when
//! a node's pods are deleted together, the IFBs whose DELs retired them
//! meanwhile go in one unregistration rather than one after another.

use netlink_packet_route::link::{InfoKind, LinkMessage};
use netlink_packet_route::tc::{TcHandle, TcMessage};

use cni::args::Owner;
use cni::rtnl::{link_alias, link_group, link_kind, link_name};
use cni::rtnl::{Rtnl, RtnlError, EINVAL, ENODEV};
use cni::types::Attachment;

use super::{our_ifb, unlabelled_ifb, unless_gone, Host, HostVeth, ROOT_KINDS};
use crate::error::TcError;
use crate::plan::{
    ifb_name, retired_ifb_name, IfbAlias, ETH_P_ALL, REDIRECT_PRIO, RETIRED_GROUP, RETIRED_PREFIX,
    ROOT_HANDLE,
};
use crate::tc;
use crate::tc_raw::{self, tc_handle, INGRESS_HOOK};

/// When the IFBs of a teardown are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Teardown {
    /// Renamed to the retired name now, deleted by a detached child (DEL).
    Background,
    /// Deleted before returning (GC).
    Now,
}

/// The detached child's work: deletes the retired IFBs `doomed` (ifindexes),
/// with every other retired IFB of [`RETIRED_GROUP`] in the same batch when
/// the group holds nothing but retired IFBs of ours; one by one otherwise
/// (a link someone else put in the group is never deleted).
fn delete_retired(nl: &Rtnl, doomed: &[u32]) {
    let only_ours = nl.links().is_ok_and(|links| {
        links
            .iter()
            .filter(|l| link_group(l) == Some(RETIRED_GROUP))
            .all(is_retired_ifb)
    });
    if only_ours && nl.link_del_group(RETIRED_GROUP).is_ok() {
        return;
    }
    for &index in doomed {
        let _ = nl.link_del(index);
    }
}

/// An IFB named as retired whose alias names the owner that name is for.
fn is_retired_ifb(link: &LinkMessage) -> bool {
    let alias = link_alias(link).and_then(IfbAlias::parse);
    link_kind(link) == Some(InfoKind::Ifb)
        && alias.is_some_and(|a| link_name(link) == Some(retired_ifb_name(&a.owner).as_str()))
}

impl Host {
    /// Removes everything `owner` has in this netns: our redirect filter (and
    /// the ingress qdisc if we created it and nothing else uses it) and our
    /// root qdisc on the host veth, then the IFB (in the background, see the
    /// module doc). `veth` comes from the pod netns when it still exists;
    /// otherwise the IFB's alias names it. Keeps going past errors and
    /// returns them all; missing objects are fine.
    pub fn remove(&self, owner: &Owner, veth: Option<&HostVeth>) -> Vec<TcError> {
        self.remove_with(owner, veth, Teardown::Background)
    }

    fn remove_with(&self, owner: &Owner, veth: Option<&HostVeth>, mode: Teardown) -> Vec<TcError> {
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
        let retired_name = retired_ifb_name(owner);
        let retired = match self.link(&retired_name) {
            Ok(l) => l
                .filter(|l| our_ifb(l, &retired_name, owner).is_some())
                .map(|l| l.header.index),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let mut doomed: Vec<u32> = retired.into_iter().collect();
        if let Some(index) = ifb_index {
            match mode {
                Teardown::Background if retired.is_none() && self.retire(index, &retired_name) => {
                    doomed.push(index)
                }
                _ => self.delete_ifb(&name, index, &mut errors),
            }
        }
        match mode {
            Teardown::Background if !doomed.is_empty() => {
                self.nl.in_detached_child(|nl| delete_retired(nl, &doomed))
            }
            _ => {
                for index in doomed {
                    self.delete_ifb(&retired_name, index, &mut errors);
                }
            }
        }
        errors
    }

    /// Renames the IFB with ifindex `index` to `retired` and moves it to
    /// [`RETIRED_GROUP`] (one RTM_SETLINK; no unregistration). False when
    /// the kernel refused (e.g. a kernel that renames only links that are
    /// down): the caller deletes it at once.
    fn retire(&self, index: u32, retired: &str) -> bool {
        self.nl
            .link_set(index)
            .rename(retired)
            .group(RETIRED_GROUP)
            .execute()
            .is_ok()
    }

    /// GC: removes IFBs of `network` whose owner is not a valid attachment.
    pub fn gc(&self, network: &str, valid: &[Attachment]) -> Vec<TcError> {
        let links = match self.nl.links() {
            Ok(l) => l,
            Err(e) => return vec![TcError::netlink("listing links for GC")(e)],
        };
        let mut errors = Vec::new();
        for link in links {
            let Some(alias) = link_alias(&link).and_then(IfbAlias::parse) else {
                continue;
            };
            if alias.owner.network != network || link_kind(&link) != Some(InfoKind::Ifb) {
                continue;
            }
            // A retired IFB (a killed DEL's) goes whoever its owner is.
            if let Some(name) = link_name(&link).filter(|n| n.starts_with(RETIRED_PREFIX)) {
                if name == retired_ifb_name(&alias.owner) {
                    self.delete_ifb(name, link.header.index, &mut errors);
                }
                continue;
            }
            let keep = valid.iter().any(|a| {
                a.container_id == alias.owner.container_id && a.ifname == alias.owner.ifname
            });
            if !keep {
                errors.extend(self.remove_with(&alias.owner, None, Teardown::Now));
            }
        }
        errors
    }

    /// Deletes the IFB with ifindex `index`; already gone is fine.
    pub(super) fn delete_ifb(&self, name: &str, index: u32, errors: &mut Vec<TcError>) {
        match self.nl.link_del(index) {
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
        // Our root (handle 1:, a tbf or an htb) goes by a delete the kernel
        // refuses (EINVAL) for any other root: no dump of the host's qdiscs
        // (it walks every device's, two or three per shaped pod: 1000 shaped
        // pods made a DEL 8 times slower). The first kind not refused is the
        // answer; refused for both, the root is not ours.
        let refused = |r: &Result<(), RtnlError>| matches!(r, Err(e) if e.errno() == Some(EINVAL));
        let deleted = ROOT_KINDS
            .iter()
            .map(|kind| {
                let ours = tc_handle(ROOT_HANDLE);
                tc::del_qdisc_if(&self.nl, v.index, TcHandle::ROOT, ours, kind)
            })
            .find(|r| !refused(r))
            .unwrap_or(Ok(()));
        unless_gone(
            deleted,
            format!("deleting the root qdisc on {on}"),
            &mut errors,
        );
        errors
    }
}
