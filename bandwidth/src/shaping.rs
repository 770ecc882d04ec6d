//! The only module that changes the kernel: finds the host end of the pod's
//! veth, and applies, verifies and removes a [`ShapingPlan`] in the host
//! netns (the netns the plugin runs in) through one netlink session. Links,
//! the ingress qdisc and the u32+mirred redirect go through rtnetlink's
//! builders; TBF/HTB/pfifo through `tc_raw`. It never decides *what* to
//! shape (that is `plan`) and never reads stdin or the environment.

use std::path::Path;

use futures_util::TryStreamExt;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::tc::{
    TcActionAttribute, TcActionMirrorOption, TcActionOption, TcAttribute, TcFilterU32Option,
    TcHandle, TcMessage, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};
use rtnetlink::{LinkIfb, LinkUnspec};

use cni::args::Owner;
use cni::netlink::{describe, errno, link_name, NetlinkSession, ENODEV, ENOENT};
use cni::types::Attachment;
use cni::CniError;

use crate::plan::{ifb_name, IfbAlias, Shaper, ShapingPlan, SubnetSplit, TcId, ROOT_HANDLE};
use crate::tc_raw::{self, tc_handle, INGRESS_HOOK};

/// The host end of the pod's veth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVeth {
    pub name: String,
    pub index: u32,
    pub mtu: u32,
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
fn nl(what: impl std::fmt::Display) -> impl FnOnce(rtnetlink::Error) -> CniError {
    move |e| internal(format!("{what}: {}", describe(&e)))
}

