//! The tc verbs bandwidth uses, one request each over `cni::rtnl`: create a
//! qdisc, class or filter (exclusively: EEXIST when it is already there),
//! dump the qdiscs or the filters of one device, delete a qdisc by parent
//! (or by parent, handle and kind) and filters by priority. Messages come
//! from `tc_raw`; the verbs judge no answer (callers read the errno). The generic route verbs (links, the
//! qdisc dump) are cni's (`cni::netlink::route`); these are the tc ones.

use cni::rtnl::{Rtnl, RtnlError};
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::tc_raw::filter_info;

const CREATE: u16 = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;

/// Creates a qdisc (fails with EEXIST if one is already there).
pub fn add_qdisc(nl: &Rtnl, msg: TcMessage) -> Result<(), RtnlError> {
    nl.request(RouteNetlinkMessage::NewQueueDiscipline(msg), CREATE)
        .map(drop)
}

/// Creates a filter (fails with EEXIST if that one is already there).
pub fn add_filter(nl: &Rtnl, msg: TcMessage) -> Result<(), RtnlError> {
    nl.request(RouteNetlinkMessage::NewTrafficFilter(msg), CREATE)
        .map(drop)
}

/// Creates an HTB class.
pub fn add_class(nl: &Rtnl, msg: TcMessage) -> Result<(), RtnlError> {
    nl.request(RouteNetlinkMessage::NewTrafficClass(msg), CREATE)
        .map(drop)
}

/// Deletes the qdisc at `parent` of `ifindex` (`root` or the ingress slot).
pub fn del_qdisc(nl: &Rtnl, ifindex: u32, parent: TcHandle) -> Result<(), RtnlError> {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.parent = parent;
    nl.request(RouteNetlinkMessage::DelQueueDiscipline(msg), NLM_F_ACK)
        .map(drop)
}

/// Deletes the qdisc at `parent` of `ifindex` only when it has `handle`
/// and is a `kind`: the kernel answers EINVAL and deletes nothing when the
/// qdisc there has another handle or kind (its own default included). One
/// request, no read before it: the kernel judges the qdisc it deletes, so
/// nothing can change between a look and the delete.
pub fn del_qdisc_if(
    nl: &Rtnl,
    ifindex: u32,
    parent: TcHandle,
    handle: TcHandle,
    kind: &str,
) -> Result<(), RtnlError> {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.parent = parent;
    msg.header.handle = handle;
    msg.attributes.push(TcAttribute::Kind(kind.to_string()));
    nl.request(RouteNetlinkMessage::DelQueueDiscipline(msg), NLM_F_ACK)
        .map(drop)
}

/// Every qdisc of `ifindex` (the kernel dumps all devices; we filter).
pub fn qdiscs(nl: &Rtnl, ifindex: u32) -> Result<Vec<TcMessage>, RtnlError> {
    Ok(nl
        .qdiscs()?
        .into_iter()
        .filter(|q| q.header.index == ifindex as i32)
        .collect())
}

/// The filters attached at `parent` of `ifindex`.
pub fn filters(nl: &Rtnl, ifindex: u32, parent: TcHandle) -> Result<Vec<TcMessage>, RtnlError> {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.parent = parent;
    let replies = nl.request(RouteNetlinkMessage::GetTrafficFilter(msg), NLM_F_DUMP)?;
    Ok(replies
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewTrafficFilter(f) if f.header.index == ifindex as i32 => Some(f),
            _ => None,
        })
        .collect())
}

/// Deletes every filter with `prio`/`protocol` at `parent` of `ifindex`.
pub fn del_filters(
    nl: &Rtnl,
    ifindex: u32,
    parent: TcHandle,
    prio: u16,
    protocol: u16,
) -> Result<(), RtnlError> {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.parent = parent;
    msg.header.info = filter_info(prio, protocol);
    nl.request(RouteNetlinkMessage::DelTrafficFilter(msg), NLM_F_ACK)
        .map(drop)
}
