//! ADD: turning a [`ShapingPlan`] into qdiscs, classes, filters and an IFB
//! on the host end of the pod's veth. Two ways to the same state: a fast
//! one that reads nothing and creates exclusively, and a careful one that
//! reads first and cleans up an earlier ADD of the same owner. Every object
//! goes into the undo journal (`undo`) as soon as it exists.

use netlink_packet_route::link::{InfoKind, LinkMessage};
use netlink_packet_route::tc::{TcFilterU32Option, TcHandle, TcMessage, TcU32Key};

use cni::args::Owner;
use cni::rtnl::RtnlError;
use cni::rtnl::{link_alias, link_kind_name, link_mac, link_name};

use super::undo::Created;
use super::{is_our_root, our_ifb, unlabelled_ifb, CreatedIfb, Host, HostVeth, IFB_MTU};
use crate::error::TcError;
use crate::plan::{ifb_name, Device, IfbAlias, IfbPlan, Shaper, ShapingPlan, SubnetSplit, TcId};
use crate::tc;
use crate::tc_raw::{self, tc_handle, INGRESS_HOOK};
use cni::failpoint;

/// The root qdisc a link reports (IFLA_QDISC) when nothing was attached:
/// `noop` while it was never up, `noqueue` for a veth once up. Both are
/// kernel defaults with handle 0.
fn default_root(kind: Option<&str>) -> bool {
    matches!(kind, Some("noqueue") | Some("noop"))
}

/// A root qdisc someone else configured on the veth is an error, not
/// something to overwrite. Kernel defaults (handle 0:) are replaced.
fn refuse_foreign_root(veth: &HostVeth, qdiscs: &[TcMessage]) -> Result<(), TcError> {
    match qdiscs
        .iter()
        .find(|q| q.header.parent == TcHandle::ROOT && q.header.handle.major != 0)
    {
        Some(q) => Err(TcError::ForeignRoot {
            veth: veth.name.clone(),
            kind: tc_raw::kind(q).unwrap_or("?").to_string(),
            major: q.header.handle.major,
        }),
        None => Ok(()),
    }
}

