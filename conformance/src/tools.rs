//! Traffic tools the suite runs inside its namespaces as the hidden
//! `cni-conformance tool <...>` (under `ip netns exec`): a TCP/UDP reply
//! server, a one-shot client, and the throughput sink/blaster pair of
//! [`crate::throughput`]. Every tool is bounded in time and bytes; it never
//! chooses where to send traffic (the suite passes only loopback or
//! addresses inside namespaces it created).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::throughput::{blast, sink, sink_listener, MeasureError};

/// Longest any tool runs, whatever it is asked.
pub const MAX_SECONDS: f64 = 120.0;
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
    #[error(transparent)]
    Measure(#[from] MeasureError),
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
            ToolError::Measure(e) if e.is_refused() => 3,
            ToolError::Io { .. } | ToolError::Measure(_) => 1,
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
     tool sink --port PORT [--seconds LIMIT]\n\
     tool blast --to ADDR:PORT [--seconds LIMIT]";

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
            let limit = Duration::from_secs_f64(flags.seconds("--seconds", 30.0)?);
            let listener = sink_listener(SocketAddr::from(([0u16; 8], port)))?;
            write_line(out, "ready")?;
            let got = sink(&listener, limit, &AtomicBool::new(false))?;
            write_line(out, &got.to_string())
        }
        "blast" => {
            let to = parse_addr(flags.one("--to")?)?;
            let limit = Duration::from_secs_f64(flags.seconds("--seconds", 10.0)?);
            let sent = blast(to, limit, &AtomicBool::new(false))?;
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

/// A reply server with every socket bound (port 0 binds any free port;
/// [`Server::ports`] tells which).
#[derive(Debug)]
pub struct Server {
    tcp: Vec<(TcpListener, String)>,
    udp: Vec<(UdpSocket, String)>,
    seconds: f64,
}

impl Server {
    /// Binds every port (dual-stack, nonblocking).
    pub fn bind(opts: &ServeOptions) -> Result<Server, ToolError> {
        let mut tcp = Vec::new();
        for &port in &opts.tcp {
            let l = TcpListener::bind(("::", port))
                .map_err(|e| ToolError::io(format!("binding tcp port {port}"), e))?;
            l.set_nonblocking(true)
                .map_err(|e| ToolError::io("tcp listener", e))?;
            let port = l.local_addr().map_or(port, |a| a.port());
            tcp.push((l, format!("{} tcp/{port}", opts.reply)));
        }
        let mut udp = Vec::new();
        for &port in &opts.udp {
            let s = UdpSocket::bind(("::", port))
                .map_err(|e| ToolError::io(format!("binding udp port {port}"), e))?;
            s.set_nonblocking(true)
                .map_err(|e| ToolError::io("udp socket", e))?;
            let port = s.local_addr().map_or(port, |a| a.port());
            udp.push((s, format!("{} udp/{port}", opts.reply)));
        }
        Ok(Server {
            tcp,
            udp,
            seconds: opts.seconds,
        })
    }

    /// The bound (tcp, udp) ports, in the order asked.
    pub fn ports(&self) -> (Vec<u16>, Vec<u16>) {
        let port = |a: std::io::Result<SocketAddr>| a.map_or(0, |a| a.port());
        (
            self.tcp.iter().map(|(l, _)| port(l.local_addr())).collect(),
            self.udp.iter().map(|(s, _)| port(s.local_addr())).collect(),
        )
    }

    /// Prints `ready`, then answers until the time is up. Each TCP
    /// connection gets the reply and is closed; each UDP datagram gets the
    /// reply as a datagram.
    pub fn run(self, out: &mut dyn Write) -> Result<(), ToolError> {
        let deadline = Instant::now() + Duration::from_secs_f64(self.seconds.min(MAX_SECONDS));
        write_line(out, "ready")?;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            let mut busy = false;
            for (l, reply) in &self.tcp {
                if let Ok((mut conn, _)) = l.accept() {
                    busy = true;
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
                    let _ = conn.write_all(reply.as_bytes());
                    let _ = conn.shutdown(Shutdown::Both);
                }
            }
            for (s, reply) in &self.udp {
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
}

/// Binds every port (dual-stack), prints `ready`, then answers until the
/// time is up (see [`Server::run`]).
pub fn serve(opts: &ServeOptions, out: &mut dyn Write) -> Result<(), ToolError> {
    Server::bind(opts)?.run(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_answers_tcp_and_udp_on_loopback() {
        // Bound before the client runs (no sleep, no guessed free port).
        let server = Server::bind(&ServeOptions {
            tcp: vec![0],
            udp: vec![0],
            reply: "pod-a".into(),
            seconds: 5.0,
        })
        .unwrap();
        let (tcp_ports, udp_ports) = server.ports();
        let (tcp_port, udp_port) = (tcp_ports[0], udp_ports[0]);
        assert!(tcp_port != 0 && udp_port != 0);
        let running = std::thread::spawn(move || {
            let mut out = Vec::new();
            server.run(&mut out).unwrap();
            out
        });
        let t = Duration::from_secs(5);
        let tcp = tcp_request(format!("127.0.0.1:{tcp_port}").parse().unwrap(), t).unwrap();
        assert_eq!(tcp, format!("pod-a tcp/{tcp_port}"));
        let udp = udp_request(format!("[::1]:{udp_port}").parse().unwrap(), t).unwrap();
        assert_eq!(udp, format!("pod-a udp/{udp_port}"));
        assert_eq!(
            String::from_utf8(running.join().unwrap()).unwrap(),
            "ready\n"
        );
    }

    #[test]
    fn connect_to_a_closed_port_is_refused() {
        let (_reserved, port) = bound_not_listening();
        let e = tcp_request(
            format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(e, ToolError::Refused(_)), "{e}");
        assert_eq!(e.exit_code(), 3);
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

    /// A TCP socket bound to a free loopback port but not listening: the
    /// port stays ours (nobody else can listen on it) and refuses
    /// connections, deterministically.
    fn bound_not_listening() -> (std::os::fd::OwnedFd, u16) {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: plain socket syscalls on a fresh fd that OwnedFd then owns;
        // the sockaddr structs live on this stack frame.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0);
            let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let p = (&mut sa as *mut libc::sockaddr_in).cast::<libc::sockaddr>();
            assert_eq!(libc::bind(owned.as_raw_fd(), p, len), 0);
            assert_eq!(libc::getsockname(owned.as_raw_fd(), p, &mut len), 0);
            (owned, u16::from_be(sa.sin_port))
        }
    }
}