fn is_gone(e: &rtnetlink::Error) -> bool {
    matches!(errno(e), Some(ENODEV) | Some(ENOENT)) || errno(e) == Some(libc::EINVAL)
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

fn link_mac(msg: &LinkMessage) -> Option<String> {
    attr(msg, |a| match a {
        LinkAttribute::Address(b) if !b.is_empty() => Some(
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
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
}

/// A netlink session in the host netns (where the plugin runs).
pub struct Host {
    nl: NetlinkSession,
}

impl Host {
    pub fn open() -> Result<Host, CniError> {
        let nl = NetlinkSession::open(None)
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
    /// peer is the container interface.
    pub fn find_host_veth(&self, netns: &Path, ifname: &str) -> Result<HostVeth, CniError> {
        let pod = NetlinkSession::open(Some(netns))
            .map_err(|e| internal(format!("opening netns {}: {e}", netns.display())))?;
        let inner = pod
            .link_by_name(ifname)
            .map_err(nl(format!(
                "looking up {ifname} in netns {}",
                netns.display()
            )))?
            .ok_or_else(|| {
                internal(format!(
                    "container interface {ifname} not found in netns {}",
                    netns.display()
                ))
            })?;
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
        Ok(HostVeth {
            name: link_name(&host).unwrap_or_default().to_string(),
            index: host.header.index,
            mtu: link_mtu(&host),
        })
    }

    /// The host veth by name (DEL/GC without a netns).
    fn host_veth_by_name(&self, name: &str) -> Result<Option<HostVeth>, CniError> {
        Ok(self.link(name)?.map(|l| HostVeth {
            name: name.to_string(),
            index: l.header.index,
            mtu: link_mtu(&l),
        }))
    }

    /// Applies the plan. Removes whatever an earlier ADD of this owner left
    /// first (so re-ADD replaces), and undoes exactly what it created when
    /// a step fails part-way.
    ///
    /// A first ADD on a clean veth reads the kernel twice (our IFB's name,
    /// one qdisc dump of the veth) before creating anything; the cleanup of
    /// an earlier ADD runs only when that dump or the IFB shows something
    /// that may be ours.
    pub fn apply(
        &self,
        plan: &ShapingPlan,
        owner: &Owner,
        veth: &HostVeth,
    ) -> Result<Option<CreatedIfb>, CniError> {
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
            Err(mut e) => {
                let undo = self.undo(&created, veth);
                if !undo.is_empty() {
                    let msgs: Vec<&str> = undo.iter().map(|u| u.msg.as_str()).collect();
                    e.msg = format!(
                        "{}; undoing the ADD also failed: {}",
                        e.msg,
                        msgs.join("; ")
                    );
                }
                Err(e)
            }
        }
    }

    /// Creates the plan's objects on a veth without any of ours, recording
    /// each in `created` as soon as it exists.
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
            self.add_shaper(
                shaper,
                veth.index,
                &format!("host veth {}", veth.name),
                &mut created.root_qdisc,
            )?;
        }
        let (Some(shaper), Some(ifb)) = (&plan.from_pod, &plan.ifb) else {
            return Ok(None);
        };
        let h = self.nl.handle().clone();
        if !qdiscs.iter().any(|q| q.header.parent == TcHandle::INGRESS) {
            self.nl
                .block_on(h.qdisc().add(veth.index as i32).ingress().execute())
                .map_err(nl(format!(
                    "creating ingress qdisc on host veth {} (ifindex {})",
                    veth.name, veth.index
                )))?;
            created.ingress_qdisc = true;
        }
        let alias = IfbAlias {
            owner: owner.clone(),
            host_veth: veth.name.clone(),
            created_ingress_qdisc: created.ingress_qdisc,
        };
        let link = self.create_ifb(&ifb.name, veth.mtu, &alias, created)?;
        let ifb_index = link.header.index;
        self.add_shaper(shaper, ifb_index, &format!("ifb {}", ifb.name), &mut false)?;
        let up = LinkUnspec::new_with_index(ifb_index).up().build();
        self.nl
            .block_on(h.link().set(up).execute())
            .map_err(nl(format!("setting ifb {} up", ifb.name)))?;
        let req = h
            .traffic_filter(veth.index as i32)
            .add()
            .parent(INGRESS_HOOK.into())
            .priority(ifb.redirect_prio)
            .protocol(ifb.redirect_protocol.to_be())
            .redirect(ifb_index)
            .map_err(nl("building the redirect filter"))?;
        self.nl.block_on(req.execute()).map_err(|e| {
            let hint = if errno(&e) == Some(libc::EINVAL) {
                format!(
                    " (its ingress hook may already have a filter of another protocol at priority {})",
                    ifb.redirect_prio
                )
            } else {
                String::new()
            };
            internal(format!(
                "adding the u32 redirect filter on host veth {} (ifindex {}) to ifb {}: {}{hint}",
                veth.name,
                veth.index,
                ifb.name,
                describe(&e)
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
    /// its alias before anything else can fail.
    fn create_ifb(
        &self,
        name: &str,
        mtu: u32,
        alias: &IfbAlias,
        created: &mut Created,
    ) -> Result<LinkMessage, CniError> {
        let h = self.nl.handle().clone();
        let msg = LinkIfb::new(name).mtu(mtu).txqueuelen(0).build();
        let echoed = self
            .nl
            .block_on(tc_raw::add_link_echo(&h, msg))
            .map_err(nl(format!("creating ifb {name}")))?;
        created.ifb = Some((name.to_string(), None));
        let link = match echoed.filter(|l| link_name(l) == Some(name)) {
            Some(l) => l,
            None => self
                .link(name)?
                .ok_or_else(|| internal(format!("ifb {name} vanished after creation")))?,
        };
        created.ifb = Some((name.to_string(), Some(link.header.index)));
        let set = LinkUnspec::new_with_index(link.header.index)
            .alias(alias.render())
            .build();
        self.nl
            .block_on(h.link().set(set).execute())
            .map_err(nl(format!("recording the owner on ifb {name} (alias)")))?;
        Ok(link)
    }

    /// Deletes what a failed ADD created, newest first; returns what could
    /// not be deleted. An ingress qdisc we created stays when a filter that
    /// is not ours appeared on it meanwhile.
    fn undo(&self, created: &Created, veth: &HostVeth) -> Vec<CniError> {
        let mut errors = Vec::new();
        let h = self.nl.handle().clone();
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
                match self.nl.block_on(h.link().del(index).execute()) {
                    Ok(()) => {}
                    Err(e) if errno(&e) == Some(ENODEV) => {}
                    Err(e) => errors.push(nl(format!("deleting ifb {name} (ifindex {index})"))(e)),
                }
            }
        }
        if created.ingress_qdisc {
            self.remove_ingress_qdisc_if_unused(veth.index, &on, &mut errors);
        }
        if created.root_qdisc {
            match self
                .nl
                .block_on(tc_raw::del_qdisc(&h, veth.index, TcHandle::ROOT))
            {
                Ok(()) => {}
                Err(e) if is_gone(&e) => {}
                Err(e) => errors.push(nl(format!("deleting the root qdisc on {on}"))(e)),
            }
        }
        errors
    }

    fn qdiscs(&self, ifindex: u32, what: &str) -> Result<Vec<TcMessage>, CniError> {
        let h = self.nl.handle().clone();
        self.nl
            .block_on(tc_raw::qdiscs(&h, ifindex))
            .map_err(nl(format!("listing qdiscs of {what} (ifindex {ifindex})")))
    }

    /// Creates one direction's qdiscs; sets `root_created` once the root
    /// qdisc (HTB or TBF) exists, so a failure after it can delete it.
    fn add_shaper(
        &self,
        s: &Shaper,
        ifindex: u32,
        what: &str,
        root_created: &mut bool,
    ) -> Result<(), CniError> {
        let h = self.nl.handle().clone();
        let on = format!("{what} (ifindex {ifindex})");
        if let Some(split) = &s.split {
            self.add_split(split, ifindex, &on, root_created)?;
        }
        let msg = tc_raw::tbf_message(ifindex, s.tbf_handle, s.tbf_parent, &s.tbf);
        self.nl
            .block_on(tc_raw::add_qdisc(&h, msg))
            .map_err(nl(format!(
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
    ) -> Result<(), CniError> {
        let h = self.nl.handle().clone();
        let msg = tc_raw::htb_qdisc_message(
            ifindex,
            split.htb_handle,
            TcId::ROOT,
            split.default_class.minor,
        );
        self.nl
            .block_on(tc_raw::add_qdisc(&h, msg))
            .map_err(nl(format!(
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
            self.nl
                .block_on(tc_raw::add_class(&h, msg))
                .map_err(nl(format!("creating htb class {class} on {on}")))?;
        }
        let msg = tc_raw::pfifo_message(
            ifindex,
            split.bypass_fifo,
            split.bypass_class,
            split.bypass_fifo_packets,
        );
        self.nl
            .block_on(tc_raw::add_qdisc(&h, msg))
            .map_err(nl(format!(
                "creating pfifo qdisc {} on {on}",
                split.bypass_fifo
            )))?;
        for f in &split.filters {
            let mut sel = TcU32Selector::default();
            sel.flags = TcU32SelectorFlags::Terminal;
            sel.keys = f
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
            if sel.keys.is_empty() {
                sel.keys.push(TcU32Key::default());
            }
            sel.nkeys = sel.keys.len() as u8;
            let req = h
                .traffic_filter(ifindex as i32)
                .add()
                .parent(split.htb_handle.as_u32())
                .priority(f.prio)
                .protocol(f.protocol.to_be())
                .u32(&[
                    TcFilterU32Option::ClassId(tc_handle(f.flowid)),
                    TcFilterU32Option::Selector(sel),
                ])
                .map_err(nl("building a subnet filter"))?;
            self.nl.block_on(req.execute()).map_err(nl(format!(
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
            let h = self.nl.handle().clone();
            match self.nl.block_on(h.link().del(index).execute()) {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(ENODEV) => {}
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
        let h = self.nl.handle().clone();
        match self
            .nl
            .block_on(tc_raw::filters(&h, veth.index, INGRESS_HOOK))
        {
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
        let h = self.nl.handle().clone();
        match self.nl.block_on(tc_raw::filters(&h, ifindex, INGRESS_HOOK)) {
            Ok(rest) if rest.is_empty() => {
                match self
                    .nl
                    .block_on(tc_raw::del_qdisc(&h, ifindex, TcHandle::INGRESS))
                {
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
        let h = self.nl.handle().clone();
        let on = format!("host veth {} (ifindex {})", v.name, v.index);
        match self.nl.block_on(tc_raw::del_filters(
            &h,
            v.index,
            INGRESS_HOOK,
            crate::plan::REDIRECT_PRIO,
            crate::plan::ETH_P_ALL,
        )) {
            Ok(()) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => errors.push(nl(format!("deleting the redirect filter on {on}"))(e)),
        }
        if alias.is_some_and(|a| a.created_ingress_qdisc) {
            self.remove_ingress_qdisc_if_unused(v.index, &on, &mut errors);
        }
        match self.nl.block_on(tc_raw::qdiscs(&h, v.index)) {
            Ok(qs) => {
                if qs.iter().any(is_our_root) {
                    match self
                        .nl
                        .block_on(tc_raw::del_qdisc(&h, v.index, TcHandle::ROOT))
                    {
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
    /// the error, naming the object and both values.
    pub fn verify(
        &self,
        plan: &ShapingPlan,
        owner: &Owner,
        veth: &HostVeth,
    ) -> Result<(), CniError> {
        if let Some(s) = &plan.to_pod {
            self.verify_shaper(
                s,
                veth.index,
                &format!("host veth {}", veth.name),
                "ingress",
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
        self.verify_shaper(s, link.header.index, &format!("ifb {}", ifb.name), "egress")?;
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
    ) -> Result<(), CniError> {
        let qdiscs = self.qdiscs(ifindex, what)?;
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
        let h = self.nl.handle().clone();
        let links: Result<Vec<LinkMessage>, _> = self
            .nl
            .block_on(async { h.link().get().execute().try_collect().await });
        let links = match links {
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
