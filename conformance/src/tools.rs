//! Traffic tools the suite runs inside its namespaces as the hidden
//! `cni-conformance tool <...>` (under `ip netns exec`): a TCP/UDP reply
//! server, a one-shot client, and a throughput sink/blaster pair. Every tool
//! is bounded in time and bytes; it never chooses where to send traffic (the
//! suite passes only loopback or addresses inside namespaces it created).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Longest any tool runs, whatever it is asked.
pub const MAX_SECONDS: f64 = 120.0;
/// Most bytes a blaster sends or a sink reads.
pub const MAX_BYTES: u64 = 1 << 30;

/// What a throughput sink measured (printed as one JSON line).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Throughput {
    /// Payload bytes received in total.
    pub bytes: u64,
    /// Seconds from the first byte to the end.
    pub seconds: f64,
    /// Payload bytes received after the warm-up.
    pub steady_bytes: u64,
    /// Seconds measured after the warm-up.
    pub steady_seconds: f64,
    /// Least-squares rate (bit/s) over every read after the warm-up.
    #[serde(default)]
    pub steady_slope_bps: Option<f64>,
}

impl Throughput {
    /// Payload bits per second after the warm-up (whole run if too short).
    pub fn steady_bps(&self) -> f64 {
        if let Some(bps) = self.steady_slope_bps.filter(|b| *b > 0.0) {
            bps
        } else if self.steady_seconds > 0.05 {
            self.steady_bytes as f64 * 8.0 / self.steady_seconds
        } else if self.seconds > 0.0 {
            self.bytes as f64 * 8.0 / self.seconds
        } else {
            0.0
        }
    }
}

/// Why a tool failed; printed on stderr. `Refused` and `Timeout` have their
/// own exit codes so callers can tell "nothing listens" from "dropped".
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("usage: {0}")]
    Usage(String),
    #[error("connection refused by {0}")]
    Refused(SocketAddr),
    #[error("timed out talking to {0}")]
    Timeout(SocketAddr),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl ToolError {
    fn io(what: impl Into<String>, source: std::io::Error) -> ToolError {
        ToolError::Io {
            what: what.into(),
            source,
        }
    }

    /// Exit code: 2 usage, 3 refused, 4 timeout, 1 anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ToolError::Usage(_) => 2,
            ToolError::Refused(_) => 3,
            ToolError::Timeout(_) => 4,
            ToolError::Io { .. } => 1,
        }
    }
}

/// Entry point of `cni-conformance tool <args>`; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let mut out = std::io::stdout();
    match dispatch(&args, &mut out) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tool: {e}");
            e.exit_code()
        }
    }
}

const USAGE: &str = "tool serve [--tcp PORT]... [--udp PORT]... --reply TEXT [--seconds S]\n\
     tool connect (--tcp|--udp) ADDR:PORT [--timeout-ms N]\n\
     tool sink --port PORT [--seconds S] [--warmup-ms N]\n\
     tool blast --to ADDR:PORT --seconds S";

