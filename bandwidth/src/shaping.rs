//! The only module that changes the kernel: finds the host end of the pod's
//! veth, and applies, verifies and removes a [`ShapingPlan`] in the host
//! netns (the netns the plugin runs in) through one blocking rtnetlink socket
//! (`cni::rtnl`; the pod netns gets a socket only for the one lookup of the
//! container interface). Link messages are built here, tc messages in
//! `tc_raw`. It never decides *what* to shape (that is `plan`) and never
//! reads stdin or the environment.

use std::path::Path;

use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::tc::{
    TcActionAttribute, TcActionMirrorOption, TcActionOption, TcAttribute, TcFilterU32Option,
    TcHandle, TcMessage, TcOption, TcU32Key,
};

use cni::args::Owner;
use cni::rtnl::{link_mac, link_name, ENODEV, ENOENT};
use cni::rtnl::{Rtnl, RtnlError};
use cni::types::Attachment;
use cni::CniError;

use crate::failpoint;
use crate::plan::{
    ifb_name, Device, IfbAlias, Shaper, ShapingPlan, SubnetSplit, TcId, ROOT_HANDLE,
};
use crate::tc_raw::{self, tc_handle, INGRESS_HOOK};

/// The host end of the pod's veth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVeth {
    pub name: String,
    pub index: u32,
    pub mtu: u32,
    /// The kind of its root qdisc (IFLA_QDISC), when the kernel said.
    pub qdisc: Option<String>,
}

fn host_veth(link: &LinkMessage) -> HostVeth {
    HostVeth {
        name: link_name(link).unwrap_or_default().to_string(),
        index: link.header.index,
        mtu: link_mtu(link),
        qdisc: attr(link, |a| match a {
            LinkAttribute::Qdisc(q) => Some(q.clone()),
            _ => None,
        }),
    }
}

/// The IFB ADD created, for the result's `interfaces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedIfb {
    pub name: String,
    pub mac: Option<String>,
}

fn internal(msg: String) -> CniError {
    CniError::internal(format!("bandwidth: {msg}"))
}

/// `bandwidth: <what>: <errno text>`
fn nl(what: impl std::fmt::Display) -> impl FnOnce(RtnlError) -> CniError {
    move |e| internal(format!("{what}: {e}"))
}

/// Like [`nl`], keeping the kernel's errno for the caller to judge.
fn failed(what: impl std::fmt::Display) -> impl FnOnce(RtnlError) -> (CniError, Option<i32>) {
    move |e| {
        let errno = e.errno();
        (nl(what)(e), errno)
    }
}

fn is_gone(e: &RtnlError) -> bool {
    matches!(e.errno(), Some(ENODEV) | Some(ENOENT) | Some(libc::EINVAL))
}

fn attr<T>(msg: &LinkMessage, f: impl Fn(&LinkAttribute) -> Option<T>) -> Option<T> {
    msg.attributes.iter().find_map(f)
}

fn link_kind(msg: &LinkMessage) -> Option<InfoKind> {
    attr(msg, |a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k.clone()),
            _ => None,
        }),
        _ => None,
    })
}

fn link_peer(msg: &LinkMessage) -> Option<u32> {
    attr(msg, |a| match a {
        LinkAttribute::Link(i) => Some(*i),
        _ => None,
    })
}

