//! The shaping plan: validated config + owner + the kernel's tick → every tc
//! object bandwidth creates, with the exact numbers (TBF rate/limit/buffer,
//! handles, priorities, u32 keys). Pure and snapshot-tested; it never talks to
//! the kernel. Also owns the IFB name and the owner record kept in its alias.
//!
//! TBF arithmetic follows upstream (`ifb_creator.go` + vishvananda/netlink),
//! including Go's truncation order, so CHECK and tc output agree bit for bit:
//! `rate = bits/8`, `burst = bits/8`,
//! `buffer = u32(f64(u32(burst * 1e6 / rate)) * tick_in_usec)`. The queue
//! limit is ours: upstream's `u32(rate * latency_us / 1e6) + burst` lets a
//! saturated queue hold latency + burst/rate (26 ms at 10 Mbit/s with a
//! 20 kB burst and 10 ms, and whole seconds with a runtime's 512 MiB
//! burst), so it bounds the wait at the latency instead:
//! `limit = max(u32(rate * latency_us / 1e6) + FULL_FRAME, min(burst, FIRST_FLIGHT))`,
//! with a peak bucket of that size so that the kernel segments longer GSO
//! packets instead of dropping them (see [`tbf_params`]).

use std::fmt;

use ipnetwork::IpNetwork;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha512};

use cni::args::Owner;

use crate::config::{Config, RateLimit, SubnetPolicy};

/// `tick_in_usec` when /proc/net/psched reads `000003e8 00000040 000f4240 …`.
pub const TYPICAL_TICK_IN_USEC: f64 = 15.625;
/// Our u32 + mirred redirect filter on the host veth's ingress hook. A
/// priority of its own, so a filter someone else put there is never touched.
pub const REDIRECT_PRIO: u16 = 0xbd;
/// Subnet classification filters (IPv6 and IPv4 need different priorities).
pub const SUBNET_PRIO_V6: u16 = 15;
/// Priority of the IPv4 subnet filters on the HTB.
pub const SUBNET_PRIO_V4: u16 = 16;
/// `ETH_P_ALL`: the redirect filter's protocol (every packet).
pub const ETH_P_ALL: u16 = 0x0003;
/// `ETH_P_IP`, host order.
pub const ETH_P_IP: u16 = 0x0800;
/// `ETH_P_IPV6`, host order.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// HTB classes only classify; the TBF under the shaped class does the
/// shaping. This rate (100 Gbit/s) is far above what a veth carries.
pub const HTB_CLASS_RATE_BYTES: u64 = 12_500_000_000;
/// Bytes an HTB class sends per round (explicit, so the kernel does not
/// derive an oversized one from the class rate and warn).
pub const HTB_CLASS_QUANTUM: u32 = 60_000;
/// Packets the bypass class queues (IFBs have txqueuelen 0, so HTB's default
/// leaf would hold a single packet).
pub const BYPASS_FIFO_PACKETS: u32 = 1000;
/// What every IFB alias we write starts with.
pub const ALIAS_PREFIX: &str = "cni-bandwidth";

/// A tc handle `major:minor`, printed as tc prints it (hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcId {
    /// The major number (`1` of `1:30`).
    pub major: u16,
    /// The minor number (`30` of `1:30`).
    pub minor: u16,
}

impl TcId {
    /// The id `major:minor`.
    pub const fn new(major: u16, minor: u16) -> TcId {
        TcId { major, minor }
    }
    /// `TC_H_ROOT`: the root slot of a device.
    pub const ROOT: TcId = TcId::new(0xffff, 0xffff);
    /// The kernel's 32-bit form, `major << 16 | minor`.
    pub fn as_u32(self) -> u32 {
        (u32::from(self.major) << 16) | u32::from(self.minor)
    }
}

impl fmt::Display for TcId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == TcId::ROOT {
            write!(f, "root")
        } else {
            write!(f, "{:x}:{:x}", self.major, self.minor)
        }
    }
}

impl Serialize for TcId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Root qdisc handle on both devices (as upstream: `1:`).
pub const ROOT_HANDLE: TcId = TcId::new(1, 0);
/// HTB class for shaped traffic (upstream's minor 48 = 0x30).
pub const SHAPED_CLASS: TcId = TcId::new(1, 0x30);
/// HTB class for traffic that bypasses shaping.
pub const BYPASS_CLASS: TcId = TcId::new(1, 1);
/// The TBF under the shaped class when subnets split traffic.
pub const SPLIT_TBF_HANDLE: TcId = TcId::new(2, 0);
/// The fifo under the bypass class.
pub const BYPASS_FIFO_HANDLE: TcId = TcId::new(3, 0);