fn dispatch(args: &[String], out: &mut dyn Write) -> Result<(), ToolError> {
    let (verb, rest) = args
        .split_first()
        .ok_or_else(|| ToolError::Usage(USAGE.into()))?;
    let flags = Flags::parse(rest)?;
    match verb.as_str() {
        "serve" => {
            let opts = ServeOptions {
                tcp: flags.ports("--tcp")?,
                udp: flags.ports("--udp")?,
                reply: flags.one("--reply")?.to_string(),
                seconds: flags.seconds("--seconds", 30.0)?,
            };
            serve(&opts, out)
        }
        "connect" => {
            let timeout = Duration::from_millis(flags.number("--timeout-ms", 2000.0)? as u64);
            let reply = match (flags.get("--tcp"), flags.get("--udp")) {
                (Some(a), None) => tcp_request(parse_addr(a)?, timeout)?,
                (None, Some(a)) => udp_request(parse_addr(a)?, timeout)?,
                _ => return Err(ToolError::Usage("connect needs --tcp or --udp".into())),
            };
            write_line(out, &reply)
        }
        "sink" => {
            let port = flags.port("--port")?;
            let seconds = flags.seconds("--seconds", 10.0)?;
            let warmup = Duration::from_millis(flags.number("--warmup-ms", 200.0)? as u64);
            let listener = TcpListener::bind(("::", port))
                .map_err(|e| ToolError::io(format!("binding tcp port {port}"), e))?;
            write_line(out, "ready")?;
            let t = sink(&listener, Duration::from_secs_f64(seconds), warmup)?;
            let line = serde_json::to_string(&t)
                .map_err(|e| ToolError::io("encoding result", e.into()))?;
            write_line(out, &line)
        }
        "blast" => {
            let to = parse_addr(flags.one("--to")?)?;
            let seconds = flags.seconds("--seconds", 1.0)?;
            let sent = blast(to, Duration::from_secs_f64(seconds))?;
            write_line(out, &sent.to_string())
        }
        other => Err(ToolError::Usage(format!("unknown tool {other:?}\n{USAGE}"))),
    }
}

fn write_line(out: &mut dyn Write, line: &str) -> Result<(), ToolError> {
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .map_err(|e| ToolError::io("writing stdout", e))
}

fn parse_addr(s: &str) -> Result<SocketAddr, ToolError> {
    s.parse()
        .map_err(|_| ToolError::Usage(format!("{s:?} is not ADDR:PORT (IPv6 as [ADDR]:PORT)")))
}

/// `--flag value` pairs in order (flags may repeat).
struct Flags(Vec<(String, String)>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, ToolError> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            if !k.starts_with("--") {
                return Err(ToolError::Usage(format!("unexpected argument {k:?}")));
            }
            let v = it
                .next()
                .ok_or_else(|| ToolError::Usage(format!("{k} needs a value")))?;
            pairs.push((k.clone(), v.clone()));
        }
        Ok(Flags(pairs))
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    fn one(&self, k: &str) -> Result<&str, ToolError> {
        self.get(k)
            .ok_or_else(|| ToolError::Usage(format!("{k} is required")))
    }
    fn number(&self, k: &str, default: f64) -> Result<f64, ToolError> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| ToolError::Usage(format!("{k} {v:?} is not a number"))),
        }
    }
    fn seconds(&self, k: &str, default: f64) -> Result<f64, ToolError> {
        Ok(self.number(k, default)?.min(MAX_SECONDS))
    }
    fn port(&self, k: &str) -> Result<u16, ToolError> {
        let v = self.one(k)?;
        v.parse()
            .map_err(|_| ToolError::Usage(format!("{k} {v:?} is not a port")))
    }
    fn ports(&self, k: &str) -> Result<Vec<u16>, ToolError> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| {
                v.parse()
                    .map_err(|_| ToolError::Usage(format!("{k} {v:?} is not a port")))
            })
            .collect()
    }
}

/// What `serve` listens on and answers.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    /// Sent back on every TCP connection and every UDP datagram, with the
    /// protocol and port appended (`<reply> tcp/80`).
    pub reply: String,
    pub seconds: f64,
}

