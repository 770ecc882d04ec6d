//! The tc messages bandwidth sends, and the decoding of the ones it reads
//! back. The one home of netlink-packet-route 0.34's raw-attribute escape
//! hatch: the option bytes it does not model (TBF, HTB and pfifo qdiscs, HTB
//! classes) travel as `TcOption::Other(DefaultNla)`, and dumped ones are
//! decoded with `emit_value` + `NlasIterator` and never sent back. Also the
//! ingress qdisc and u32 filters (classify, and match-all with a mirred
//! egress redirect), which the crate models. Layouts are from
//! `<linux/pkt_sched.h>`, native endian. Builds and reads messages only:
//! sending them is `tc`, and it knows nothing about plans or owners.

use netlink_packet_core::{DefaultNla, Nla, NlasIterator};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionGeneric, TcActionMirrorOption, TcActionOption,
    TcActionType, TcAttribute, TcFilterU32Option, TcHandle, TcMessage, TcMirror,
    TcMirrorActionType, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};

use crate::plan::{TbfParams, TcId};

const TCA_OPTIONS: u16 = 2;
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_PRATE64: u16 = 5;
const TCA_TBF_PBURST: u16 = 7;
const TCA_HTB_PARMS: u16 = 1;
const TCA_HTB_INIT: u16 = 2;
const TCA_HTB_RATE64: u16 = 6;
const TCA_HTB_CEIL64: u16 = 7;
/// `TC_LINKLAYER_ETHERNET`: tells the kernel no rate table follows.
const LINKLAYER_ETHERNET: u8 = 1;
const HTB_VERSION: u32 = 3;
const HTB_RATE2QUANTUM: u32 = 10;

/// The netlink handle of a plan's tc id.
pub fn tc_handle(id: TcId) -> TcHandle {
    TcHandle {
        major: id.major,
        minor: id.minor,
    }
}

/// The ingress hook of an `ingress` or `clsact` qdisc (`tc … ingress`).
pub const INGRESS_HOOK: TcHandle = TcHandle {
    major: 0xffff,
    minor: TcHandle::MIN_INGRESS,
};

/// `struct tc_ratespec` (12 bytes) for `rate` bytes/s, capped at u32::MAX
/// (the 64-bit attribute carries larger rates).
fn ratespec(rate_bytes: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[1] = LINKLAYER_ETHERNET;
    let rate = u32::try_from(rate_bytes).unwrap_or(u32::MAX);
    b[8..12].copy_from_slice(&rate.to_ne_bytes());
    b
}

/// `struct tc_tbf_qopt` (36 bytes): rate, peakrate, limit, buffer, mtu (0:
/// the peak bucket's size travels as `TCA_TBF_PBURST`).
pub fn tbf_qopt(p: &TbfParams) -> Vec<u8> {
    let mut v = Vec::with_capacity(36);
    v.extend_from_slice(&ratespec(p.rate_bytes));
    v.extend_from_slice(&ratespec(p.peak_bytes));
    v.extend_from_slice(&p.limit_bytes.to_ne_bytes());
    v.extend_from_slice(&p.buffer_ticks.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    v
}

fn qdisc_message(ifindex: u32, handle: TcId, parent: TcId, kind: &str) -> TcMessage {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.handle = tc_handle(handle);
    msg.header.parent = tc_handle(parent);
    msg.attributes.push(TcAttribute::Kind(kind.to_string()));
    msg
}

/// A TBF qdisc.
pub fn tbf_message(ifindex: u32, handle: TcId, parent: TcId, p: &TbfParams) -> TcMessage {
    let mut msg = qdisc_message(ifindex, handle, parent, "tbf");
    let mut opts = vec![TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, tbf_qopt(p)))];
    if p.rate64 {
        opts.push(TcOption::Other(DefaultNla::new(
            TCA_TBF_RATE64,
            p.rate_bytes.to_ne_bytes().to_vec(),
        )));
    }
    if p.peak_bytes > u64::from(u32::MAX) {
        opts.push(TcOption::Other(DefaultNla::new(
            TCA_TBF_PRATE64,
            p.peak_bytes.to_ne_bytes().to_vec(),
        )));
    }
    // The peak bucket is as large as the queue (see `TbfParams::peak_bytes`).
    opts.push(TcOption::Other(DefaultNla::new(
        TCA_TBF_PBURST,
        p.limit_bytes.to_ne_bytes().to_vec(),
    )));
    msg.attributes.push(TcAttribute::Options(opts));
    msg
}

/// An HTB qdisc sending unclassified traffic to `default_class` (its minor).
pub fn htb_qdisc_message(
    ifindex: u32,
    handle: TcId,
    parent: TcId,
    default_minor: u16,
) -> TcMessage {
    let mut msg = qdisc_message(ifindex, handle, parent, "htb");
    let mut glob = Vec::with_capacity(20);
    for word in [
        HTB_VERSION,
        HTB_RATE2QUANTUM,
        u32::from(default_minor),
        0,
        0,
    ] {
        glob.extend_from_slice(&word.to_ne_bytes());
    }
    msg.attributes
        .push(TcAttribute::Options(vec![TcOption::Other(
            DefaultNla::new(TCA_HTB_INIT, glob),
        )]));
    msg
}