/// The kernel's packet-scheduler clock, from /proc/net/psched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Psched {
    /// Microseconds per scheduler tick (`tc`'s tick_in_usec).
    pub tick_in_usec: f64,
}

impl Psched {
    /// Parses `t2us us2t clock_res …` (hex), as vishvananda/netlink does.
    pub fn parse(text: &str) -> Option<Psched> {
        let mut it = text
            .split_whitespace()
            .map(|w| u32::from_str_radix(w, 16).ok());
        let t2us = it.next()??;
        let us2t = it.next()??;
        let clock_res = it.next()??;
        let (t2us, us2t) = if clock_res == 1_000_000_000 {
            (us2t, us2t)
        } else {
            (t2us, us2t)
        };
        if us2t == 0 || clock_res == 0 {
            return None;
        }
        let tick_in_usec = f64::from(t2us) / f64::from(us2t) * (f64::from(clock_res) / 1e6);
        Some(Psched { tick_in_usec })
    }
}

/// One TBF qdisc's parameters, as sent to and read back from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TbfParams {
    /// Bytes per second (`TCA_TBF_RATE64` carries it when ≥ 2^32).
    pub rate_bytes: u64,
    /// Bucket size in bytes.
    pub burst_bytes: u32,
    /// Time to send `burst_bytes` at `rate_bytes`, in scheduler ticks.
    pub buffer_ticks: u32,
    /// Bytes that may queue: `latency` worth of rate plus one full frame,
    /// at least a first flight ([`FIRST_FLIGHT`], or the burst when smaller).
    pub limit_bytes: u32,
    /// How long a packet may wait (`latencyMs`).
    pub latency_ms: u32,
    /// The rate needs `TCA_TBF_RATE64` (≥ 2^32 bytes/s).
    pub rate64: bool,
    /// The peak bucket's rate in bytes/s ([`PEAK_FACTOR`] times the rate,
    /// at least [`PEAK_FLOOR`]; `TCA_TBF_PRATE64` carries it when ≥ 2^32).
    /// The bucket's size (`TCA_TBF_PBURST`) is the limit: a TBF takes a
    /// packet whole only up to min(burst, peak bucket) and segments a longer
    /// GSO packet, so no packet it queues is longer than its queue.
    pub peak_bytes: u64,
    /// The buffer or limit did not fit in 32 bits and was clamped.
    pub clamped: bool,
}

/// One full-size frame at the common 1500-byte MTU (with its Ethernet
/// header): what the queue holds beyond `latency` worth of rate.
pub const FULL_FRAME: u32 = 1514;
/// The least queue (unless the burst is smaller): a TCP connection's first
/// flight, its initial window of ten full frames (RFC 6928), which leaves
/// as one GSO packet; also more than a 9216-byte jumbo frame, which the TBF
/// would drop, not segment, were it longer than the queue.
pub const FIRST_FLIGHT: u32 = 10 * FULL_FRAME;
/// The peak bucket refills this many times faster than the rate: it only
/// caps the length of a packet taken whole, and throttles no flow.
pub const PEAK_FACTOR: u64 = 4;
/// The least peak rate: 100 Gbit/s.
pub const PEAK_FLOOR: u64 = 12_500_000_000;