/// Binds every port (dual-stack), prints `ready`, then answers until the time
/// is up. Each TCP connection gets the reply and is closed; each UDP datagram
/// gets the reply as a datagram.
pub fn serve(opts: &ServeOptions, out: &mut dyn Write) -> Result<(), ToolError> {
    let deadline = Instant::now() + Duration::from_secs_f64(opts.seconds.min(MAX_SECONDS));
    let mut tcp = Vec::new();
    for &port in &opts.tcp {
        let l = TcpListener::bind(("::", port))
            .map_err(|e| ToolError::io(format!("binding tcp port {port}"), e))?;
        l.set_nonblocking(true)
            .map_err(|e| ToolError::io("tcp listener", e))?;
        tcp.push((l, format!("{} tcp/{port}", opts.reply)));
    }
    let mut udp = Vec::new();
    for &port in &opts.udp {
        let s = UdpSocket::bind(("::", port))
            .map_err(|e| ToolError::io(format!("binding udp port {port}"), e))?;
        s.set_nonblocking(true)
            .map_err(|e| ToolError::io("udp socket", e))?;
        udp.push((s, format!("{} udp/{port}", opts.reply)));
    }
    write_line(out, "ready")?;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let mut busy = false;
        for (l, reply) in &tcp {
            if let Ok((mut conn, _)) = l.accept() {
                busy = true;
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = conn.write_all(reply.as_bytes());
                let _ = conn.shutdown(Shutdown::Both);
            }
        }
        for (s, reply) in &udp {
            if let Ok((_, from)) = s.recv_from(&mut buf) {
                busy = true;
                let _ = s.send_to(reply.as_bytes(), from);
            }
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(())
}

fn classify(addr: SocketAddr, e: std::io::Error, what: &str) -> ToolError {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => ToolError::Refused(addr),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ToolError::Timeout(addr),
        _ => ToolError::io(format!("{what} {addr}"), e),
    }
}

/// Connects, reads the server's reply until it closes (≤ 64 KiB).
pub fn tcp_request(addr: SocketAddr, timeout: Duration) -> Result<String, ToolError> {
    let conn = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| classify(addr, e, "connecting to"))?;
    conn.set_read_timeout(Some(timeout))
        .map_err(|e| ToolError::io("socket", e))?;
    let mut reply = Vec::new();
    conn.take(64 * 1024)
        .read_to_end(&mut reply)
        .map_err(|e| classify(addr, e, "reading from"))?;
    Ok(String::from_utf8_lossy(&reply).trim().to_string())
}

/// Sends a datagram (resent a few times within the timeout) and returns the
/// first reply.
pub fn udp_request(addr: SocketAddr, timeout: Duration) -> Result<String, ToolError> {
    let local: SocketAddr = if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    // Not connected: a server bound to a wildcard address may answer from
    // another local address (source picked by routing); accept that reply.
    let s = UdpSocket::bind(local).map_err(|e| ToolError::io("binding udp socket", e))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        s.send_to(b"ping", addr)
            .map_err(|e| classify(addr, e, "sending to"))?;
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(300))
            .max(Duration::from_millis(1));
        s.set_read_timeout(Some(wait))
            .map_err(|e| ToolError::io("socket", e))?;
        match s.recv_from(&mut buf) {
            Ok((n, _)) => return Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(classify(addr, e, "receiving from")),
        }
    }
    Err(ToolError::Timeout(addr))
}

/// Accepts one connection and reads it until EOF or `limit`; the first
/// `warmup` after the first byte (TBF burst, slow start) is measured apart.
pub fn sink(
    listener: &TcpListener,
    limit: Duration,
    warmup: Duration,
) -> Result<Throughput, ToolError> {
    let start = Instant::now();
    listener
        .set_nonblocking(true)
        .map_err(|e| ToolError::io("listener", e))?;
    let mut conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if start.elapsed() > limit {
                    return Err(ToolError::io(
                        "sink",
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "no sender connected"),
                    ));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(ToolError::io("accepting", e)),
        }
    };
    conn.set_nonblocking(false)
        .and_then(|_| conn.set_read_timeout(Some(Duration::from_millis(200))))
        .map_err(|e| ToolError::io("sink socket", e))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    let mut mark: Option<(Instant, u64)> = None;
    let mut last = Instant::now();
    // (seconds since the first byte, cumulative bytes) after the warm-up.
    let mut samples: Vec<(f64, f64)> = Vec::new();
    while start.elapsed() < limit && bytes < MAX_BYTES {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let now = Instant::now();
                let t0 = *first.get_or_insert(now);
                bytes += n as u64;
                last = now;
                let since = now.duration_since(t0);
                if since >= warmup {
                    if mark.is_none() {
                        mark = Some((now, bytes));
                    }
                    samples.push((since.as_secs_f64(), bytes as f64));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(ToolError::io("reading", e)),
        }
    }
    let seconds = first.map_or(0.0, |t| last.duration_since(t).as_secs_f64());
    let (steady_bytes, steady_seconds) = match mark {
        Some((t, b)) => (bytes - b, last.duration_since(t).as_secs_f64()),
        None => (0, 0.0),
    };
    Ok(Throughput {
        bytes,
        seconds,
        steady_bytes,
        steady_seconds,
        steady_slope_bps: slope(&samples).map(|b| b * 8.0),
    })
}

