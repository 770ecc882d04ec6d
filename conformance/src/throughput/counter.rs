//! The kernel byte counters a rate is read from ([`Counter`] at a
//! [`CountAt`]): the TBF qdisc's own counter or a link's, over a netlink
//! socket opened in its netns, each sample timestamped on both sides of its
//! request. Which devices carry a TBF is found here too. A TBF is found in
//! one dump of the netns's qdiscs when the counter opens, then read where it
//! is attached with one request per sample: the dump walks every device's
//! qdiscs (3000 beside 1000 shaped pods, longer than a sample may take).

use std::path::Path;
use std::time::{Duration, Instant};

use cni::rtnl::{link_kind, link_name, Rtnl};
use netlink_packet_route::link::{InfoKind, LinkAttribute};
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcStats2};

use super::{summarize, MeasureError, Throughput, PARTS, SAMPLE_BRACKET};

/// Where the kernel counts the measured flow's bytes (device names in the
/// netns a [`Counter`] is opened in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountAt {
    /// The bytes the TBF qdisc on this device released (what it charged).
    Tbf(String),
    /// The device's transmitted bytes.
    LinkTx(String),
    /// The device's received bytes.
    LinkRx(String),
}

impl std::fmt::Display for CountAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CountAt::Tbf(d) => write!(f, "the tbf qdisc on {d}"),
            CountAt::LinkTx(d) => write!(f, "{d} tx"),
            CountAt::LinkRx(d) => write!(f, "{d} rx"),
        }
    }
}

/// A kernel byte counter read over a netlink socket opened in its netns.
pub struct Counter {
    rtnl: Rtnl,
    ifindex: u32,
    at: CountAt,
    /// Where the TBF is attached (its parent), for [`CountAt::Tbf`].
    tbf_parent: TcHandle,
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counter({})", self.at)
    }
}

fn is_tbf(q: &TcMessage) -> bool {
    q.attributes
        .iter()
        .any(|a| matches!(a, TcAttribute::Kind(k) if k == "tbf"))
}

fn qdisc_bytes(q: &TcMessage) -> Option<u64> {
    let basic = q.attributes.iter().find_map(|a| match a {
        TcAttribute::Stats2(s) => s.iter().find_map(|s| match s {
            TcStats2::Basic(b) => Some(b.bytes),
            _ => None,
        }),
        _ => None,
    });
    basic.or_else(|| {
        q.attributes.iter().find_map(|a| match a {
            TcAttribute::Stats(s) => Some(s.bytes),
            _ => None,
        })
    })
}

fn all_qdiscs(rtnl: &Rtnl) -> Result<Vec<TcMessage>, MeasureError> {
    rtnl.qdiscs()
        .map_err(|e| MeasureError::netlink("dumping qdiscs", e))
}