/// Computes TBF parameters: rate and buffer the way upstream does (see the
/// module doc), the limit so that a packet waits at most `latency_ms`
/// (plus one frame's time) in a saturated queue: `latency` worth of rate
/// and one full frame, but at least a TCP connection's first flight
/// ([`FIRST_FLIGHT`], or the burst when smaller), so that a new connection
/// at a low rate does not lose part of it to an idle queue. A TBF passes a
/// packet up to its burst unsegmented, and the queue drops a packet longer
/// than its limit even when empty; a peak bucket as large as the limit,
/// refilled far faster than the rate, makes the kernel segment a longer
/// GSO packet instead (`max_size = min(burst, pburst)` in `tbf_change`). Where Go would
/// silently wrap a u32 (huge runtime bursts at low rates: the buffer of
/// containerd's 4294967295-bit burst at 10 Mbit/s is 6.7e9 ticks), we clamp
/// to u32::MAX instead and say so in `clamped`.
pub fn tbf_params(limit: RateLimit, latency_ms: u32, psched: Psched) -> TbfParams {
    let rate_bytes = limit.rate_bits / 8;
    let burst_bytes = u32::try_from(limit.burst_bits / 8).unwrap_or(u32::MAX);
    let max = f64::from(u32::MAX);
    let burst_usec = f64::from(burst_bytes) * 1e6 / rate_bytes.max(1) as f64;
    let ticks = f64::from(burst_usec.min(max) as u32) * psched.tick_in_usec;
    let latency_us = 1e6 * (f64::from(latency_ms) / 1000.0);
    let queued = rate_bytes as f64 * latency_us / 1e6;
    let whole = u64::from(burst_bytes.min(FIRST_FLIGHT));
    let limit_bytes = ((queued.min(max) as u64) + u64::from(FULL_FRAME)).max(whole);
    TbfParams {
        rate_bytes,
        burst_bytes,
        buffer_ticks: ticks.min(max) as u32,
        limit_bytes: u32::try_from(limit_bytes).unwrap_or(u32::MAX),
        latency_ms,
        rate64: rate_bytes > u64::from(u32::MAX),
        peak_bytes: rate_bytes.saturating_mul(PEAK_FACTOR).max(PEAK_FLOOR),
        clamped: burst_usec >= max || ticks > max || limit_bytes > u64::from(u32::MAX),
    }
}

/// The shortest burst, in bits (whole bytes), whose TBF buffer is at least
/// one scheduler tick at `rate_bits`. The kernel refuses a TBF whose buffer
/// is 0 ticks, i.e. a burst that lasts less than a microsecond at that rate.
pub fn min_burst_bits(rate_bits: u64, latency_ms: u32, psched: Psched) -> u64 {
    let rate_bytes = (rate_bits / 8).max(1);
    let usec = (1.0 / psched.tick_in_usec).ceil().max(1.0);
    let mut bytes = ((usec * rate_bytes as f64) / 1e6).ceil().max(1.0) as u64;
    // Float rounding: step until the plan's own arithmetic agrees (a step or
    // two at most; bounded by the largest burst the config accepts).
    while bytes < u64::from(u32::MAX)
        && tbf_params(
            RateLimit {
                rate_bits,
                burst_bits: bytes * 8,
            },
            latency_ms,
            psched,
        )
        .buffer_ticks
            == 0
    {
        bytes += 1;
    }
    bytes * 8
}

/// Why the kernel would refuse one of `plan`'s shapers (a TBF buffer of 0
/// ticks: burst too short for the rate), as a config error naming the
/// direction and the smallest burst that works; `None` when it would not.
pub fn unusable_burst(config: &Config, plan: &ShapingPlan, psched: Psched) -> Option<String> {
    [
        ("ingress", config.ingress, &plan.to_pod),
        ("egress", config.egress, &plan.from_pod),
    ]
    .into_iter()
    .find_map(|(dir, limit, shaper)| {
        let (limit, shaper) = (limit?, shaper.as_ref()?);
        if shaper.tbf.buffer_ticks > 0 {
            return None;
        }
        let capped = if config.max_burst_bits == Some(limit.burst_bits) {
            " (after maxBurst)"
        } else {
            ""
        };
        Some(format!(
            "bandwidth: the {dir} burst of {} bits{capped} lasts less than one scheduler tick at \
             {dir} rate {} bit/s, so the kernel would refuse the shaper; use a burst of at least {} bits",
            limit.burst_bits,
            limit.rate_bits,
            min_burst_bits(limit.rate_bits, config.latency_ms, psched)
        ))
    })
}

/// Which end of the packet a subnet filter looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressField {
    /// The source address.
    Src,
    /// The destination address.
    Dst,
}

/// One u32 key: `(packet[off..off+4] & mask) == val`, host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct U32Match {
    #[serde(serialize_with = "hex32")]
    /// The value the masked word must equal.
    pub val: u32,
    #[serde(serialize_with = "hex32")]
    /// The mask applied to the packet's word.
    pub mask: u32,
    /// Byte offset of the word in the network header.
    pub off: i32,
}

fn hex32<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:08x}"))
}

/// A u32 filter on the HTB that sends one subnet to a class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubnetFilter {
    /// The subnet, as configured (CIDR).
    pub subnet: String,
    /// The filter's protocol (`ETH_P_IP` or `ETH_P_IPV6`), host order.
    pub protocol: u16,
    /// The filter's priority.
    pub prio: u16,
    /// Which address of the packet is matched.
    pub field: AddressField,
    /// Empty for a /0: the filter then matches every packet of the family.
    pub keys: Vec<U32Match>,
    /// The class the matching traffic goes to.
    pub flowid: TcId,
}