/// Least-squares slope of `(x, y)` points; `None` with fewer than 3 points
/// or no spread in `x`. Robust against one late read at either end.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= f64::EPSILON {
        return None;
    }
    Some(sxy / sxx)
}

/// Writes as fast as the socket takes for `duration`, then closes; returns
/// the payload bytes written.
pub fn blast(to: SocketAddr, duration: Duration) -> Result<u64, ToolError> {
    let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(2))
        .map_err(|e| classify(to, e, "connecting to"))?;
    conn.set_write_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| ToolError::io("socket", e))?;
    let chunk = vec![0x5au8; 64 * 1024];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < duration && sent < MAX_BYTES {
        match conn.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(ToolError::io(format!("writing to {to}"), e)),
        }
    }
    let _ = conn.shutdown(Shutdown::Write);
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_answers_tcp_and_udp_on_loopback() {
        let tcp_port = free_port();
        let udp_port = free_port();
        let server = std::thread::spawn(move || {
            let opts = ServeOptions {
                tcp: vec![tcp_port],
                udp: vec![udp_port],
                reply: "pod-a".into(),
                seconds: 2.0,
            };
            let mut out = Vec::new();
            serve(&opts, &mut out).unwrap();
            out
        });
        std::thread::sleep(Duration::from_millis(100));
        let t = Duration::from_secs(1);
        let tcp = tcp_request(format!("127.0.0.1:{tcp_port}").parse().unwrap(), t).unwrap();
        assert_eq!(tcp, format!("pod-a tcp/{tcp_port}"));
        let udp = udp_request(format!("[::1]:{udp_port}").parse().unwrap(), t).unwrap();
        assert_eq!(udp, format!("pod-a udp/{udp_port}"));
        assert_eq!(
            String::from_utf8(server.join().unwrap()).unwrap(),
            "ready\n"
        );
    }

    #[test]
    fn connect_to_a_closed_port_is_refused() {
        let port = free_port();
        let e = tcp_request(
            format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(e, ToolError::Refused(_)), "{e}");
        assert_eq!(e.exit_code(), 3);
    }

    #[test]
    fn sink_measures_what_blast_sends() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sender = std::thread::spawn(move || blast(addr, Duration::from_millis(300)).unwrap());
        let t = sink(&listener, Duration::from_secs(5), Duration::from_millis(50)).unwrap();
        let sent = sender.join().unwrap();
        assert_eq!(t.bytes, sent);
        assert!(t.steady_bytes > 0 && t.steady_bytes < t.bytes);
        assert!(t.steady_bps() > 1e6, "{t:?}");
    }

    #[test]
    fn slope_fits_a_line() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 * i as f64 + 1.0)).collect();
        assert!((slope(&pts).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(slope(&pts[..2]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]), None);
    }

    #[test]
    fn cli_rejects_bad_usage() {
        let mut out = Vec::new();
        let e = dispatch(&["connect".into(), "--tcp".into()], &mut out).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = dispatch(&["nope".into()], &mut out).unwrap_err();
        assert!(e.to_string().contains("unknown tool"));
        let e = dispatch(
            &["connect".into(), "--tcp".into(), "10.0.0.1".into()],
            &mut out,
        )
        .unwrap_err();
        assert!(e.to_string().contains("ADDR:PORT"), "{e}");
    }

    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }
}
