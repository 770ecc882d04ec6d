//! CHECK: the kernel holds what the plan says. The first difference is the
//! error ([`TcError::Mismatch`]), naming the object and both values. Reads
//! only; the qdiscs of the veth and the IFB come from one dump (the kernel
//! dumps every device's anyway).

use netlink_packet_route::tc::{TcHandle, TcMessage};

use cni::args::Owner;
use cni::rtnl::{link_alias, link_mtu};

use super::{our_ifb, Host, HostVeth, IFB_MTU};
use crate::error::TcError;
use crate::plan::{Shaper, ShapingPlan, SubnetSplit};
use crate::tc_raw::{self, tc_handle};

fn mismatch(msg: String) -> TcError {
    TcError::Mismatch(msg)
}

impl Host {
    /// CHECK of the whole plan: the veth's shaper, then the IFB (ours, same
    /// MTU as the veth), its shaper and the redirect to it.
    pub fn verify(
        &self,
        plan: &ShapingPlan,
        owner: &Owner,
        veth: &HostVeth,
    ) -> Result<(), TcError> {
        let mut dump = None;
        if let Some(s) = &plan.to_pod {
            let what = format!("host veth {}", veth.name);
            self.verify_shaper(s, veth.index, &what, "ingress", &mut dump)?;
        }
        let (Some(s), Some(ifb)) = (&plan.from_pod, &plan.ifb) else {
            return Ok(());
        };
        let link = self.link(&ifb.name)?.ok_or_else(|| {
            mismatch(format!(
                "ifb {} for egress shaping does not exist",
                ifb.name
            ))
        })?;
        if our_ifb(&link, &ifb.name, owner).is_none() {
            return Err(mismatch(format!(
                "ifb {} is not owned by {} (alias {:?})",
                ifb.name,
                owner.tag(),
                link_alias(&link)
            )));
        }
        // Earlier releases gave the IFB the host veth's MTU.
        let mtu = link_mtu(&link).unwrap_or(1500);
        if mtu != IFB_MTU && mtu != veth.mtu {
            return Err(mismatch(format!(
                "ifb {}: mtu is {mtu}, expected {IFB_MTU} (or {}, the mtu of host veth {})",
                ifb.name, veth.mtu, veth.name
            )));
        }
        let what = format!("ifb {}", ifb.name);
        self.verify_shaper(s, link.header.index, &what, "egress", &mut dump)?;
        let filters = self.our_redirect_filters(veth)?;
        let targets: Vec<u32> = filters.iter().filter_map(tc_raw::redirect_target).collect();
        if !targets.contains(&link.header.index) {
            return Err(mismatch(format!(
                "host veth {}: no u32 redirect filter (prio {}) to ifb {} (ifindex {}) on its ingress hook; found targets {targets:?}",
                veth.name,
                ifb.redirect_prio,
                ifb.name,
                link.header.index
            )));
        }
        Ok(())
    }

    /// One direction: the HTB root of a subnet split, then the TBF.
    fn verify_shaper(
        &self,
        s: &Shaper,
        ifindex: u32,
        what: &str,
        dir: &str,
        dump: &mut Option<Vec<TcMessage>>,
    ) -> Result<(), TcError> {
        let all = match dump {
            Some(all) => all,
            None => dump.insert(self.nl.qdiscs().map_err(TcError::netlink(format!(
                "listing qdiscs of {what} (ifindex {ifindex})"
            )))?),
        };
        let qdiscs: Vec<&TcMessage> = all
            .iter()
            .filter(|q| q.header.index == ifindex as i32)
            .collect();
        if let Some(split) = &s.split {
            verify_split(split, &qdiscs, what, dir)?;
        }
        let tbf = qdiscs
            .iter()
            .find(|q| {
                q.header.parent == tc_handle(s.tbf_parent)
                    && q.header.handle == tc_handle(s.tbf_handle)
            })
            .ok_or_else(|| {
                mismatch(format!(
                    "{what}: no tbf qdisc {} parent {} for {dir} shaping",
                    s.tbf_handle, s.tbf_parent
                ))
            })?;
        verify_tbf(s, tbf, what, dir)
    }
}

/// The root is our HTB with the plan's default class.
fn verify_split(
    split: &SubnetSplit,
    qdiscs: &[&TcMessage],
    what: &str,
    dir: &str,
) -> Result<(), TcError> {
    let root = qdiscs
        .iter()
        .find(|q| q.header.parent == TcHandle::ROOT)
        .and_then(|q| tc_raw::read_htb_default(q).map(|d| (q, d)));
    match root {
        Some((q, d)) if q.header.handle == tc_handle(split.htb_handle) => {
            if d != u32::from(split.default_class.minor) {
                return Err(mismatch(format!(
                    "{what}: htb default class is {d:x}, expected {:x}",
                    split.default_class.minor
                )));
            }
            Ok(())
        }
        _ => Err(mismatch(format!(
            "{what}: no htb root qdisc {} for {dir} subnet shaping",
            split.htb_handle
        ))),
    }
}

/// The TBF's rate, limit, buffer and peak rate are the plan's.
fn verify_tbf(s: &Shaper, tbf: &TcMessage, what: &str, dir: &str) -> Result<(), TcError> {
    let got = tc_raw::read_tbf(tbf).ok_or_else(|| {
        mismatch(format!(
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
        ("peak rate", got.peak_bytes, s.tbf.peak_bytes, "bytes/s"),
    ];
    for (field, have, want, unit) in checks {
        if have != want {
            return Err(mismatch(format!(
                "{what}: {dir} tbf {field} doesn't match: kernel has {have} {unit}, config wants {want} {unit}"
            )));
        }
    }
    Ok(())
}
