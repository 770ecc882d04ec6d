//! Shaped-rate measurement that a loaded machine cannot fake: a TCP sink and
//! blaster pair that only generate traffic (run in-process on threads that
//! entered a netns, or as the `cni-conformance tool sink|blast` processes),
//! the kernel counter the rate is read from, and the judgement of a measured
//! rate against bounds.
//!
//! Why it is robust on a busy 2-core machine:
//! - The rate is read where the shaper works: the byte counter of the TBF
//!   qdisc itself ([`CountAt::Tbf`]; the kernel updates it when the TBF
//!   releases a packet, in the bytes the TBF charges, so no header
//!   arithmetic), or a link's counter for unshaped flows. It is sampled over
//!   netlink with a timestamp taken on both sides of the request (a sample
//!   whose bracket exceeds [`SAMPLE_BRACKET`] is taken again). Nothing any
//!   process does late (reading, writing, being descheduled) moves a byte in
//!   or out of the window, and no queue behind the shaper can release a
//!   burst into it.
//! - Both sockets get [`BUFFER`]-sized buffers (`SO_*BUFFORCE`, as root), so
//!   a starved sending or receiving process does not idle the shaper.
//! - The window starts a warm-up after the counter first moves (the TBF
//!   burst, slow start) and the traffic is stopped only after the window, so
//!   the window lies inside the backlogged part of the transfer.
//! - Over any interval a TBF releases at most rate × time + one burst; what
//!   a loaded machine can still do is delay the kernel's own transmit work
//!   (softirqs pushed to `ksoftirqd`, which competes with every process),
//!   which idles the link: slower, never faster. So the upper bound is
//!   judged on the whole window's mean (nothing excuses a shaper letting
//!   more through), the lower bound on the best of its [`PARTS`] parts (a
//!   part without a stall shows the rate the shaper grants, plus at most one
//!   burst), and [`measure_within`] measures again — saying why — only when
//!   even the best part is below.
//!
//! Never chooses where to send: callers pass loopback or addresses inside
//! namespaces they created.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cni::rtnl::{Rtnl, RtnlError};
use netlink_packet_core::NLM_F_DUMP;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::tc::{TcAttribute, TcMessage, TcStats2};
use netlink_packet_route::RouteNetlinkMessage;

/// Socket buffer asked for on both ends (the kernel doubles it for overhead).
pub const BUFFER: usize = 4 << 20;
/// A counter sample whose request took longer than this is taken again.
pub const SAMPLE_BRACKET: Duration = Duration::from_millis(2);
/// Measurements [`measure_within`] makes at most.
pub const ATTEMPTS: usize = 3;
/// A shaped rate must be within ±this of the configured one.
pub const TOLERANCE: f64 = 0.10;
/// Most bytes a blaster sends.
pub const MAX_BYTES: u64 = 1 << 36;
/// The window is also judged in this many consecutive parts.
pub const PARTS: usize = 3;

/// Why a measurement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Netlink { what: String, source: RtnlError },
    #[error("{0}")]
    Incomplete(String),
}

impl MeasureError {
    fn io(what: impl Into<String>, source: std::io::Error) -> MeasureError {
        MeasureError::Io {
            what: what.into(),
            source,
        }
    }

    fn netlink(what: impl Into<String>, source: RtnlError) -> MeasureError {
        MeasureError::Netlink {
            what: what.into(),
            source,
        }
    }

    /// Connection refused (nothing listens): its own exit code in the tool.
    pub fn is_refused(&self) -> bool {
        matches!(self, MeasureError::Io { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused)
    }
}

/// `SO_SNDBUFFORCE` / `SO_RCVBUFFORCE` (asm-generic/socket.h).
const SO_SNDBUFFORCE: libc::c_int = 32;
const SO_RCVBUFFORCE: libc::c_int = 33;

/// Sets a socket buffer to [`BUFFER`] with the `FORCE` option (needs
/// CAP_NET_ADMIN), else with the plain one (capped by `net.core.*mem_max`).
fn set_buffer(fd: &impl AsRawFd, force: libc::c_int, plain: libc::c_int) {
    let want = BUFFER as libc::c_int;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for opt in [force, plain] {
        // SAFETY: `fd` is an open socket borrowed for the whole call; the
        // option value is a c_int that lives on this stack frame.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&want as *const libc::c_int).cast(),
                len,
            )
        };
        if r == 0 {
            return;
        }
    }
}