/// The devices in `netns` that carry a TBF qdisc, as (name, is an IFB).
pub fn tbf_devices(netns: &Path) -> Result<Vec<(String, bool)>, MeasureError> {
    let rtnl = Rtnl::open_in(netns)
        .map_err(|e| MeasureError::netlink(format!("netlink in {}", netns.display()), e))?;
    let links = rtnl
        .links()
        .map_err(|e| MeasureError::netlink("listing links", e))?;
    let mut out: Vec<(String, bool)> = all_qdiscs(&rtnl)?
        .iter()
        .filter(|q| is_tbf(q))
        .filter_map(|q| {
            let link = links
                .iter()
                .find(|l| i64::from(l.header.index) == i64::from(q.header.index))?;
            Some((
                link_name(link)?.to_string(),
                link_kind(link) == Some(InfoKind::Ifb),
            ))
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The counters of the one shaped pod in `netns` (the host netns where
/// bandwidth ran): (towards the pod: the TBF on its host veth, from the
/// pod: the TBF on its IFB). An error names what is there instead.
pub fn shaper_counters(netns: &Path) -> Result<(CountAt, CountAt), MeasureError> {
    let devs = tbf_devices(netns)?;
    let one = |ifb: bool| -> Result<CountAt, MeasureError> {
        let found: Vec<&String> = devs
            .iter()
            .filter(|(_, i)| *i == ifb)
            .map(|(n, _)| n)
            .collect();
        match found.as_slice() {
            [dev] => Ok(CountAt::Tbf(dev.to_string())),
            _ => Err(MeasureError::Incomplete(format!(
                "expected one tbf qdisc on {} in {}, found tbf on {devs:?}",
                if ifb { "an IFB" } else { "a veth" },
                netns.display()
            ))),
        }
    };
    Ok((one(false)?, one(true)?))
}

impl Counter {
    /// A counter in the netns at `netns`.
    pub fn open(netns: &Path, at: CountAt) -> Result<Counter, MeasureError> {
        let rtnl = Rtnl::open_in(netns)
            .map_err(|e| MeasureError::netlink(format!("netlink in {}", netns.display()), e))?;
        let dev = match &at {
            CountAt::Tbf(d) | CountAt::LinkTx(d) | CountAt::LinkRx(d) => d,
        };
        let link = rtnl
            .link_by_name(dev)
            .map_err(|e| MeasureError::netlink(format!("looking up {dev}"), e))?
            .ok_or_else(|| {
                MeasureError::Incomplete(format!("no link {dev} in {}", netns.display()))
            })?;
        let ifindex = link.header.index;
        let tbf_parent = match &at {
            CountAt::Tbf(_) => all_qdiscs(&rtnl)?
                .iter()
                .find(|q| i64::from(q.header.index) == i64::from(ifindex) && is_tbf(q))
                .map(|q| q.header.parent)
                .ok_or_else(|| {
                    MeasureError::Incomplete(format!(
                        "no tbf qdisc on {dev} in {}",
                        netns.display()
                    ))
                })?,
            _ => TcHandle::ROOT,
        };
        let counter = Counter {
            rtnl,
            ifindex,
            at,
            tbf_parent,
        };
        counter.read()?;
        Ok(counter)
    }

    /// The bytes queued in the TBF right now (its backlog; 0 for a link
    /// counter): a packet joining the tail waits backlog / rate.
    pub fn backlog(&self) -> Result<u64, MeasureError> {
        if !matches!(self.at, CountAt::Tbf(_)) {
            return Ok(0);
        }
        self.tbf()?
            .and_then(|q| {
                q.attributes.iter().find_map(|a| match a {
                    TcAttribute::Stats2(s) => s.iter().find_map(|s| match s {
                        TcStats2::Queue(q) => Some(u64::from(q.backlog)),
                        _ => None,
                    }),
                    TcAttribute::Stats(s) => Some(u64::from(s.backlog)),
                    _ => None,
                })
            })
            .ok_or_else(|| MeasureError::Incomplete(format!("no backlog for {}", self.at)))
    }

    /// The TBF where it was found at open, with its statistics now (`None`
    /// when something else is attached there now).
    fn tbf(&self) -> Result<Option<TcMessage>, MeasureError> {
        let q = self
            .rtnl
            .qdisc_at(self.ifindex, self.tbf_parent)
            .map_err(|e| MeasureError::netlink(format!("reading {}", self.at), e))?;
        Ok(q.filter(is_tbf))
    }

    /// The counter's value now.
    pub fn read(&self) -> Result<u64, MeasureError> {
        let missing = || MeasureError::Incomplete(format!("no byte counter for {}", self.at));
        match &self.at {
            CountAt::Tbf(_) => self
                .tbf()?
                .as_ref()
                .and_then(qdisc_bytes)
                .ok_or_else(missing),
            CountAt::LinkTx(d) | CountAt::LinkRx(d) => {
                let tx = matches!(self.at, CountAt::LinkTx(_));
                // link_by_name skips only per-VF stats: the link's own
                // IFLA_STATS64 is always there.
                let link = self
                    .rtnl
                    .link_by_index(self.ifindex)
                    .map_err(|e| MeasureError::netlink(format!("reading {d}"), e))?
                    .ok_or_else(missing)?;
                link.attributes
                    .iter()
                    .find_map(|a| match a {
                        LinkAttribute::Stats64(s) => Some(if tx { s.tx_bytes } else { s.rx_bytes }),
                        _ => None,
                    })
                    .ok_or_else(missing)
            }
        }
    }

    /// A reading timestamped at the middle of its request, taken again
    /// while the request took longer than [`SAMPLE_BRACKET`] (the thread
    /// was preempted around it).
    fn sample(&self) -> Result<CounterSample, MeasureError> {
        let mut widest = Duration::ZERO;
        for _ in 0..1000 {
            let before = Instant::now();
            let bytes = self.read()?;
            let took = before.elapsed();
            if took <= SAMPLE_BRACKET {
                return Ok(CounterSample {
                    at: before + took / 2,
                    bytes,
                });
            }
            widest = widest.max(took);
        }
        Err(MeasureError::Incomplete(format!(
            "no reading of {} took less than {SAMPLE_BRACKET:?} in 1000 tries (up to {widest:?})",
            self.at
        )))
    }

    /// Counts a window of `window` that opens `warmup` after the counter
    /// first moves, sampled at its start, at each part boundary and at its
    /// end. Traffic must be flowing; fails when the counter does not move
    /// within `limit`.
    pub fn window(
        &self,
        warmup: Duration,
        window: Duration,
        limit: Duration,
    ) -> Result<Throughput, MeasureError> {
        let start = Instant::now();
        let idle = self.sample()?;
        let moved = loop {
            let s = self.sample()?;
            if s.bytes > idle.bytes {
                break s;
            }
            if start.elapsed() > limit {
                return Err(MeasureError::Incomplete(format!(
                    "{} did not move within {limit:?}",
                    self.at
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        std::thread::sleep(warmup);
        let open = self.sample()?;
        let mut samples = vec![open];
        for k in 1..=PARTS {
            let boundary = open.at + window.mul_f64(k as f64 / PARTS as f64);
            if let Some(wait) = boundary.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            samples.push(self.sample()?);
        }
        Ok(summarize(
            &samples,
            open.at.duration_since(moved.at).as_secs_f64(),
        ))
    }
}

/// One reading of a kernel byte counter.
#[derive(Debug, Clone, Copy)]
pub(super) struct CounterSample {
    pub(super) at: Instant,
    pub(super) bytes: u64,
}
