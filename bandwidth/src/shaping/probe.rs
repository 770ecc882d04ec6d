//! STATUS's prerequisite probe: proves that the kernel can do every kind of
//! object an ADD creates — an `ifb` link, a `tbf` root qdisc, an `ingress`
//! qdisc, a `u32` filter and a `mirred` redirect — by creating one of each,
//! never on the host's own links or qdiscs. Module files cannot answer
//! (kernels with everything built in have none), so the probe runs in a
//! throwaway network namespace: the calling thread unshares its netns
//! (`unshare(CLONE_NEWNET)`: no file names it), opens a netlink socket
//! there and sends the five requests in one datagram — the IFB created
//! down with a fixed ifindex (a fresh netns holds only `lo` and maybe
//! fallback tunnels with low numbers, so the tc requests can name it
//! without waiting for its creation's answer), then its qdiscs and
//! filters — each acknowledged or refused with the kernel's errno. Then the
//! socket is closed and the thread returns to its netns: nothing holds the
//! throwaway one any more, and the kernel dismantles it (IFB included)
//! asynchronously, so the runtime does not wait for the IFB's
//! unregistration. (Measured on 2 loaded cores: the unshare costs
//! 0.55–0.8 ms and the five requests 0.45–0.9 ms, most of it the IFB's
//! registration; a short-lived thread doing the same cost 0.1–3.6 ms more,
//! waiting to be scheduled.)
//!
//! Where a netns cannot be made (EPERM: a runtime that keeps
//! CAP_NET_ADMIN but drops CAP_SYS_ADMIN), the probe falls back to a
//! netlink lookup of `lo` in the host netns, which proves netlink only.
//!
//! Test builds: the failpoint `probe <kind>` (e.g. `probe mirred`) sends
//! that object with a kind the kernel does not know, which the kernel
//! refuses as it refuses a kernel built without it.

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::tc::{TcActionAttribute, TcAttribute, TcFilterU32Option, TcOption};
use netlink_packet_route::RouteNetlinkMessage;

use cni::failpoint;
use cni::netns::{NetnsError, NetnsGuard};
use cni::rtnl::{Rtnl, RtnlError};

use crate::config::RateLimit;
use crate::error::TcError;
use crate::plan::{tbf_params, Psched, TcId, ETH_P_ALL, REDIRECT_PRIO, TYPICAL_TICK_IN_USEC};
use crate::tc_raw::{self, INGRESS_HOOK};

/// The probe IFB's ifindex in its fresh netns (which holds only `lo`, 1,
/// and on some kernels fallback tunnels with low numbers).
const PROBE_IFINDEX: u32 = 10_000;
/// The probe IFB's name (in the throwaway netns only).
const PROBE_IFB: &str = "bwprobe";
/// The classify-only u32 filter's priority; the redirect uses ours.
const PROBE_U32_PRIO: u16 = 1;
const CREATE: u16 = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;

/// What each request of the probe proves, in the order they are sent.
const WHAT: [&str; 5] = [
    "an ifb link",
    "a tbf root qdisc",
    "an ingress qdisc",
    "a u32 filter",
    "a u32 filter with a mirred redirect action",
];

/// `Some(kind the kernel lacks)` when the test-only failpoint `probe
/// <kind>` is armed.
fn unknown_kind(kind: &str) -> Option<String> {
    failpoint::hit(&format!("probe {kind}")).then(|| format!("cni-missing-{kind}"))
}

fn ifb_message() -> RouteNetlinkMessage {
    let kind = match unknown_kind("ifb") {
        Some(k) => InfoKind::Other(k),
        None => InfoKind::Ifb,
    };
    let mut msg = LinkMessage::default();
    msg.header.index = PROBE_IFINDEX;
    msg.attributes
        .push(LinkAttribute::IfName(PROBE_IFB.to_string()));
    // As ADD makes them: without IPv6 (no inet6 device, sysctls or routes
    // to set up and tear down).
    msg.attributes.push(LinkAttribute::Mtu(super::IFB_MTU));
    msg.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(kind)]));
    RouteNetlinkMessage::NewLink(msg)
}

