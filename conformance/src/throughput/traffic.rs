//! The traffic half of a measurement: a TCP sink and blaster that only move
//! bytes (no timing, no judgement), with [`super::BUFFER`]-sized socket
//! buffers forced so a starved process does not idle the shaper; and a
//! paced UDP flood that keeps a shaper's queue full ([`udp_flood`]).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{MeasureError, BUFFER, MAX_BYTES};

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

/// Datagrams of this many bytes (payload) make up a [`udp_flood`]; small
/// enough for any pod MTU the suite uses.
pub const FLOOD_DATAGRAM: usize = 1200;

/// Sends [`FLOOD_DATAGRAM`]-byte datagrams on `socket` to `to` at `bps`
/// (payload bits per second), paced every 2 ms, until `limit` or `stop`;
/// returns the payload bytes sent. Unlike TCP, nothing backs off: a rate
/// above the shaper's keeps its queue full (the excess is dropped there).
pub fn udp_flood(
    socket: &UdpSocket,
    to: SocketAddr,
    bps: u64,
    limit: Duration,
    stop: &AtomicBool,
) -> Result<u64, MeasureError> {
    let datagram = [0x5au8; FLOOD_DATAGRAM];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < limit && !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * bps as f64 / 8.0) as u64;
        while sent < due {
            match socket.send_to(&datagram, to) {
                Ok(n) => sent += n as u64,
                // A full queue on the way: the datagram is dropped, as
                // the flood means it to be.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => sent += datagram.len() as u64,
                Err(e) => return Err(MeasureError::io(format!("sending to {to}"), e)),
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(sent)
}