/// A listener for [`sink`] on `addr` (port 0: any), its receive buffer set
/// before any connection arrives (accepted sockets inherit it, and the
/// window scale is chosen from it at the handshake).
pub fn sink_listener(addr: SocketAddr) -> Result<TcpListener, MeasureError> {
    let l = TcpListener::bind(addr).map_err(|e| MeasureError::io(format!("binding {addr}"), e))?;
    set_buffer(&l, SO_RCVBUFFORCE, libc::SO_RCVBUF);
    Ok(l)
}

/// Accepts one connection and reads it until EOF, `limit`, or `stop`
/// (then the connection is dropped, which also stops the blaster); returns
/// the bytes read.
pub fn sink(
    listener: &TcpListener,
    limit: Duration,
    stop: &AtomicBool,
) -> Result<u64, MeasureError> {
    let start = Instant::now();
    listener
        .set_nonblocking(true)
        .map_err(|e| MeasureError::io("listener", e))?;
    let mut conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if start.elapsed() > limit || stop.load(Ordering::Relaxed) {
                    return Err(MeasureError::Incomplete(format!(
                        "no sender connected within {:?}",
                        start.elapsed()
                    )));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(MeasureError::io("accepting", e)),
        }
    };
    conn.set_nonblocking(false)
        .and_then(|_| conn.set_read_timeout(Some(Duration::from_millis(100))))
        .map_err(|e| MeasureError::io("sink socket", e))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    while start.elapsed() < limit && !stop.load(Ordering::Relaxed) {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(MeasureError::io("reading", e)),
        }
    }
    Ok(bytes)
}

/// Writes as fast as the socket takes until `limit`, `stop`, or the sink
/// drops the connection; returns the payload bytes written.
pub fn blast(to: SocketAddr, limit: Duration, stop: &AtomicBool) -> Result<u64, MeasureError> {
    let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .map_err(|e| MeasureError::io(format!("connecting to {to}"), e))?;
    set_buffer(&conn, SO_SNDBUFFORCE, libc::SO_SNDBUF);
    conn.set_write_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| MeasureError::io("socket", e))?;
    let chunk = vec![0x5au8; 64 * 1024];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < limit && sent < MAX_BYTES && !stop.load(Ordering::Relaxed) {
        match conn.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // The sink is done and dropped the connection.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                return Ok(sent)
            }
            Err(e) => return Err(MeasureError::io(format!("writing to {to}"), e)),
        }
    }
    let _ = conn.shutdown(Shutdown::Both);
    Ok(sent)
}

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
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counter({})", self.at)
    }
}

fn link_attr<T>(link: &LinkMessage, f: impl Fn(&LinkAttribute) -> Option<T>) -> Option<T> {
    link.attributes.iter().find_map(f)
}

fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn is_ifb(link: &LinkMessage) -> bool {
    link_attr(link, |a| match a {
        LinkAttribute::LinkInfo(infos) => Some(
            infos
                .iter()
                .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Ifb))),
        ),
        _ => None,
    })
    .unwrap_or(false)
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
    Ok(rtnl
        .request(
            RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()),
            NLM_F_DUMP,
        )
        .map_err(|e| MeasureError::netlink("dumping qdiscs", e))?
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewQueueDiscipline(q) => Some(q),
            _ => None,
        })
        .collect())
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
            Some((link_name(link)?.to_string(), is_ifb(link)))
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
        let counter = Counter {
            rtnl,
            ifindex: link.header.index,
            at,
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
        all_qdiscs(&self.rtnl)?
            .iter()
            .filter(|q| i64::from(q.header.index) == i64::from(self.ifindex) && is_tbf(q))
            .find_map(|q| {
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

    /// The counter's value now.
    pub fn read(&self) -> Result<u64, MeasureError> {
        let missing = || MeasureError::Incomplete(format!("no byte counter for {}", self.at));
        match &self.at {
            CountAt::Tbf(_) => all_qdiscs(&self.rtnl)?
                .iter()
                .filter(|q| i64::from(q.header.index) == i64::from(self.ifindex) && is_tbf(q))
                .find_map(qdisc_bytes)
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
                link_attr(&link, |a| match a {
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
struct CounterSample {
    at: Instant,
    bytes: u64,
}

/// Bytes counted over a span of time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Span {
    pub bytes: u64,
    pub seconds: f64,
}

impl Span {
    pub fn bps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 * 8.0 / self.seconds
        } else {
            0.0
        }
    }
}

/// What a [`Counter::window`] counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Throughput {
    /// The whole window.
    pub window: Span,
    /// The window's consecutive parts, between consecutive samples.
    pub parts: Vec<Span>,
    /// Seconds from the counter's first move to the window's start.
    pub warmup_seconds: f64,
}

/// The rates (bit/s) one measurement yields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Over the whole window.
    pub mean: f64,
    /// The best part (parts shorter than half their share ignored).
    pub best_part: f64,
}

impl Throughput {
    pub fn rates(&self) -> Rates {
        let share = self.window.seconds / self.parts.len().max(1) as f64;
        let best_part = self
            .parts
            .iter()
            .filter(|p| p.seconds >= share / 2.0)
            .map(Span::bps)
            .fold(0.0, f64::max);
        Rates {
            mean: self.window.bps(),
            best_part,
        }
    }
}

/// The window and its parts from consecutive samples (first and last bound
/// the window).
fn summarize(samples: &[CounterSample], warmup_seconds: f64) -> Throughput {
    let span = |a: &CounterSample, b: &CounterSample| Span {
        bytes: b.bytes.saturating_sub(a.bytes),
        seconds: b.at.duration_since(a.at).as_secs_f64(),
    };
    let parts = samples.windows(2).map(|w| span(&w[0], &w[1])).collect();
    let window = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => span(a, b),
        _ => Span {
            bytes: 0,
            seconds: 0.0,
        },
    };
    Throughput {
        window,
        parts,
        warmup_seconds,
    }
}

/// Generates traffic from the netns `from` to `to` (an address in the
/// netns `to_ns`; port 0 picks a free one) on two threads while `counter`
/// counts a window (`warmup`, then `window`), then stops it.
pub fn measure_in_process(
    from: &Path,
    to_ns: &Path,
    to: SocketAddr,
    counter: &Counter,
    warmup: Duration,
    window: Duration,
) -> Result<Throughput, MeasureError> {
    let limit = window + warmup + Duration::from_secs(30);
    let stop = AtomicBool::new(false);
    let stop = &stop;
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let receiver = s.spawn(move || {
            let listener = cni::netns::NetnsGuard::enter(to_ns)
                .map_err(|e| MeasureError::Incomplete(format!("entering {}: {e}", to_ns.display())))
                .and_then(|_guard| sink_listener(to));
            let port = listener
                .as_ref()
                .map_err(|e| e.to_string())
                .and_then(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string()));
            let _ = tx.send(port);
            sink(&listener?, limit, stop)
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(port)) => port,
            other => {
                stop.store(true, Ordering::Relaxed);
                return match receiver.join() {
                    Ok(Err(e)) => Err(e),
                    _ => Err(MeasureError::Incomplete(format!(
                        "the sink in {} did not start: {other:?}",
                        to_ns.display()
                    ))),
                };
            }
        };
        let to = SocketAddr::new(to.ip(), port);
        let sender = s.spawn(move || {
            let _guard = cni::netns::NetnsGuard::enter(from).map_err(|e| {
                MeasureError::Incomplete(format!("entering {}: {e}", from.display()))
            })?;
            blast(to, limit, stop)
        });
        let counted = counter.window(warmup, window, limit);
        stop.store(true, Ordering::Relaxed);
        let sent = sender.join();
        let received = receiver.join();
        let panicked = || MeasureError::Incomplete("a traffic thread panicked".into());
        // A failure of the traffic explains a counter that did not move.
        received.map_err(|_| panicked())??;
        sent.map_err(|_| panicked())??;
        counted
    })
}