/// An HTB class with rate = ceil = `rate_bytes`.
pub fn htb_class_message(
    ifindex: u32,
    classid: TcId,
    parent: TcId,
    rate_bytes: u64,
    buffer_ticks: u32,
    quantum: u32,
) -> TcMessage {
    let mut msg = qdisc_message(ifindex, classid, parent, "htb");
    let mut opt = Vec::with_capacity(44);
    opt.extend_from_slice(&ratespec(rate_bytes));
    opt.extend_from_slice(&ratespec(rate_bytes));
    for word in [buffer_ticks, buffer_ticks, quantum, 0, 0] {
        opt.extend_from_slice(&word.to_ne_bytes());
    }
    let mut opts = vec![TcOption::Other(DefaultNla::new(TCA_HTB_PARMS, opt))];
    if rate_bytes > u64::from(u32::MAX) {
        for kind in [TCA_HTB_RATE64, TCA_HTB_CEIL64] {
            opts.push(TcOption::Other(DefaultNla::new(
                kind,
                rate_bytes.to_ne_bytes().to_vec(),
            )));
        }
    }
    msg.attributes.push(TcAttribute::Options(opts));
    msg
}

/// A pfifo qdisc holding `limit` packets (its options are a bare struct,
/// not nested attributes).
pub fn pfifo_message(ifindex: u32, handle: TcId, parent: TcId, limit: u32) -> TcMessage {
    let mut msg = qdisc_message(ifindex, handle, parent, "pfifo");
    msg.attributes.push(TcAttribute::Other(DefaultNla::new(
        TCA_OPTIONS,
        limit.to_ne_bytes().to_vec(),
    )));
    msg
}

/// A TBF's parameters as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TbfReading {
    /// Rate in bytes/s (the 64-bit attribute when present).
    pub rate_bytes: u64,
    /// Queue limit in bytes.
    pub limit_bytes: u32,
    /// Bucket size in scheduler ticks.
    pub buffer_ticks: u32,
    /// Peak rate in bytes/s (0: no peak bucket).
    pub peak_bytes: u64,
}

/// The kind (`tbf`, `htb`, `ingress`, …) of a dumped qdisc or filter.
pub fn kind(msg: &TcMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        TcAttribute::Kind(k) => Some(k.as_str()),
        _ => None,
    })
}

/// The nested attributes inside an unknown kind's TCA_OPTIONS, as (type, value).
fn opaque_options(msg: &TcMessage) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    for attr in &msg.attributes {
        let TcAttribute::Options(opts) = attr else {
            continue;
        };
        for opt in opts {
            let TcOption::Other(nla) = opt else { continue };
            let mut buf = vec![0u8; nla.value_len()];
            nla.emit_value(&mut buf);
            for inner in NlasIterator::new(&buf[..]) {
                let Ok(inner) = inner else { continue };
                out.push((inner.kind(), inner.value().to_vec()));
            }
        }
    }
    out
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
}

/// Decodes a dumped TBF qdisc; `None` for other kinds or short options.
pub fn read_tbf(msg: &TcMessage) -> Option<TbfReading> {
    if kind(msg) != Some("tbf") {
        return None;
    }
    let opts = opaque_options(msg);
    let parms = opts.iter().find(|(k, _)| *k == TCA_TBF_PARMS)?.1.as_slice();
    let wide = |attr: u16, narrow: u32| {
        opts.iter()
            .find(|(k, _)| *k == attr)
            .and_then(|(_, v)| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(u64::from(narrow), u64::from_ne_bytes)
    };
    Some(TbfReading {
        rate_bytes: wide(TCA_TBF_RATE64, u32_at(parms, 8)?),
        limit_bytes: u32_at(parms, 24)?,
        buffer_ticks: u32_at(parms, 28)?,
        peak_bytes: wide(TCA_TBF_PRATE64, u32_at(parms, 20)?),
    })
}

/// The default class minor of a dumped HTB qdisc.
pub fn read_htb_default(msg: &TcMessage) -> Option<u32> {
    if kind(msg) != Some("htb") {
        return None;
    }
    let opts = opaque_options(msg);
    let glob = opts.iter().find(|(k, _)| *k == TCA_HTB_INIT)?.1.as_slice();
    u32_at(glob, 8)
}

/// The ingress qdisc (`tc qdisc add dev … ingress`).
pub fn ingress_message(ifindex: u32) -> TcMessage {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.parent = TcHandle::INGRESS;
    msg.header.handle = TcHandle::from(0xffff_0000);
    msg.attributes
        .push(TcAttribute::Kind("ingress".to_string()));
    msg
}

/// A u32 filter at `parent` of `ifindex` with `prio` and `protocol` (host
/// order) carrying `options`.
pub fn u32_filter_message(
    ifindex: u32,
    parent: TcHandle,
    prio: u16,
    protocol: u16,
    options: Vec<TcFilterU32Option>,
) -> TcMessage {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.parent = parent;
    msg.header.info = filter_info(prio, protocol);
    msg.attributes.push(TcAttribute::Kind("u32".to_string()));
    msg.attributes.push(TcAttribute::Options(
        options.into_iter().map(TcOption::U32).collect(),
    ));
    msg
}

/// A terminal u32 selector matching `keys` (one all-zero key, i.e. every
/// packet, when empty).
pub fn u32_selector(keys: Vec<TcU32Key>) -> TcU32Selector {
    let mut sel = TcU32Selector::default();
    sel.flags = TcU32SelectorFlags::Terminal;
    sel.keys = keys;
    if sel.keys.is_empty() {
        sel.keys.push(TcU32Key::default());
    }
    sel.nkeys = sel.keys.len() as u8;
    sel
}

/// A match-all u32 filter whose mirred action redirects every packet to the
/// egress of `target` (`… u32 match u32 0 0 action mirred egress redirect`).
pub fn redirect_message(
    ifindex: u32,
    parent: TcHandle,
    prio: u16,
    protocol: u16,
    target: u32,
) -> TcMessage {
    let mut mirror = TcMirror::default();
    mirror.generic = TcActionGeneric::default();
    mirror.generic.action = TcActionType::Stolen;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = target;
    let mut action = TcAction::default();
    action.attributes = vec![
        TcActionAttribute::Kind("mirred".to_string()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirror,
        ))]),
    ];
    u32_filter_message(
        ifindex,
        parent,
        prio,
        protocol,
        vec![
            TcFilterU32Option::Selector(u32_selector(Vec::new())),
            TcFilterU32Option::Action(vec![action]),
        ],
    )
}