/// HTB root that splits traffic into a shaped and a bypass class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubnetSplit {
    /// The HTB root qdisc's handle.
    pub htb_handle: TcId,
    /// Where unmatched traffic goes.
    pub default_class: TcId,
    /// The class carrying the TBF.
    pub shaped_class: TcId,
    /// The class that bypasses shaping.
    pub bypass_class: TcId,
    /// Rate (and ceil) of both classes, bytes/s.
    pub class_rate_bytes: u64,
    /// One millisecond at the class rate, in ticks (HTB buffer and cbuffer).
    pub class_buffer_ticks: u32,
    /// Both classes' HTB quantum.
    pub class_quantum: u32,
    /// The pfifo qdisc under the bypass class.
    pub bypass_fifo: TcId,
    /// Its queue limit in packets.
    pub bypass_fifo_packets: u32,
    /// The classifying u32 filters.
    pub filters: Vec<SubnetFilter>,
}

/// Where a shaper lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Device {
    /// The host end of the pod's veth (its egress is the pod's ingress).
    HostVeth,
    /// Our IFB (the pod's egress, redirected from the host veth's ingress).
    Ifb,
}

/// One direction's qdiscs on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shaper {
    /// The device it sits on.
    pub device: Device,
    /// Its TBF's parameters.
    pub tbf: TbfParams,
    /// The TBF's handle.
    pub tbf_handle: TcId,
    /// The TBF's parent (root, or the shaped class of a split).
    pub tbf_parent: TcId,
    /// Present when `shapedSubnets`/`unshapedSubnets` split traffic.
    pub split: Option<SubnetSplit>,
}

/// The IFB and the redirect that feeds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IfbPlan {
    /// The IFB's name (`bwp` + hash of the owner).
    pub name: String,
    /// The redirect filter's priority on the veth's ingress hook.
    pub redirect_prio: u16,
    /// The redirect filter's protocol, host order.
    pub redirect_protocol: u16,
}

/// Everything one attachment's shaping consists of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShapingPlan {
    /// The owner tag (network/container/ifname).
    pub owner: String,
    /// Traffic towards the pod: root qdisc on the host veth.
    pub to_pod: Option<Shaper>,
    /// Traffic from the pod: IFB + redirect + root qdisc on the IFB.
    pub from_pod: Option<Shaper>,
    /// The IFB for `from_pod`.
    pub ifb: Option<IfbPlan>,
}

/// Builds the plan.
pub fn plan(config: &Config, owner: &Owner, psched: Psched) -> ShapingPlan {
    let shaper =
        |limit: Option<RateLimit>, device: Device, field: AddressField| -> Option<Shaper> {
            let limit = limit?;
            let tbf = tbf_params(limit, config.latency_ms, psched);
            let split = subnet_split(&config.subnets, field, psched);
            let (tbf_handle, tbf_parent) = match split {
                Some(_) => (SPLIT_TBF_HANDLE, SHAPED_CLASS),
                None => (ROOT_HANDLE, TcId::ROOT),
            };
            Some(Shaper {
                device,
                tbf,
                tbf_handle,
                tbf_parent,
                split,
            })
        };
    let to_pod = shaper(config.ingress, Device::HostVeth, AddressField::Src);
    let from_pod = shaper(config.egress, Device::Ifb, AddressField::Dst);
    let ifb = from_pod.as_ref().map(|_| IfbPlan {
        name: ifb_name(owner),
        redirect_prio: REDIRECT_PRIO,
        redirect_protocol: ETH_P_ALL,
    });
    ShapingPlan {
        owner: owner.tag(),
        to_pod,
        from_pod,
        ifb,
    }
}