/// The ±[`TOLERANCE`] bounds around a configured rate.
pub fn shaped_bounds(configured: f64) -> (f64, f64) {
    (
        configured * (1.0 - TOLERANCE),
        configured * (1.0 + TOLERANCE),
    )
}

fn mbit(bps: f64) -> String {
    if bps.is_finite() {
        format!("{:.2}", bps / 1e6)
    } else {
        "∞".into()
    }
}

/// "mean 9.87, best part 10.08 Mbit/s (bounds 9.00-11.00)" and whether the
/// mean is not above `high` and the best part not below `low`.
pub fn judge(r: Rates, low: f64, high: f64) -> (bool, String) {
    (
        r.mean <= high && r.best_part >= low,
        format!(
            "mean {}, best part {} Mbit/s (bounds {}-{})",
            mbit(r.mean),
            mbit(r.best_part),
            mbit(low),
            mbit(high)
        ),
    )
}

/// Measures until a result is within `[low, high]` ([`judge`]), at most
/// [`ATTEMPTS`] times. A mean above `high` fails at once: a shaper that
/// lets more through than configured is never excused. Only a best part
/// below `low` is measured again, and the returned text says why. `Ok` and
/// `Err` both carry every attempt.
pub fn measure_within(
    low: f64,
    high: f64,
    mut measure: impl FnMut() -> Result<Rates, String>,
) -> Result<String, String> {
    let mut log: Vec<String> = Vec::new();
    for attempt in 1..=ATTEMPTS {
        let rates = match measure() {
            Ok(m) => m,
            Err(e) => {
                log.push(e);
                return Err(log.join("; "));
            }
        };
        let (ok, text) = judge(rates, low, high);
        if ok {
            log.push(text);
            return Ok(log.join("; "));
        }
        if rates.mean > high {
            log.push(format!(
                "{text}: the mean is above the upper bound, more than the shaper may let through (not re-measured)"
            ));
            return Err(log.join("; "));
        }
        log.push(if attempt < ATTEMPTS {
            format!(
                "{text}: even the best part is below the lower bound; measuring again, because \
                 the kernel's transmit work delayed on a loaded machine idles the link (slower, never faster)"
            )
        } else {
            format!("{text}: below the lower bound in all {ATTEMPTS} attempts")
        });
    }
    Err(log.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_and_blast_move_data_and_stop_on_request() {
        let listener = sink_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = AtomicBool::new(false);
        let (sent, got) = std::thread::scope(|s| {
            let sender = s.spawn(|| blast(addr, Duration::from_secs(60), &stop).unwrap());
            let receiver = s.spawn(|| sink(&listener, Duration::from_secs(60), &stop).unwrap());
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            (sender.join().unwrap(), receiver.join().unwrap())
        });
        assert!(got > 0 && got <= sent, "sent {sent}, got {got}");
    }

    #[test]
    fn parts_split_the_window_at_the_samples() {
        let t0 = Instant::now();
        let at = |ms: u64, bytes: u64| CounterSample {
            at: t0 + Duration::from_millis(ms),
            bytes,
        };
        // A stall from 350 to 700 ms.
        let samples = [at(0, 0), at(300, 300), at(700, 350), at(900, 550)];
        let t = summarize(&samples, 0.3);
        assert_eq!(
            t.window,
            Span {
                bytes: 550,
                seconds: 0.9
            }
        );
        let parts: Vec<(u64, u64)> = t
            .parts
            .iter()
            .map(|p| (p.bytes, (p.seconds * 1000.0).round() as u64))
            .collect();
        assert_eq!(parts, vec![(300, 300), (50, 400), (200, 200)]);
        // 300 bytes in 0.3 s is the best part: 8000 bit/s.
        let r = t.rates();
        assert!((r.best_part - 8000.0).abs() < 1e-6, "{r:?}");
        assert!((r.mean - 550.0 * 8.0 / 0.9).abs() < 1e-6, "{r:?}");
        // A part shorter than half its share does not count.
        let t = summarize(&[at(0, 0), at(20, 1000), at(900, 1100)], 0.3);
        assert!((t.rates().best_part - 100.0 * 8.0 / 0.88).abs() < 1e-6);
    }

    #[test]
    fn the_link_counter_of_loopback_in_a_netns_counts_what_was_sent() {
        if !cni::testing::privileged("the_link_counter_of_loopback_in_a_netns_counts_what_was_sent")
        {
            return;
        }
        let ns = crate::topology::Netns::new("ctr").unwrap();
        let tx = Counter::open(&ns.path(), CountAt::LinkTx("lo".into())).unwrap();
        let before = tx.read().unwrap();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let t = measure_in_process(
            &ns.path(),
            &ns.path(),
            addr,
            &tx,
            Duration::from_millis(50),
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(tx.read().unwrap() > before + t.window.bytes);
        assert_eq!(t.parts.len(), PARTS);
        assert_eq!(t.parts.iter().map(|p| p.bytes).sum::<u64>(), t.window.bytes);
        assert!(t.window.seconds >= 0.3 && t.warmup_seconds >= 0.05, "{t:?}");
        assert!(t.rates().mean > 10e6, "{t:?}");
        let e = Counter::open(&ns.path(), CountAt::Tbf("lo".into())).unwrap_err();
        assert!(
            e.to_string()
                .contains("no byte counter for the tbf qdisc on lo"),
            "{e}"
        );
        assert!(tbf_devices(&ns.path()).unwrap().is_empty());
    }

    #[test]
    fn bounds() {
        assert_eq!(shaped_bounds(10e6), (9e6, 11e6));
        let (ok, text) = judge(rates(300e6, 310e6), 100e6, f64::INFINITY);
        assert!(ok, "{text}");
        assert_eq!(
            text,
            "mean 300.00, best part 310.00 Mbit/s (bounds 100.00-∞)"
        );
    }

    fn rates(mean: f64, best_part: f64) -> Rates {
        Rates { mean, best_part }
    }

    #[test]
    fn only_a_low_result_is_measured_again_and_the_reason_is_given() {
        let (low, high) = shaped_bounds(10e6);
        let mut results = vec![rates(8e6, 8.5e6), rates(9.2e6, 10.1e6)].into_iter();
        let ok = measure_within(low, high, || Ok(results.next().unwrap())).unwrap();
        assert!(
            ok.starts_with("mean 8.00, best part 8.50 Mbit/s (bounds 9.00-11.00): even the best part is below the lower bound; measuring again, because")
                && ok.ends_with("; mean 9.20, best part 10.10 Mbit/s (bounds 9.00-11.00)"),
            "{ok}"
        );
        let mut calls = 0;
        let over = measure_within(low, high, || {
            calls += 1;
            Ok(rates(11.5e6, 11.6e6))
        })
        .unwrap_err();
        assert_eq!(calls, 1, "an overshoot is never re-measured");
        assert!(over.contains("above the upper bound"), "{over}");
        let mut calls = 0;
        let under = measure_within(low, high, || {
            calls += 1;
            Ok(rates(5e6, 6e6))
        })
        .unwrap_err();
        assert_eq!(calls, ATTEMPTS);
        assert!(
            under.ends_with("below the lower bound in all 3 attempts"),
            "{under}"
        );
        let err = measure_within(low, high, || Err("no sender".into())).unwrap_err();
        assert_eq!(err, "no sender");
    }
}
