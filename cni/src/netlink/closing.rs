//! A socket's last close, done by a child that shares the plugin's memory
//! instead of a copy of it: [`spawn`]. `background.rs`'s child is a fork,
//! which costs the runtime's wait the copy of the page tables, the
//! copy-on-write faults of the plugin's last steps and the teardown of its
//! address space at exit, when all the child does is hold descriptors
//! until the kernel is quiet. This child is a `clone(CLONE_VM)`: no page
//! table is copied, and the plugin's exit leaves the address space to the
//! child, whose own exit frees it in the background. portmap CHECK (which
//! only closes) went from 1.54–1.84 ms to 1.35–1.55 ms here (medians of
//! 300 back-to-back CHECKs, three runs each).
//!
//! Sharing the memory of a process that goes on running is safe only for
//! code that touches nothing the process owns, so the child:
//! - runs on a stack mapped for it, where the parent put its only input (a
//!   [`Closing`]) before the clone and which the parent never touches again;
//! - makes system calls through `rustix` (raw calls: no `errno`, which would
//!   be the parent's thread-local), and `close_range` through `libc` with
//!   arguments it cannot refuse (`errno` is written on failure only);
//! - never allocates, never locks, never unwinds, and returns to glibc's
//!   `clone` wrapper, which ends it with the `exit` system call.
//!
//! Both closing children, this one and `background.rs`'s fork after its
//! work, detach the same way ([`detach`]: own session, no descriptor but
//! the ones they hold, a lower priority) and wait the same way
//! ([`hold_until_quiet`]). What they wait for is given as bytes: a request
//! on a socket they hold whose answer, the same before and after an RCU
//! grace period, means the kernel is quiet (nf_tables' generation, for
//! `netfilter.rs`).

use std::os::fd::{BorrowedFd, RawFd};

use rustix::net::{RecvFlags, SendFlags};

/// The most descriptors a closing child holds.
const MAX_HELD: usize = 4;
/// The longest request it sends.
const MAX_PROBE: usize = 64;
/// The longest answer it compares (an nf_tables generation is 48 bytes).
const ANSWER: usize = 256;
/// Its stack: a few system calls and three answer buffers.
const STACK: usize = 32 * 1024;
/// Stale datagrams it drops before a probe, at most.
const DRAIN: usize = 64;

/// Everything the child knows, written into its stack before the clone.
#[repr(C)]
struct Closing {
    /// The socket probed, one of `held`.
    probe_fd: RawFd,
    /// Sorted, for `close_all_but`.
    held: [RawFd; MAX_HELD],
    held_len: usize,
    probe: [u8; MAX_PROBE],
    probe_len: usize,
    rounds: usize,
    nice: i32,
}

/// Starts a child that holds `held` until the answer to `probe` on the
/// first of them (a netlink socket) did not change over a grace period
/// (at most `rounds` of them), at nice value `nice`, and returns at once:
/// the caller may close its copies. False when it could not start one (too
/// many descriptors, too long a probe, no memory, clone refused): nothing
/// was started and the caller closes some other way.
pub fn spawn(held: &[RawFd], probe: &[u8], rounds: usize, nice: i32) -> bool {
    if held.is_empty() || held.len() > MAX_HELD || probe.len() > MAX_PROBE {
        return false;
    }
    let mut closing = Closing {
        probe_fd: held[0],
        held: [-1; MAX_HELD],
        held_len: held.len(),
        probe: [0; MAX_PROBE],
        probe_len: probe.len(),
        rounds,
        nice,
    };
    closing.held[..held.len()].copy_from_slice(held);
    closing.held[..held.len()].sort_unstable();
    closing.probe[..probe.len()].copy_from_slice(probe);
    // SAFETY: a fresh private mapping; the child gets its top (the
    // `Closing`, then its stack below it), and this process never reads,
    // writes or unmaps it once the clone succeeded: the mapping goes with
    // the address space, when the child (its last user) exits.
    unsafe {
        let stack = libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        );
        if stack == libc::MAP_FAILED {
            return false;
        }
        let top = stack as usize + STACK;
        let at = (top - std::mem::size_of::<Closing>()) & !15;
        std::ptr::write(at as *mut Closing, closing);
        let pid = libc::clone(
            child,
            at as *mut libc::c_void,
            libc::CLONE_VM | libc::SIGCHLD,
            at as *mut libc::c_void,
        );
        if pid < 0 {
            libc::munmap(stack, STACK);
            return false;
        }
    }
    true
}

/// The child (see the module doc for what it may do).
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `spawn` wrote a `Closing` at `arg`, in this child's own
    // mapping, and nothing writes it any more.
    let c = unsafe { &*(arg as *const Closing) };
    detach(&c.held[..c.held_len], c.nice);
    hold_until_quiet(c.probe_fd, &c.probe[..c.probe_len], c.rounds);
    0
}

/// Detaches the calling child from what the runtime watches: its own
/// session, no descriptor but `held` (sorted), nice value `nice`. Raw
/// system calls only: both closing children call it (this module's and
/// `background.rs`'s fork).
pub fn detach(held: &[RawFd], nice: i32) {
    let _ = rustix::process::setsid();
    close_all_but(held);
    let _ = rustix::process::setpriority_process(None, nice);
}

/// Returns once the answer to `probe` on `sock` (a netlink socket this
/// process holds) was the same before and after a grace period, or after
/// `rounds` grace periods. Raw system calls and stack buffers only: both
/// closing children call it.
pub fn hold_until_quiet(sock: RawFd, probe: &[u8], rounds: usize) {
    // SAFETY: the caller holds `sock` open for as long as this runs.
    let sock = unsafe { BorrowedFd::borrow_raw(sock) };
    let mut seen = [0u8; ANSWER];
    let mut seen_len = ask(sock, probe, &mut seen);
    for _ in 0..rounds {
        grace_period();
        let mut now = [0u8; ANSWER];
        let now_len = ask(sock, probe, &mut now);
        if now_len.is_some() && now_len == seen_len && now == seen {
            break;
        }
        seen = now;
        seen_len = now_len;
    }
}

/// Closes every descriptor of this process but `held` (sorted).
fn close_all_but(held: &[RawFd]) {
    let mut from: libc::c_uint = 0;
    for fd in held {
        let fd = *fd as libc::c_uint;
        if fd > from {
            // SAFETY: from ≤ fd - 1 and no flags: close_range cannot fail.
            unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0) };
        }
        from = fd + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, libc::c_uint::MAX, 0) };
}

/// Sends `probe` on `sock` (after dropping what was queued) and copies the
/// answer into `out`; its length, or None when there was none.
fn ask(sock: BorrowedFd<'_>, probe: &[u8], out: &mut [u8; ANSWER]) -> Option<usize> {
    let mut stale = [0u8; ANSWER];
    for _ in 0..DRAIN {
        if rustix::net::recv(sock, &mut stale, RecvFlags::DONTWAIT).is_err() {
            break;
        }
    }
    rustix::net::send(sock, probe, SendFlags::empty()).ok()?;
    // The kernel answers a netlink request within the send.
    let (n, _) = rustix::net::recv(sock, out, RecvFlags::DONTWAIT).ok()?;
    Some(n)
}

/// Waits for an RCU grace period (`membarrier`, which waits for one; 50 ms
/// of sleep where it is not available).
fn grace_period() {
    if rustix::thread::membarrier(rustix::thread::MembarrierCommand::Global).is_err() {
        let _ = rustix::thread::nanosleep(&rustix::thread::Timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        });
    }
}