/// The ifindex a dumped u32 filter's mirred action redirects to.
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

/// `(priority, protocol in host order)` of a filter message.
pub fn filter_prio_protocol(msg: &TcMessage) -> (u16, u16) {
    let info = msg.header.info;
    ((info >> 16) as u16, u16::from_be((info & 0xffff) as u16))
}

/// The `tcm_info` of a filter: priority and protocol (network order).
pub fn filter_info(prio: u16, protocol: u16) -> u32 {
    (u32::from(prio) << 16) | u32::from(protocol.to_be())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;
    use netlink_packet_core::Parseable;

    fn params(rate_bytes: u64) -> TbfParams {
        TbfParams {
            rate_bytes,
            burst_bytes: 10_000,
            buffer_ticks: 1_250_000,
            limit_bytes: 13_125,
            latency_ms: 25,
            rate64: rate_bytes > u64::from(u32::MAX),
            peak_bytes: (rate_bytes * 4).max(12_500_000_000),
            clamped: false,
        }
    }

    /// Emits a message, then parses it back the way a dump would arrive.
    fn round_trip(msg: &TcMessage) -> TcMessage {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        TcMessage::parse(&buf[..]).unwrap()
    }

    #[test]
    fn tbf_qopt_layout() {
        let b = tbf_qopt(&params(125_000));
        assert_eq!(b.len(), 36);
        assert_eq!(b[1], 1, "linklayer ethernet");
        assert_eq!(u32_at(&b, 8), Some(125_000));
        assert_eq!(u32_at(&b, 24), Some(13_125));
        assert_eq!(u32_at(&b, 28), Some(1_250_000));
        assert_eq!(b[13], 1, "the peak's linklayer ethernet");
        assert_eq!(
            u32_at(&b, 20),
            Some(u32::MAX),
            "the peak, capped (PRATE64 has it)"
        );
    }

    #[test]
    fn tbf_encodes_and_decodes() {
        for rate in [125_000u64, 1 << 32, 12_500_000_000] {
            let msg = tbf_message(7, TcId::new(1, 0), TcId::ROOT, &params(rate));
            let back = round_trip(&msg);
            assert_eq!(back.header.handle, TcHandle { major: 1, minor: 0 });
            let pburst = opaque_options(&back)
                .into_iter()
                .find(|(k, _)| *k == TCA_TBF_PBURST)
                .map(|(_, v)| v);
            assert_eq!(pburst, Some(13_125u32.to_ne_bytes().to_vec()), "the limit");
            assert_eq!(
                read_tbf(&back),
                Some(TbfReading {
                    rate_bytes: rate,
                    limit_bytes: 13_125,
                    buffer_ticks: 1_250_000,
                    peak_bytes: (rate * 4).max(12_500_000_000),
                })
            );
        }
    }

    #[test]
    fn htb_default_decodes() {
        let back = round_trip(&htb_qdisc_message(7, TcId::new(1, 0), TcId::ROOT, 0x30));
        assert_eq!(read_htb_default(&back), Some(0x30));
        assert_eq!(read_tbf(&back), None);
    }

    #[test]
    fn filter_info_protocol_is_network_order() {
        let info = filter_info(0xbd, 0x0003);
        let mut msg = TcMessage::default();
        msg.header.info = info;
        assert_eq!(filter_prio_protocol(&msg), (0xbd, 0x0003));
        assert_eq!(info & 0xffff, 0x0300);
    }
}