/// The five requests: IFB, tbf root, ingress, u32 classify, u32 + mirred.
fn requests() -> Vec<(RouteNetlinkMessage, u16)> {
    let params = tbf_params(
        RateLimit {
            rate_bits: 1_000_000,
            burst_bits: 80_000,
        },
        25,
        Psched {
            tick_in_usec: TYPICAL_TICK_IN_USEC,
        },
    );
    let mut tbf = tc_raw::tbf_message(PROBE_IFINDEX, TcId::new(1, 0), TcId::ROOT, &params);
    let mut ingress = tc_raw::ingress_message(PROBE_IFINDEX);
    let mut u32 = tc_raw::u32_filter_message(
        PROBE_IFINDEX,
        INGRESS_HOOK,
        PROBE_U32_PRIO,
        ETH_P_ALL,
        vec![TcFilterU32Option::Selector(
            tc_raw::u32_selector(Vec::new()),
        )],
    );
    let mut redirect = tc_raw::redirect_message(
        PROBE_IFINDEX,
        INGRESS_HOOK,
        REDIRECT_PRIO,
        ETH_P_ALL,
        PROBE_IFINDEX,
    );
    for (msg, kind) in [
        (&mut tbf, "tbf"),
        (&mut ingress, "ingress"),
        (&mut u32, "u32"),
        (&mut redirect, "u32"),
    ] {
        if let Some(k) = unknown_kind(kind) {
            for a in &mut msg.attributes {
                if let TcAttribute::Kind(name) = a {
                    name.clone_from(&k);
                }
            }
        }
    }
    if let Some(k) = unknown_kind("mirred") {
        let actions = redirect.attributes.iter_mut().flat_map(|a| match a {
            TcAttribute::Options(opts) => opts.iter_mut().collect(),
            _ => Vec::new(),
        });
        for o in actions {
            let TcOption::U32(TcFilterU32Option::Action(actions)) = o else {
                continue;
            };
            for aa in actions.iter_mut().flat_map(|a| a.attributes.iter_mut()) {
                if let TcActionAttribute::Kind(name) = aa {
                    name.clone_from(&k);
                }
            }
        }
    }
    vec![
        (ifb_message(), CREATE),
        (RouteNetlinkMessage::NewQueueDiscipline(tbf), CREATE),
        (RouteNetlinkMessage::NewQueueDiscipline(ingress), CREATE),
        (RouteNetlinkMessage::NewTrafficFilter(u32), CREATE),
        (RouteNetlinkMessage::NewTrafficFilter(redirect), CREATE),
    ]
}

/// Sends the probe on a socket in the calling thread's netns (a fresh one)
/// and names the first object the kernel refused.
fn probe_here() -> Result<(), TcError> {
    let nl = Rtnl::open().map_err(TcError::netlink("opening netlink in the probe netns"))?;
    let answers = nl
        .exchange(requests())
        .map_err(TcError::netlink("sending the probe requests"))?;
    drop(nl);
    for (what, answer) in WHAT.iter().zip(&answers) {
        let source = match answer.status {
            Some(Ok(())) => continue,
            Some(Err(errno)) => RtnlError::Errno(errno),
            None => RtnlError::Decode("the kernel sent no answer".into()),
        };
        return Err(TcError::Unsupported { what, source });
    }
    Ok(())
}

/// The whole probe, with the calling thread in a netns of its own for the
/// time of it. `None` when no netns can be made here (EPERM).
fn probe_in_throwaway_netns() -> Option<Result<(), TcError>> {
    let netns =
        |e: NetnsError| TcError::netlink("the probe's throwaway netns")(RtnlError::Netns(e));
    let guard = match NetnsGuard::enter_new() {
        Ok(g) => g,
        Err(NetnsError::Unshare(e)) if e as i32 == libc::EPERM => return None,
        Err(e) => return Some(Err(netns(e))),
    };
    let probed = probe_here();
    Some(guard.leave().map_err(netns).and(probed))
}

/// STATUS: every kind of object shaping needs can be created here.
pub fn prerequisites() -> Result<(), TcError> {
    match probe_in_throwaway_netns() {
        Some(probed) => probed,
        None => super::Host::open()?.probe(),
    }
}