impl Host {
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
    ) -> Result<Option<CreatedIfb>, TcError> {
        if plan.ifb.is_some() && plan.from_pod.is_some() && default_root(veth.qdisc.as_deref()) {
            let mut created = Created::fast();
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
        self.apply_carefully(plan, owner, veth)
    }

    /// The careful ADD: refuses a foreign link holding the IFB's name,
    /// removes an earlier ADD's leftovers, then creates from what one qdisc
    /// dump showed.
    fn apply_carefully(
        &self,
        plan: &ShapingPlan,
        owner: &Owner,
        veth: &HostVeth,
    ) -> Result<Option<CreatedIfb>, TcError> {
        let name = ifb_name(owner);
        let existing = self.link(&name)?;
        let ours = existing
            .as_ref()
            .is_some_and(|l| our_ifb(l, &name, owner).is_some() || unlabelled_ifb(l, &name));
        if let (Some(l), false, true) = (&existing, ours, plan.ifb.is_some()) {
            return Err(TcError::IfbNameTaken {
                name,
                holder: link_name(l).unwrap_or("?").to_string(),
                index: l.header.index,
                kind: link_kind_name(l),
                alias: link_alias(l).unwrap_or_default().to_string(),
                owner: owner.tag(),
            });
        }
        let what = format!("host veth {}", veth.name);
        let mut qdiscs = self.qdiscs(veth.index, &what)?;
        let maybe_ours = qdiscs
            .iter()
            .any(|q| is_our_root(q) || q.header.parent == TcHandle::INGRESS);
        if ours || maybe_ours {
            if let Some(e) = self.remove(owner, Some(veth)).into_iter().next() {
                return Err(TcError::EarlierAdd(Box::new(e)));
            }
            qdiscs = self.qdiscs(veth.index, &what)?;
        }
        let mut created = Created::default();
        self.apply_fresh(plan, owner, veth, &qdiscs, &mut created)
            .map_err(|e| self.undone(e, &created, veth).unwrap_or_else(|e| e))
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
    ) -> Result<Option<CreatedIfb>, TcError> {
        if let Some(shaper) = &plan.to_pod {
            refuse_foreign_root(veth, qdiscs)?;
            let mut root = false;
            let what = format!("host veth {}", veth.name);
            let added = self.add_shaper(shaper, veth.index, &what, &mut root);
            created.root_qdisc = root;
            if let Err(e) = added {
                created.conflict = created.fast && !root && e.is_exists();
                return Err(e);
            }
        }
        let (Some(shaper), Some(ifb)) = (&plan.from_pod, &plan.ifb) else {
            return Ok(None);
        };
        // The IFB and its alias first, the ingress qdisc after: the alias
        // must say "ours" before that qdisc exists, or an ADD killed in
        // between leaves a qdisc no DEL knows it may remove (issue #15 §3).
        let add_ingress = !qdiscs.iter().any(|q| q.header.parent == TcHandle::INGRESS);
        let alias = IfbAlias {
            owner: owner.clone(),
            host_veth: veth.name.clone(),
            created_ingress_qdisc: add_ingress,
        };
        let ifb_link = self.create_ifb(&ifb.name, &alias, created)?;
        if add_ingress {
            self.add_ingress_qdisc(veth, created)?;
        }
        let ifb_index = ifb_link.header.index;
        self.add_shaper(shaper, ifb_index, &format!("ifb {}", ifb.name), &mut false)?;
        self.set_up(ifb_index, &ifb.name)?;
        self.add_redirect(veth, ifb, ifb_index)?;
        Ok(Some(CreatedIfb {
            name: ifb.name.clone(),
            mac: link_mac(&ifb_link),
        }))
    }

    fn add_ingress_qdisc(&self, veth: &HostVeth, created: &mut Created) -> Result<(), TcError> {
        tc::add_qdisc(&self.nl, tc_raw::ingress_message(veth.index))
            .map_err(TcError::netlink(format!(
                "creating ingress qdisc on host veth {} (ifindex {})",
                veth.name, veth.index
            )))
            .inspect_err(|e| created.conflict_if_exists(e))?;
        created.ingress_qdisc = true;
        Ok(())
    }

    /// Creates the IFB ([`IFB_MTU`], so without IPv6), down (grafting a
    /// root qdisc on a down device skips the RCU grace period the kernel
    /// waits for on a running one), gets it back in the same round trip
    /// (NLM_F_ECHO), and records the owner in its alias before anything
    /// else can fail. (The kernel ignores
    /// IFLA_IFALIAS in the RTM_NEWLINK that creates a link, hence the
    /// separate RTM_SETLINK.)
    fn create_ifb(
        &self,
        name: &str,
        alias: &IfbAlias,
        created: &mut Created,
    ) -> Result<LinkMessage, TcError> {
        let echoed = self
            .nl
            .link_add(name, InfoKind::Ifb)
            .mtu(IFB_MTU)
            .tx_queue_len(0)
            .execute()
            .map_err(TcError::netlink(format!("creating ifb {name}")))
            .inspect_err(|e| created.conflict_if_exists(e))?;
        created.ifb = Some((name.to_string(), None));
        let ifb = match echoed.filter(|l| link_name(l) == Some(name)) {
            Some(l) => l,
            None => self
                .link(name)?
                .ok_or_else(|| TcError::IfbVanished(name.to_string()))?,
        };
        created.ifb = Some((name.to_string(), Some(ifb.header.index)));
        self.nl
            .link_set(ifb.header.index)
            .alias(&alias.render())
            .execute()
            .map_err(TcError::netlink(format!(
                "recording the owner on ifb {name} (alias)"
            )))?;
        Ok(ifb)
    }

    fn set_up(&self, index: u32, name: &str) -> Result<(), TcError> {
        self.nl
            .link_set(index)
            .up()
            .execute()
            .map_err(TcError::netlink(format!("setting ifb {name} up")))
    }

    /// The match-all filter on the veth's ingress hook that sends what the
    /// pod sends to the IFB.
    fn add_redirect(&self, veth: &HostVeth, ifb: &IfbPlan, ifb_index: u32) -> Result<(), TcError> {
        let redirect = tc_raw::redirect_message(
            veth.index,
            INGRESS_HOOK,
            ifb.redirect_prio,
            ifb.redirect_protocol,
            ifb_index,
        );
        tc::add_filter(&self.nl, redirect).map_err(|source| TcError::Redirect {
            what: format!(
                "adding the u32 redirect filter on host veth {} (ifindex {}) to ifb {}",
                veth.name, veth.index, ifb.name,
            ),
            source,
            prio: ifb.redirect_prio,
        })
    }

    /// Creates one direction's qdiscs; sets `root_created` once the root
    /// qdisc (HTB or TBF) exists, so a failure after it can delete it.
    fn add_shaper(
        &self,
        s: &Shaper,
        ifindex: u32,
        what: &str,
        root_created: &mut bool,
    ) -> Result<(), TcError> {
        let on = format!("{what} (ifindex {ifindex})");
        if let Some(split) = &s.split {
            self.add_split(split, ifindex, &on, root_created)?;
        }
        let msg = tc_raw::tbf_message(ifindex, s.tbf_handle, s.tbf_parent, &s.tbf);
        let added = if s.device == Device::Ifb && failpoint::hit("ifb-tbf") {
            Err(RtnlError::Errno(libc::EINVAL))
        } else {
            tc::add_qdisc(&self.nl, msg)
        };
        added.map_err(TcError::netlink(format!(
            "creating tbf qdisc {} parent {} on {on}",
            s.tbf_handle, s.tbf_parent
        )))?;
        *root_created = true;
        Ok(())
    }

    /// The HTB root of a subnet split, its shaped and bypass classes, the
    /// bypass pfifo and the classifying u32 filters.
    fn add_split(
        &self,
        split: &SubnetSplit,
        ifindex: u32,
        on: &str,
        root_created: &mut bool,
    ) -> Result<(), TcError> {
        let msg = tc_raw::htb_qdisc_message(
            ifindex,
            split.htb_handle,
            TcId::ROOT,
            split.default_class.minor,
        );
        tc::add_qdisc(&self.nl, msg).map_err(TcError::netlink(format!(
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
            tc::add_class(&self.nl, msg).map_err(TcError::netlink(format!(
                "creating htb class {class} on {on}"
            )))?;
        }
        let msg = tc_raw::pfifo_message(
            ifindex,
            split.bypass_fifo,
            split.bypass_class,
            split.bypass_fifo_packets,
        );
        tc::add_qdisc(&self.nl, msg).map_err(TcError::netlink(format!(
            "creating pfifo qdisc {} on {on}",
            split.bypass_fifo
        )))?;
        self.add_subnet_filters(split, ifindex, on)
    }

    fn add_subnet_filters(
        &self,
        split: &SubnetSplit,
        ifindex: u32,
        on: &str,
    ) -> Result<(), TcError> {
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
            tc::add_filter(&self.nl, msg).map_err(TcError::netlink(format!(
                "adding the u32 filter for {} ({:?}) to class {} on {on}",
                f.subnet, f.field, f.flowid
            )))?;
        }
        Ok(())
    }
}
