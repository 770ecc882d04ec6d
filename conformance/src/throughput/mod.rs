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

mod counter;
mod traffic;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cni::rtnl::RtnlError;

use counter::CounterSample;
pub use counter::{shaper_counters, tbf_devices, CountAt, Counter};
pub use traffic::{blast, sink, sink_listener, udp_flood, FLOOD_DATAGRAM};

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
    /// No measurement was within bounds: every attempt, with its reason.
    #[error("{0}")]
    OutOfBounds(String),
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
/// `Err` both carry every attempt (a failed measurement ends it as
/// [`MeasureError::Incomplete`], out of bounds is
/// [`MeasureError::OutOfBounds`]).
pub fn measure_within<E: std::fmt::Display>(
    low: f64,
    high: f64,
    mut measure: impl FnMut() -> Result<Rates, E>,
) -> Result<String, MeasureError> {
    let mut log: Vec<String> = Vec::new();
    for attempt in 1..=ATTEMPTS {
        let rates = match measure() {
            Ok(m) => m,
            Err(e) => {
                log.push(e.to_string());
                return Err(MeasureError::Incomplete(log.join("; ")));
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
            return Err(MeasureError::OutOfBounds(log.join("; ")));
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
    Err(MeasureError::OutOfBounds(log.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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
        assert!(e.to_string().contains("no tbf qdisc on lo in"), "{e}");
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
        let ok = measure_within(low, high, || Ok::<_, String>(results.next().unwrap())).unwrap();
        assert!(
            ok.starts_with("mean 8.00, best part 8.50 Mbit/s (bounds 9.00-11.00): even the best part is below the lower bound; measuring again, because")
                && ok.ends_with("; mean 9.20, best part 10.10 Mbit/s (bounds 9.00-11.00)"),
            "{ok}"
        );
        let mut calls = 0;
        let over = measure_within(low, high, || {
            calls += 1;
            Ok::<_, String>(rates(11.5e6, 11.6e6))
        })
        .unwrap_err()
        .to_string();
        assert_eq!(calls, 1, "an overshoot is never re-measured");
        assert!(over.contains("above the upper bound"), "{over}");
        let mut calls = 0;
        let under = measure_within(low, high, || {
            calls += 1;
            Ok::<_, String>(rates(5e6, 6e6))
        })
        .unwrap_err()
        .to_string();
        assert_eq!(calls, ATTEMPTS);
        assert!(
            under.ends_with("below the lower bound in all 3 attempts"),
            "{under}"
        );
        let err = measure_within(low, high, || Err("no sender")).unwrap_err();
        assert_eq!(err.to_string(), "no sender");
    }
}