fn link_mtu(msg: &LinkMessage) -> u32 {
    attr(msg, |a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
    .unwrap_or(1500)
}

fn link_alias(msg: &LinkMessage) -> Option<String> {
    attr(msg, |a| match a {
        LinkAttribute::IfAlias(s) => Some(s.clone()),
        _ => None,
    })
}

/// The ifindex a u32 filter's mirred action redirects to.
pub fn redirect_target(filter: &TcMessage) -> Option<u32> {
    filter.attributes.iter().find_map(|a| match a {
        TcAttribute::Options(opts) => opts.iter().find_map(|o| match o {
            TcOption::U32(TcFilterU32Option::Action(actions)) => actions.iter().find_map(|act| {
                act.attributes.iter().find_map(|aa| match aa {
                    TcActionAttribute::Options(aopts) => aopts.iter().find_map(|ao| match ao {
                        TcActionOption::Mirror(TcActionMirrorOption::Parms(m)) => Some(m.ifindex),
                        _ => None,
                    }),
                    _ => None,
                })
            }),
            _ => None,
        }),
        _ => None,
    })
}

/// The owner record of `link` when it is ours: an IFB named `name` whose
/// alias names `owner`. Anything else holding that name is someone else's.
fn our_ifb(link: &LinkMessage, name: &str, owner: &Owner) -> Option<IfbAlias> {
    if link_kind(link) != Some(InfoKind::Ifb) || link_name(link) != Some(name) {
        return None;
    }
    link_alias(link)
        .and_then(|a| IfbAlias::parse(&a))
        .filter(|a| &a.owner == owner)
}

fn kind_name(link: &LinkMessage) -> String {
    link_kind(link).map_or("unknown kind".to_string(), |k| {
        format!("{k:?}").to_lowercase()
    })
}

/// A root qdisc bandwidth creates (`1:` tbf or htb); ADD replaces it and
/// DEL removes it.
fn is_our_root(q: &TcMessage) -> bool {
    q.header.parent == TcHandle::ROOT
        && q.header.handle == tc_handle(ROOT_HANDLE)
        && matches!(tc_raw::kind(q), Some("tbf") | Some("htb"))
}

/// A root qdisc someone else configured on the veth is an error, not
/// something to overwrite. Kernel defaults (handle 0:) are replaced.
fn refuse_foreign_root(veth: &HostVeth, qdiscs: &[TcMessage]) -> Result<(), CniError> {
    if let Some(q) = qdiscs
        .iter()
        .find(|q| q.header.parent == TcHandle::ROOT && q.header.handle.major != 0)
    {
        return Err(internal(format!(
            "host veth {} already has a root qdisc {} {:x}: that bandwidth did not create; \
             remove it or drop ingressRate",
            veth.name,
            tc_raw::kind(q).unwrap_or("?"),
            q.header.handle.major
        )));
    }
    Ok(())
}

/// What an ADD created so far, for undoing it when a later step fails.
#[derive(Debug, Default)]
struct Created {
    /// The root qdisc on the host veth.
    root_qdisc: bool,
    /// The ingress qdisc on the host veth.
    ingress_qdisc: bool,
    /// The IFB's name and, once known, its ifindex.
    ifb: Option<(String, Option<u32>)>,
    /// Created exclusively without reading the kernel first.
    fast: bool,
    /// A fast ADD met something already there (EEXIST).
    conflict: bool,
}

/// A netlink socket in the host netns (where the plugin runs).
pub struct Host {
    nl: Rtnl,
}

/// The root qdisc a link reports (IFLA_QDISC) when nothing was attached:
/// `noop` while it was never up, `noqueue` for a veth once up. Both are
/// kernel defaults with handle 0.
fn default_root(kind: Option<&str>) -> bool {
    matches!(kind, Some("noqueue") | Some("noop"))
}

impl Host {
    pub fn open() -> Result<Host, CniError> {
        let nl = Rtnl::open()
            .map_err(|e| internal(format!("opening netlink in the host netns: {e}")))?;
        Ok(Host { nl })
    }

    /// A cheap request proving tc/netlink is usable (STATUS).
    pub fn probe(&self) -> Result<(), CniError> {
        self.nl
            .link_by_name("lo")
            .map(drop)
            .map_err(nl("netlink is not usable (looking up lo)"))
    }

    fn link(&self, name: &str) -> Result<Option<LinkMessage>, CniError> {
        self.nl
            .link_by_name(name)
            .map_err(nl(format!("looking up link {name}")))
    }

    /// Finds the host end of `ifname`'s veth in `netns`: IFLA_LINK inside the
    /// netns gives the peer's index, which must be a veth here whose own
    /// peer is the container interface. The socket in the pod netns lives
    /// for that one lookup.
    pub fn find_host_veth(&self, netns: &Path, ifname: &str) -> Result<HostVeth, CniError> {
        let inner = {
            let pod = Rtnl::open_in(netns)
                .map_err(|e| internal(format!("opening netns {}: {e}", netns.display())))?;
            pod.link_by_name(ifname)
                .map_err(nl(format!(
                    "looking up {ifname} in netns {}",
                    netns.display()
                )))?
                .ok_or_else(|| {
                    internal(format!(
                        "container interface {ifname} not found in netns {}",
                        netns.display()
                    ))
                })?
        };
        match link_kind(&inner) {
            Some(InfoKind::Veth) => {}
            other => {
                let kind = other.map_or("unknown".to_string(), |k| format!("{k:?}").to_lowercase());
                return Err(internal(format!(
                    "container interface {ifname} has no veth peer: it is a {kind} link; \
                     bandwidth shapes the host end of a veth pair (use it after ptp or bridge)"
                )));
            }
        }
        let peer = link_peer(&inner).filter(|p| *p > 0).ok_or_else(|| {
            internal(format!(
                "container interface {ifname} has no veth peer (no IFLA_LINK)"
            ))
        })?;
        let host = self
            .nl
            .link_by_index(peer)
            .map_err(nl(format!("looking up veth peer index {peer}")))?
            .filter(|h| {
                link_kind(h) == Some(InfoKind::Veth) && link_peer(h) == Some(inner.header.index)
            })
            .ok_or_else(|| {
                internal(format!(
                    "veth peer with index {peer} of container interface {ifname} is not in host ns"
                ))
            })?;
        Ok(host_veth(&host))
    }

    /// The host veth by name (DEL/GC without a netns).
    fn host_veth_by_name(&self, name: &str) -> Result<Option<HostVeth>, CniError> {
        Ok(self.link(name)?.map(|l| HostVeth {
            name: name.to_string(),
            ..host_veth(&l)
        }))
    }

    /// Applies the plan. Removes whatever an earlier ADD of this owner left
    /// first (so re-ADD replaces), and undoes exactly what it created when
    /// a step fails part-way.
    ///
    /// A first ADD that shapes traffic from the pod on a veth with the
    /// kernel's default root qdisc (IFLA_QDISC of the veth lookup) reads
    /// nothing more: it creates exclusively, and anything already there (an
    /// earlier ADD's ingress qdisc or IFB, someone else's ingress/clsact
    /// qdisc, a link holding the IFB's name) answers EEXIST. Then it undoes
    /// what it created and takes the careful way: our IFB's name and one
    /// qdisc dump of the veth are read before creating anything, and the
    /// cleanup of an earlier ADD runs when they show something that may be
    /// ours. An ADD without an IFB always takes the careful way (only the
    /// dump shows an ingress qdisc an earlier ADD may have left).
    pub fn apply(
        &self,
        plan: &ShapingPlan,
        owner: &Owner,
        veth: &HostVeth,
    ) -> Result<Option<CreatedIfb>, CniError> {
        if plan.ifb.is_some() && plan.from_pod.is_some() && default_root(veth.qdisc.as_deref()) {
            let mut created = Created {
                fast: true,
                ..Created::default()
            };
            match self.apply_fresh(plan, owner, veth, &[], &mut created) {
                Ok(ifb) => return Ok(ifb),
                Err(e) => {
                    let e = self.undone(e, &created, veth)?;
                    if !created.conflict {
                        return Err(e);
                    }
                }
            }
        }
        let name = ifb_name(owner);
        let existing = self.link(&name)?;
        let ours = existing
            .as_ref()
            .is_some_and(|l| our_ifb(l, &name, owner).is_some());
        if let (Some(link), false, true) = (&existing, ours, plan.ifb.is_some()) {
            return Err(internal(format!(
                "cannot create ifb {name}: the name is taken by link {} (ifindex {}, {}, alias {:?}) \
                 that bandwidth does not own for {}; it was left alone",
                link_name(link).unwrap_or("?"),
                link.header.index,
                kind_name(link),
                link_alias(link).unwrap_or_default(),
                owner.tag()
            )));
        }
        let what = format!("host veth {}", veth.name);
        let mut qdiscs = self.qdiscs(veth.index, &what)?;
        let maybe_ours = qdiscs
            .iter()
            .any(|q| is_our_root(q) || q.header.parent == TcHandle::INGRESS);
        if ours || maybe_ours {
            let leftovers = self.remove(owner, Some(veth));
            if let Some(e) = leftovers.into_iter().next() {
                return Err(e.context("bandwidth: removing the shaping of an earlier ADD"));
            }
            qdiscs = self.qdiscs(veth.index, &what)?;
        }
        let mut created = Created::default();
        match self.apply_fresh(plan, owner, veth, &qdiscs, &mut created) {
            Ok(ifb) => Ok(ifb),
            Err(e) => Err(self.undone(e, &created, veth).unwrap_or_else(|e| e)),
        }
    }

    /// Undoes what a failed ADD created: `Ok(e)` when everything was
    /// undone, `Err` with `e` naming what could not be.
    fn undone(
        &self,
        mut e: CniError,
        created: &Created,
        veth: &HostVeth,
    ) -> Result<CniError, CniError> {
        let undo = self.undo(created, veth);
        if undo.is_empty() {
            return Ok(e);
        }
        let msgs: Vec<&str> = undo.iter().map(|u| u.msg.as_str()).collect();
        e.msg = format!(
            "{}; undoing the ADD also failed: {}",
            e.msg,
            msgs.join("; ")
        );
        Err(e)
    }

    /// Creates the plan's objects on a veth without any of ours, recording
    /// each in `created` as soon as it exists. With `created.fast`, `qdiscs`
    /// is not known (empty): an EEXIST from the root or ingress qdisc or the
    /// IFB sets `created.conflict` instead of being judged here.
    fn apply_fresh(
        &self,
        plan: &ShapingPlan,
        owner: &Owner,
        veth: &HostVeth,
        qdiscs: &[TcMessage],
        created: &mut Created,
    ) -> Result<Option<CreatedIfb>, CniError> {
        if let Some(shaper) = &plan.to_pod {
            refuse_foreign_root(veth, qdiscs)?;
            let mut root = false;
            let added = self.add_shaper(
                shaper,
                veth.index,
                &format!("host veth {}", veth.name),
                &mut root,
            );
            created.root_qdisc = root;
            if let Err((e, errno)) = added {
                created.conflict = created.fast && !root && errno == Some(libc::EEXIST);
                return Err(e);
            }
        }
        let (Some(shaper), Some(ifb)) = (&plan.from_pod, &plan.ifb) else {
            return Ok(None);
        };
        if !qdiscs.iter().any(|q| q.header.parent == TcHandle::INGRESS) {
            tc_raw::add_qdisc(&self.nl, tc_raw::ingress_message(veth.index)).map_err(|e| {
                created.conflict = created.fast && e.errno() == Some(libc::EEXIST);
                nl(format!(
                    "creating ingress qdisc on host veth {} (ifindex {})",
                    veth.name, veth.index
                ))(e)
            })?;
            created.ingress_qdisc = true;
        }
        let alias = IfbAlias {
            owner: owner.clone(),
            host_veth: veth.name.clone(),
            created_ingress_qdisc: created.ingress_qdisc,
        };
        let link = self.create_ifb(&ifb.name, veth.mtu, &alias, created)?;
        let ifb_index = link.header.index;
        self.add_shaper(shaper, ifb_index, &format!("ifb {}", ifb.name), &mut false)
            .map_err(|(e, _)| e)?;
        let mut up = LinkMessage::default();
        up.header.index = ifb_index;
        up.header.flags |= LinkFlags::Up;
        up.header.change_mask |= LinkFlags::Up;
        tc_raw::set_link(&self.nl, up).map_err(nl(format!("setting ifb {} up", ifb.name)))?;
        let redirect = tc_raw::redirect_message(
            veth.index,
            INGRESS_HOOK,
            ifb.redirect_prio,
            ifb.redirect_protocol,
            ifb_index,
        );
        tc_raw::add_filter(&self.nl, redirect).map_err(|e| {
            let hint = if e.errno() == Some(libc::EINVAL) {
                format!(
                    " (its ingress hook may already have a filter of another protocol at priority {})",
                    ifb.redirect_prio
                )
            } else {
                String::new()
            };
            internal(format!(
                "adding the u32 redirect filter on host veth {} (ifindex {}) to ifb {}: {e}{hint}",
                veth.name, veth.index, ifb.name,
            ))
        })?;
        Ok(Some(CreatedIfb {
            name: ifb.name.clone(),
            mac: link_mac(&link),
        }))
    }

    /// Creates the IFB, down (grafting a root qdisc on a down device skips
    /// the RCU grace period the kernel waits for on a running one), gets it
    /// back in the same round trip (NLM_F_ECHO), and records the owner in
    /// its alias before anything else can fail. (The kernel ignores
    /// IFLA_IFALIAS in the RTM_NEWLINK that creates a link, hence the
    /// separate RTM_SETLINK.)
    fn create_ifb(
        &self,
        name: &str,
        mtu: u32,
        alias: &IfbAlias,
        created: &mut Created,
    ) -> Result<LinkMessage, CniError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Ifb)]));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes.push(LinkAttribute::TxQueueLen(0));
        let echoed = tc_raw::add_link_echo(&self.nl, msg).map_err(|e| {
            created.conflict = created.fast && e.errno() == Some(libc::EEXIST);
            nl(format!("creating ifb {name}"))(e)
        })?;
        created.ifb = Some((name.to_string(), None));
        let link = match echoed.filter(|l| link_name(l) == Some(name)) {
            Some(l) => l,
            None => self
                .link(name)?
                .ok_or_else(|| internal(format!("ifb {name} vanished after creation")))?,
        };
        created.ifb = Some((name.to_string(), Some(link.header.index)));
        let mut set = LinkMessage::default();
        set.header.index = link.header.index;
        set.attributes.push(LinkAttribute::IfAlias(alias.render()));
        tc_raw::set_link(&self.nl, set)
            .map_err(nl(format!("recording the owner on ifb {name} (alias)")))?;
        Ok(link)
    }

    /// Deletes what a failed ADD created, newest first; returns what could
    /// not be deleted. An ingress qdisc we created stays when a filter that
    /// is not ours appeared on it meanwhile.
    fn undo(&self, created: &Created, veth: &HostVeth) -> Vec<CniError> {
        let mut errors = Vec::new();
        let on = format!("host veth {} (ifindex {})", veth.name, veth.index);
        if let Some((name, index)) = &created.ifb {
            let index = match index {
                Some(i) => Some(*i),
                None => match self.link(name) {
                    Ok(l) => l
                        .filter(|l| link_kind(l) == Some(InfoKind::Ifb))
                        .map(|l| l.header.index),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                },
            };
            if let Some(index) = index {
                match tc_raw::del_link(&self.nl, index) {
                    Ok(()) => {}
                    Err(e) if e.errno() == Some(ENODEV) => {}
                    Err(e) => errors.push(nl(format!("deleting ifb {name} (ifindex {index})"))(e)),
                }
            }
        }
        if created.ingress_qdisc {
            self.remove_ingress_qdisc_if_unused(veth.index, &on, &mut errors);
        }
        if created.root_qdisc {
            match tc_raw::del_qdisc(&self.nl, veth.index, TcHandle::ROOT) {
                Ok(()) => {}
                Err(e) if is_gone(&e) => {}
                Err(e) => errors.push(nl(format!("deleting the root qdisc on {on}"))(e)),
            }
        }
        errors
    }

    fn qdiscs(&self, ifindex: u32, what: &str) -> Result<Vec<TcMessage>, CniError> {
        tc_raw::qdiscs(&self.nl, ifindex)
            .map_err(nl(format!("listing qdiscs of {what} (ifindex {ifindex})")))
    }

    /// Creates one direction's qdiscs; sets `root_created` once the root
    /// qdisc (HTB or TBF) exists, so a failure after it can delete it. A
    /// failure carries the kernel's errno.
    fn add_shaper(
        &self,
        s: &Shaper,
        ifindex: u32,
        what: &str,
        root_created: &mut bool,
    ) -> Result<(), (CniError, Option<i32>)> {
        let on = format!("{what} (ifindex {ifindex})");
        if let Some(split) = &s.split {
            self.add_split(split, ifindex, &on, root_created)?;
        }
        let msg = tc_raw::tbf_message(ifindex, s.tbf_handle, s.tbf_parent, &s.tbf);
        let added = if s.device == Device::Ifb && failpoint::hit("ifb-tbf") {
            Err(RtnlError::Errno(libc::EINVAL))
        } else {
            tc_raw::add_qdisc(&self.nl, msg)
        };
        added.map_err(failed(format!(
            "creating tbf qdisc {} parent {} on {on}",
            s.tbf_handle, s.tbf_parent
        )))?;
        *root_created = true;
        Ok(())
    }

    fn add_split(
        &self,
        split: &SubnetSplit,
        ifindex: u32,
        on: &str,
        root_created: &mut bool,
    ) -> Result<(), (CniError, Option<i32>)> {
        let msg = tc_raw::htb_qdisc_message(
            ifindex,
            split.htb_handle,
            TcId::ROOT,
            split.default_class.minor,
        );
        tc_raw::add_qdisc(&self.nl, msg).map_err(failed(format!(
            "creating htb qdisc {} on {on}",
            split.htb_handle
        )))?;
        *root_created = true;
        for class in [split.shaped_class, split.bypass_class] {
            let msg = tc_raw::htb_class_message(
                ifindex,
                class,
                split.htb_handle,
                split.class_rate_bytes,
                split.class_buffer_ticks,
                split.class_quantum,
            );
            tc_raw::add_class(&self.nl, msg)
                .map_err(failed(format!("creating htb class {class} on {on}")))?;
        }
        let msg = tc_raw::pfifo_message(
            ifindex,
            split.bypass_fifo,
            split.bypass_class,
            split.bypass_fifo_packets,
        );
        tc_raw::add_qdisc(&self.nl, msg).map_err(failed(format!(
            "creating pfifo qdisc {} on {on}",
            split.bypass_fifo
        )))?;
        for f in &split.filters {
            let keys = f
                .keys
                .iter()
                .map(|k| {
                    let mut key = TcU32Key::default();
                    key.val = k.val;
                    key.mask = k.mask;
                    key.off = k.off;
                    key
                })
                .collect();
            let msg = tc_raw::u32_filter_message(
                ifindex,
                tc_handle(split.htb_handle),
                f.prio,
                f.protocol,
                vec![
                    TcFilterU32Option::ClassId(tc_handle(f.flowid)),
                    TcFilterU32Option::Selector(tc_raw::u32_selector(keys)),
                ],
            );
            tc_raw::add_filter(&self.nl, msg).map_err(failed(format!(
                "adding the u32 filter for {} ({:?}) to class {} on {on}",
                f.subnet, f.field, f.flowid
            )))?;
        }
        Ok(())
    }

    /// Removes everything `owner` has in this netns: our redirect filter (and
    /// the ingress qdisc if we created it and nothing else uses it) and our
    /// root qdisc on the host veth, then the IFB. `veth` comes from the pod
    /// netns when it still exists; otherwise the IFB's alias names it.
    /// Keeps going past errors and returns them all; missing objects are fine.
    pub fn remove(&self, owner: &Owner, veth: Option<&HostVeth>) -> Vec<CniError> {
        let mut errors = Vec::new();
        let name = ifb_name(owner);
        let ifb = match self.link(&name) {
            Ok(l) => l,
            Err(e) => {
                errors.push(e);
                None
            }
        };
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
            match tc_raw::del_link(&self.nl, index) {
                Ok(()) => {}
                Err(e) if e.errno() == Some(ENODEV) => {}
                Err(e) => errors.push(nl(format!("deleting ifb {name} (ifindex {index})"))(e)),
            }
        }
        errors
    }

    fn redirects_to(&self, veth: &HostVeth, ifb_index: Option<u32>) -> bool {
        let Some(ifb_index) = ifb_index else {
            return false;
        };
        self.our_redirect_filters(veth)
            .unwrap_or_default()
            .iter()
            .any(|f| redirect_target(f) == Some(ifb_index))
    }

    fn our_redirect_filters(&self, veth: &HostVeth) -> Result<Vec<TcMessage>, CniError> {
        match tc_raw::filters(&self.nl, veth.index, INGRESS_HOOK) {
            Ok(fs) => Ok(fs
                .into_iter()
                .filter(|f| tc_raw::filter_prio_protocol(f).0 == crate::plan::REDIRECT_PRIO)
                .collect()),
            Err(e) if is_gone(&e) => Ok(Vec::new()),
            Err(e) => Err(nl(format!(
                "listing ingress filters of host veth {}",
                veth.name
            ))(e)),
        }
    }

    /// Deletes the ingress qdisc we created on a veth once no filter is left
    /// on it (someone else's filter keeps it); "gone" is success.
    fn remove_ingress_qdisc_if_unused(&self, ifindex: u32, on: &str, errors: &mut Vec<CniError>) {
        match tc_raw::filters(&self.nl, ifindex, INGRESS_HOOK) {
            Ok(rest) if rest.is_empty() => {
                match tc_raw::del_qdisc(&self.nl, ifindex, TcHandle::INGRESS) {
                    Ok(()) => {}
                    Err(e) if is_gone(&e) => {}
                    Err(e) => errors.push(nl(format!("deleting the ingress qdisc on {on}"))(e)),
                }
            }
            Ok(_) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => errors.push(nl(format!("listing ingress filters of {on}"))(e)),
        }
    }

    fn remove_from_veth(&self, v: &HostVeth, alias: Option<&IfbAlias>) -> Vec<CniError> {
        let mut errors = Vec::new();
        let on = format!("host veth {} (ifindex {})", v.name, v.index);
        match tc_raw::del_filters(
            &self.nl,
            v.index,
            INGRESS_HOOK,
            crate::plan::REDIRECT_PRIO,
            crate::plan::ETH_P_ALL,
        ) {
            Ok(()) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => errors.push(nl(format!("deleting the redirect filter on {on}"))(e)),
        }
        if alias.is_some_and(|a| a.created_ingress_qdisc) {
            self.remove_ingress_qdisc_if_unused(v.index, &on, &mut errors);
        }
        match tc_raw::qdiscs(&self.nl, v.index) {
            Ok(qs) => {
                if qs.iter().any(is_our_root) {
                    match tc_raw::del_qdisc(&self.nl, v.index, TcHandle::ROOT) {
                        Ok(()) => {}
                        Err(e) if is_gone(&e) => {}
                        Err(e) => errors.push(nl(format!("deleting the root qdisc on {on}"))(e)),
                    }
                }
            }
            Err(e) if is_gone(&e) => {}
            Err(e) => errors.push(nl(format!("listing qdiscs of {on}"))(e)),
        }
        errors
    }

    /// CHECK: the kernel holds what the plan says. The first difference is
    /// the error, naming the object and both values. The qdiscs of the veth
    /// and the IFB come from one dump (the kernel dumps every device's
    /// anyway).
    pub fn verify(
        &self,
        plan: &ShapingPlan,
        owner: &Owner,
        veth: &HostVeth,
    ) -> Result<(), CniError> {
        let mut dump = None;
        if let Some(s) = &plan.to_pod {
            self.verify_shaper(
                s,
                veth.index,
                &format!("host veth {}", veth.name),
                "ingress",
                &mut dump,
            )?;
        }
        let (Some(s), Some(ifb)) = (&plan.from_pod, &plan.ifb) else {
            return Ok(());
        };
        let link = self.link(&ifb.name)?.ok_or_else(|| {
            internal(format!(
                "ifb {} for egress shaping does not exist",
                ifb.name
            ))
        })?;
        if our_ifb(&link, &ifb.name, owner).is_none() {
            return Err(internal(format!(
                "ifb {} is not owned by {} (alias {:?})",
                ifb.name,
                owner.tag(),
                link_alias(&link)
            )));
        }
        let mtu = link_mtu(&link);
        if mtu != veth.mtu {
            return Err(internal(format!(
                "ifb {}: mtu is {mtu}, expected {} (the mtu of host veth {})",
                ifb.name, veth.mtu, veth.name
            )));
        }
        self.verify_shaper(
            s,
            link.header.index,
            &format!("ifb {}", ifb.name),
            "egress",
            &mut dump,
        )?;
        let filters = self.our_redirect_filters(veth)?;
        let targets: Vec<u32> = filters.iter().filter_map(redirect_target).collect();
        if !targets.contains(&link.header.index) {
            return Err(internal(format!(
                "host veth {}: no u32 redirect filter (prio {}) to ifb {} (ifindex {}) on its ingress hook; found targets {targets:?}",
                veth.name,
                ifb.redirect_prio,
                ifb.name,
                link.header.index
            )));
        }
        Ok(())
    }

    fn verify_shaper(
        &self,
        s: &Shaper,
        ifindex: u32,
        what: &str,
        dir: &str,
        dump: &mut Option<Vec<TcMessage>>,
    ) -> Result<(), CniError> {
        let all = match dump {
            Some(all) => all,
            None => dump.insert(
                tc_raw::all_qdiscs(&self.nl)
                    .map_err(nl(format!("listing qdiscs of {what} (ifindex {ifindex})")))?,
            ),
        };
        let qdiscs: Vec<&TcMessage> = all
            .iter()
            .filter(|q| q.header.index == ifindex as i32)
            .collect();
        if let Some(split) = &s.split {
            let root = qdiscs
                .iter()
                .find(|q| q.header.parent == TcHandle::ROOT)
                .and_then(|q| tc_raw::read_htb_default(q).map(|d| (q, d)));
            match root {
                Some((q, d)) if q.header.handle == tc_handle(split.htb_handle) => {
                    if d != u32::from(split.default_class.minor) {
                        return Err(internal(format!(
                            "{what}: htb default class is {d:x}, expected {:x}",
                            split.default_class.minor
                        )));
                    }
                }
                _ => {
                    return Err(internal(format!(
                        "{what}: no htb root qdisc {} for {dir} subnet shaping",
                        split.htb_handle
                    )))
                }
            }
        }
        let tbf = qdiscs
            .iter()
            .find(|q| {
                q.header.parent == tc_handle(s.tbf_parent)
                    && q.header.handle == tc_handle(s.tbf_handle)
            })
            .ok_or_else(|| {
                internal(format!(
                    "{what}: no tbf qdisc {} parent {} for {dir} shaping",
                    s.tbf_handle, s.tbf_parent
                ))
            })?;
        let got = tc_raw::read_tbf(tbf).ok_or_else(|| {
            internal(format!(
                "{what}: qdisc {} is a {}, expected tbf",
                s.tbf_handle,
                tc_raw::kind(tbf).unwrap_or("?")
            ))
        })?;
        let checks = [
            ("rate", got.rate_bytes, s.tbf.rate_bytes, "bytes/s"),
            (
                "limit",
                u64::from(got.limit_bytes),
                u64::from(s.tbf.limit_bytes),
                "bytes",
            ),
            (
                "buffer",
                u64::from(got.buffer_ticks),
                u64::from(s.tbf.buffer_ticks),
                "ticks",
            ),
        ];
        for (field, have, want, unit) in checks {
            if have != want {
                return Err(internal(format!(
                    "{what}: {dir} tbf {field} doesn't match: kernel has {have} {unit}, config wants {want} {unit}"
                )));
            }
        }
        Ok(())
    }

    /// GC: removes IFBs of `network` whose owner is not a valid attachment.
    pub fn gc(&self, network: &str, valid: &[Attachment]) -> Vec<CniError> {
        let links = match self.nl.links() {
            Ok(l) => l,
            Err(e) => return vec![nl("listing links for GC")(e)],
        };
        let mut errors = Vec::new();
        for link in links {
            let Some(alias) = link_alias(&link).and_then(|a| IfbAlias::parse(&a)) else {
                continue;
            };
            if alias.owner.network != network || link_kind(&link) != Some(InfoKind::Ifb) {
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
}