fn subnet_split(policy: &SubnetPolicy, field: AddressField, psched: Psched) -> Option<SubnetSplit> {
    let (subnets, default_class, flowid) = match policy {
        SubnetPolicy::All => return None,
        SubnetPolicy::Only(s) => (s, BYPASS_CLASS, SHAPED_CLASS),
        SubnetPolicy::Except(s) => (s, SHAPED_CLASS, BYPASS_CLASS),
    };
    let filters = subnets
        .iter()
        .map(|net| subnet_filter(*net, field, flowid))
        .collect();
    Some(SubnetSplit {
        htb_handle: ROOT_HANDLE,
        default_class,
        shaped_class: SHAPED_CLASS,
        bypass_class: BYPASS_CLASS,
        class_rate_bytes: HTB_CLASS_RATE_BYTES,
        class_buffer_ticks: (1000.0 * psched.tick_in_usec) as u32,
        class_quantum: HTB_CLASS_QUANTUM,
        bypass_fifo: BYPASS_FIFO_HANDLE,
        bypass_fifo_packets: BYPASS_FIFO_PACKETS,
        filters,
    })
}

/// u32 keys for a subnet, relative to the network header: IPv4 src at 12,
/// dst at 16; IPv6 src at 8, dst at 24. Words whose mask is 0 are skipped.
pub fn subnet_filter(net: IpNetwork, field: AddressField, flowid: TcId) -> SubnetFilter {
    let (words, mask_words, protocol, prio, base): (Vec<u32>, Vec<u32>, u16, u16, i32) = match net {
        IpNetwork::V4(n) => (
            vec![u32::from(n.network())],
            vec![u32::from(n.mask())],
            ETH_P_IP,
            SUBNET_PRIO_V4,
            if field == AddressField::Src { 12 } else { 16 },
        ),
        IpNetwork::V6(n) => {
            let w = |x: u128| {
                (0..4)
                    .rev()
                    .map(move |i| (x >> (32 * i)) as u32)
                    .collect::<Vec<u32>>()
            };
            (
                w(u128::from(n.network())),
                w(u128::from(n.mask())),
                ETH_P_IPV6,
                SUBNET_PRIO_V6,
                if field == AddressField::Src { 8 } else { 24 },
            )
        }
    };
    let keys = words
        .iter()
        .zip(&mask_words)
        .zip(0i32..)
        .filter(|((_, mask), _)| **mask != 0)
        .map(|((val, mask), i)| U32Match {
            val: *val,
            mask: *mask,
            off: base + 4 * i,
        })
        .collect();
    SubnetFilter {
        subnet: net.to_string(),
        protocol,
        prio,
        field,
        keys,
        flowid,
    }
}

/// `bwp` + 12 hex digits of SHA-512(network/containerID/ifname): 15 chars,
/// never `ifb0`/`ifb1`, different for two attachments of one container.
pub fn ifb_name(owner: &Owner) -> String {
    format!("bwp{}", owner_hex(owner))
}

/// The name DEL gives `owner`'s IFB before deleting it in the background
/// (`bwz` + the same 12 hex digits): the live name is free at once for a
/// re-ADD, and DEL and GC recognise a retired IFB a killed DEL left.
pub fn retired_ifb_name(owner: &Owner) -> String {
    format!("{RETIRED_PREFIX}{}", owner_hex(owner))
}

/// The prefix of a retired IFB's name.
pub const RETIRED_PREFIX: &str = "bwz";

/// The link group DEL moves a retired IFB to ("bwz" in ASCII, then 1), so
/// the retired IFBs of DELs running side by side are deleted as one batch.
pub const RETIRED_GROUP: u32 = 0x6277_7a01;

fn owner_hex(owner: &Owner) -> String {
    let digest = Sha512::digest(owner.tag().as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// What the IFB's alias (IFLA_IFALIAS) records, so DEL and GC work without
/// prevResult or netns: the owner, the host veth, and whether we created the
/// ingress qdisc on it (then DEL removes it when no other filter is left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfbAlias {
    /// Who the IFB belongs to.
    pub owner: Owner,
    /// The host veth it shapes.
    pub host_veth: String,
    /// Whether we created the veth's ingress qdisc.
    pub created_ingress_qdisc: bool,
}

impl IfbAlias {
    /// `cni-bandwidth <net>/<ctr>/<if> veth=<name> ingress-qdisc=ours|theirs`
    pub fn render(&self) -> String {
        format!(
            "{ALIAS_PREFIX} {} veth={} ingress-qdisc={}",
            self.owner.tag(),
            self.host_veth,
            if self.created_ingress_qdisc {
                "ours"
            } else {
                "theirs"
            }
        )
    }

    /// Reads what [`IfbAlias::render`] wrote; `None` for anything else.
    pub fn parse(text: &str) -> Option<IfbAlias> {
        let mut words = text.split_whitespace();
        if words.next()? != ALIAS_PREFIX {
            return None;
        }
        let owner = Owner::parse_tag(words.next()?)?;
        let mut alias = IfbAlias {
            owner,
            host_veth: String::new(),
            created_ingress_qdisc: false,
        };
        for w in words {
            match w.split_once('=') {
                Some(("veth", v)) => alias.host_veth = v.to_string(),
                Some(("ingress-qdisc", v)) => alias.created_ingress_qdisc = v == "ours",
                _ => {}
            }
        }
        Some(alias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use serde_json::json;

    const TICK: Psched = Psched {
        tick_in_usec: TYPICAL_TICK_IN_USEC,
    };

    fn rl(rate_bits: u64, burst_bits: u64) -> RateLimit {
        RateLimit {
            rate_bits,
            burst_bits,
        }
    }

    #[test]
    fn psched_parses_like_go() {
        let p = Psched::parse("000003e8 00000040 000f4240 3b9aca00\n").unwrap();
        assert_eq!(p.tick_in_usec, 15.625);
        assert_eq!(Psched::parse("junk"), None);
        assert_eq!(Psched::parse("1 0 1"), None);
    }

    #[test]
    fn min_burst_is_the_first_burst_with_a_nonzero_buffer() {
        for rate in [
            8,
            1_000_000,
            10_000_000_000,
            100_000_000_000,
            123_456_789_012,
        ] {
            let min = min_burst_bits(rate, 25, TICK);
            assert!(
                tbf_params(rl(rate, min), 25, TICK).buffer_ticks > 0,
                "{rate}"
            );
            if min > 8 {
                assert_eq!(
                    tbf_params(rl(rate, min - 8), 25, TICK).buffer_ticks,
                    0,
                    "{rate}"
                );
            }
        }
        // 100 Gbit/s is 12.5 GB/s: a microsecond is 12 500 bytes.
        assert_eq!(min_burst_bits(100_000_000_000, 25, TICK), 100_000);
        // A coarse clock (1 tick per 4 µs) needs four microseconds' worth.
        let coarse = Psched { tick_in_usec: 0.25 };
        assert_eq!(min_burst_bits(8_000_000, 25, coarse), 32);
    }

    #[test]
    fn a_burst_shorter_than_a_tick_is_a_config_error_naming_the_direction() {
        let conf = |extra: &str| {
            crate::config::parse(
                format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"bandwidth",{extra}}}"#)
                    .as_bytes(),
            )
            .unwrap()
        };
        let ok = conf(
            r#""ingressRate":100000000000,"ingressBurst":100000,"egressRate":8,"egressBurst":8"#,
        );
        assert_eq!(unusable_burst(&ok, &plan(&ok, &owner(), TICK), TICK), None);
        let bad = conf(
            r#""ingressRate":1000000,"ingressBurst":80000,"egressRate":100000000000,"egressBurst":99992"#,
        );
        let msg = unusable_burst(&bad, &plan(&bad, &owner(), TICK), TICK).unwrap();
        assert!(msg.contains("egress burst of 99992 bits"), "{msg}");
        assert!(msg.contains("at least 100000 bits"), "{msg}");
        assert!(!msg.contains("maxBurst"), "{msg}");
        let capped = conf(r#""maxBurst":8,"ingressRate":100000000000,"ingressBurst":800000"#);
        let msg = unusable_burst(&capped, &plan(&capped, &owner(), TICK), TICK).unwrap();
        assert!(
            msg.contains("ingress burst of 8 bits (after maxBurst)"),
            "{msg}"
        );
    }

    #[test]
    fn upstream_examples() {
        // Rate and buffer as upstream; the limit is ours: latency worth of
        // rate plus one full frame, at least the burst (the largest packet
        // the TBF takes whole).
        let p = tbf_params(rl(8, 8), 25, TICK);
        assert_eq!((p.rate_bytes, p.limit_bytes), (1, FULL_FRAME));
        let p = tbf_params(rl(16, 8), 25, TICK);
        assert_eq!((p.rate_bytes, p.limit_bytes), (2, FULL_FRAME));
        let p = tbf_params(rl(8000, 80), 25, TICK);
        assert_eq!((p.rate_bytes, p.limit_bytes), (1000, 25 + FULL_FRAME));
        // Golden observation: 1 Mbit/s, 80 000 bits ⇒ tc "burst 10000b lat 25ms".
        let p = tbf_params(rl(1_000_000, 80_000), 25, TICK);
        assert_eq!(p.rate_bytes, 125_000);
        assert_eq!(p.buffer_ticks, 1_250_000); // 80 ms at 15.625 ticks/µs
        assert_eq!(p.limit_bytes, 10_000, "the burst: 3125 + one frame is less");
        assert_eq!(p.peak_bytes, PEAK_FLOOR);
    }

    #[test]
    fn the_limit_bounds_the_wait_at_the_latency() {
        // 10 Mbit/s, a 20 kB burst, 10 ms: upstream's limit (32 500 bytes)
        // holds 26 ms; ours a first flight, 15 140 bytes, 12.1 ms (GSO
        // packets longer than that are segmented: the peak bucket is the
        // limit). It used to be the burst, 16 ms.
        let p = tbf_params(rl(10_000_000, 160_000), 10, TICK);
        assert_eq!(p.limit_bytes, FIRST_FLIGHT, "12 500 + one frame is less");
        let p = tbf_params(rl(10_000_000, 100_000), 10, TICK);
        assert_eq!(p.limit_bytes, 12_500 + FULL_FRAME);
        // containerd's burst: upstream's limit is 512 MiB (7 minutes at
        // 10 Mbit/s); ours the latency's, 26 ms.
        let p = tbf_params(rl(10_000_000, u64::from(u32::MAX)), 25, TICK);
        assert_eq!(p.limit_bytes, 31_250 + FULL_FRAME);
        // Low rates: a first flight at least.
        let p = tbf_params(rl(1_000_000, u64::from(u32::MAX)), 10, TICK);
        assert_eq!(p.limit_bytes, FIRST_FLIGHT);
        // High rates: the latency decides.
        let p = tbf_params(rl(1_000_000_000, u64::from(u32::MAX)), 25, TICK);
        assert_eq!(p.limit_bytes, 3_125_000 + FULL_FRAME);
    }

    #[test]
    fn rate64_above_u32_bytes() {
        let p = tbf_params(rl(8 * (1u64 << 32), 8_000_000), 25, TICK);
        assert!(p.rate64);
        assert_eq!(p.peak_bytes, PEAK_FACTOR << 32, "above the floor");
        assert_eq!(p.rate_bytes, 1u64 << 32);
        let p = tbf_params(rl(8 * (u64::from(u32::MAX)), 8_000_000), 25, TICK);
        assert!(!p.rate64);
    }

    #[test]
    fn runtime_bursts_clamp_instead_of_wrapping() {
        // containerd: 4294967295 bits at 10 Mbit/s; Go wraps the buffer.
        let p = tbf_params(rl(10_000_000, u64::from(u32::MAX)), 25, TICK);
        assert!(p.clamped);
        assert_eq!(p.buffer_ticks, u32::MAX);
        // CRI-O: just under 4 GB; Go wraps the limit to a few KB, ours is
        // the latency's.
        let p = tbf_params(rl(15_000_000, u64::from(u32::MAX) * 8 - 1), 25, TICK);
        assert_eq!(p.limit_bytes, 46_875 + FULL_FRAME);
        assert!(p.clamped);
        assert!(!tbf_params(rl(10_000_000, 100_000), 25, TICK).clamped);
    }

    #[test]
    fn latency_changes_limit_only() {
        let a = tbf_params(rl(10_000_000, 80_000), 25, TICK);
        let b = tbf_params(rl(10_000_000, 80_000), 5, TICK);
        assert_eq!(a.buffer_ticks, b.buffer_ticks);
        assert_eq!(a.limit_bytes, 31_250 + FULL_FRAME);
        assert_eq!(b.limit_bytes, 10_000, "at least the burst");
    }

    #[test]
    fn tbf_table_snapshot() {
        let rows: Vec<serde_json::Value> = [
            (8u64, 8u64, 25u32),
            (16, 8, 25),
            (8000, 80, 25),
            (1_000_000, 80_000, 25),
            (2_000_000, 160_000, 25),
            (10_000_000, 100_000, 25),
            (50_000_000, 400_000, 25),
            (10_000_000, u64::from(u32::MAX), 25),
            (15_000_000, u64::from(u32::MAX) * 8 - 1, 25),
            (10_000_000, 800_000, 5),
            (40_000_000_000, 8_000_000, 25),
            (100_000_000_000, 80_000_000, 25),
        ]
        .iter()
        .map(|&(r, b, l)| {
            json!({"rate_bits": r, "burst_bits": b, "tbf": tbf_params(rl(r, b), l, TICK)})
        })
        .collect();
        insta::assert_json_snapshot!("tbf_table", rows);
    }

    fn owner() -> Owner {
        Owner::new("bwtest", "ctr3", "eth0")
    }

    #[test]
    fn plan_snapshots() {
        let cases = [
            (
                "both",
                json!({"ingressRate": 1_000_000, "ingressBurst": 80_000, "egressRate": 2_000_000, "egressBurst": 160_000}),
            ),
            (
                "ingress_only",
                json!({"ingressRate": 8000, "ingressBurst": 80}),
            ),
            (
                "egress_only_runtime",
                json!({"runtimeConfig": {"bandwidth": {"egressRate": 10_000_000, "egressBurst": 4_294_967_295u64}}, "maxBurst": 400_000, "latencyMs": 10}),
            ),
            (
                "unshaped_subnets",
                json!({"ingressRate": 10_000_000, "ingressBurst": 100_000, "egressRate": 10_000_000, "egressBurst": 100_000,
                "unshapedSubnets": ["10.0.0.0/8", "198.18.1.0/24", "fd00:1::/64", "::/0"]}),
            ),
            (
                "shaped_subnets",
                json!({"egressRate": 10_000_000, "egressBurst": 100_000, "shapedSubnets": ["0.0.0.0/0", "2001:db8::/33"]}),
            ),
        ];
        for (name, raw) in cases {
            let c = config::parse(raw.to_string().as_bytes()).unwrap();
            let p = plan(&c, &owner(), TICK);
            insta::assert_json_snapshot!(format!("plan_{name}"), p);
        }
    }

    #[test]
    fn subnet_keys() {
        let f = subnet_filter(
            "10.1.0.0/16".parse().unwrap(),
            AddressField::Dst,
            BYPASS_CLASS,
        );
        assert_eq!(
            f.keys,
            vec![U32Match {
                val: 0x0a01_0000,
                mask: 0xffff_0000,
                off: 16
            }]
        );
        assert_eq!((f.protocol, f.prio), (ETH_P_IP, SUBNET_PRIO_V4));
        let f = subnet_filter(
            "10.1.0.0/16".parse().unwrap(),
            AddressField::Src,
            BYPASS_CLASS,
        );
        assert_eq!(f.keys[0].off, 12);
        let f = subnet_filter(
            "fd00:1:2::/48".parse().unwrap(),
            AddressField::Src,
            SHAPED_CLASS,
        );
        assert_eq!(
            f.keys,
            vec![
                U32Match {
                    val: 0xfd00_0001,
                    mask: 0xffff_ffff,
                    off: 8
                },
                U32Match {
                    val: 0x0002_0000,
                    mask: 0xffff_0000,
                    off: 12
                },
            ]
        );
        let f = subnet_filter("::/0".parse().unwrap(), AddressField::Dst, SHAPED_CLASS);
        assert!(f.keys.is_empty());
        let f = subnet_filter(
            "fd00::1/128".parse().unwrap(),
            AddressField::Dst,
            SHAPED_CLASS,
        );
        assert_eq!(f.keys.len(), 4);
        assert_eq!(
            f.keys[3],
            U32Match {
                val: 1,
                mask: 0xffff_ffff,
                off: 36
            }
        );
    }

    #[test]
    fn ifb_names() {
        let n = ifb_name(&owner());
        assert_eq!(n.len(), 15);
        assert!(n.starts_with("bwp"));
        assert_ne!(n, ifb_name(&Owner::new("bwtest", "ctr3", "net1")));
        let retired = retired_ifb_name(&owner());
        assert_eq!(retired.len(), n.len());
        assert_eq!(retired[3..], n[3..]);
        assert!(retired.starts_with(RETIRED_PREFIX));
        assert_ne!(n, ifb_name(&Owner::new("bwtest", "ctr4", "eth0")));
        assert_eq!(n, ifb_name(&owner()));
    }

    #[test]
    fn alias_round_trips() {
        let a = IfbAlias {
            owner: owner(),
            host_veth: "veth1234".into(),
            created_ingress_qdisc: true,
        };
        assert_eq!(
            a.render(),
            "cni-bandwidth bwtest/ctr3/eth0 veth=veth1234 ingress-qdisc=ours"
        );
        assert_eq!(IfbAlias::parse(&a.render()), Some(a));
        assert_eq!(IfbAlias::parse("something else"), None);
        assert_eq!(IfbAlias::parse("cni-bandwidth"), None);
    }
}
