//! Work the runtime need not wait for, done by a detached child that keeps
//! a copy of one socket: [`Socket::in_detached_child`]. The plugin replies
//! and exits while the child finishes (conntrack cleanup, deleting a link
//! whose unregistration waits for the kernel, closing a socket after an RCU
//! grace period). Knows nothing of what the work is.
//!
//! The child is detached from everything the runtime watches: its own
//! session (`setsid`: a runtime that kills the plugin's process group at
//! its timeout does not kill the work), no descriptor but the socket and
//! those the caller names (the runtime's stdout and stderr pipes reach EOF
//! when the plugin exits, so it never waits for the child), and it never
//! returns into the caller's code: it leaves with `_exit`. The caller must
//! be single-threaded (every plugin is), so that the work may allocate in
//! the child.
//!
//! The child starts its work once the plugin has exited (a pidfd of the
//! parent becomes readable; at most [`PARENT_WAIT_MS`] later), at a lower
//! priority ([`BACKGROUND_NICE`]): on a loaded node the work would otherwise
//! take the CPU from the plugin's last steps, and from the next plugins,
//! and the runtime waits for those. Measured under strace on 2
//! loaded cores: without the wait, portmap ADD's last `close` and exit took
//! 10–25 ms while its conntrack child ran.

use std::os::fd::{AsRawFd, RawFd};

use super::{NetlinkFamily, Socket};

/// The longest the child waits for the plugin to exit before it works.
pub const PARENT_WAIT_MS: i32 = 250;

/// The child's nice value: its work (a conntrack dump walks the kernel's
/// whole table, about 20 ms of CPU with 262144 buckets) yields to the
/// plugins a runtime is waiting for, which on a busy node are the next
/// verbs; on an idle core it runs at once all the same.
pub const BACKGROUND_NICE: libc::c_int = 10;

/// Blocks until process `pid` has exited (or [`PARENT_WAIT_MS`] passed).
fn wait_for_exit(pid: libc::pid_t) {
    // SAFETY: plain system calls on a descriptor this function owns.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
        if pidfd < 0 {
            return; // ESRCH: already gone.
        }
        let mut pfd = libc::pollfd {
            fd: pidfd as libc::c_int,
            events: libc::POLLIN,
            revents: 0,
        };
        libc::poll(&mut pfd, 1, PARENT_WAIT_MS);
        libc::close(pidfd as libc::c_int);
    }
}

impl<F: NetlinkFamily> Socket<F> {
    /// Runs `work` on (a copy of) this socket in a detached child, once
    /// the caller has exited, and returns at once; the caller keeps its copy. Runs `work` here when
    /// fork fails, so the work is done either way.
    pub fn in_detached_child(&self, work: impl FnOnce(&Self)) {
        self.in_detached_child_keeping(&[], work);
    }

    /// Like [`Self::in_detached_child`], and the child also keeps the
    /// descriptors `keep` open until it exits (other sockets whose last
    /// close must not be the caller's, see [`super::netfilter`]); the caller
    /// may close its copies at once.
    pub fn in_detached_child_keeping(&self, keep: &[RawFd], work: impl FnOnce(&Self)) {
        let mut kept: Vec<RawFd> = keep.to_vec();
        kept.push(self.as_raw_fd());
        kept.sort_unstable();
        kept.dedup();
        // SAFETY: getpid cannot fail.
        let parent = unsafe { libc::getpid() };
        // Test builds: the child may be told to die at once (issue #15 §3).
        let die = crate::failpoint::child_crash_armed("background close child");
        // SAFETY: the process is single-threaded (see the module doc), so
        // the child is an ordinary copy of it; it leaves with `_exit`, never
        // returning into the caller; the parent continues normally.
        let pid = unsafe { libc::fork() };
        match pid {
            0 => {
                if die {
                    crate::failpoint::die_in_child();
                }
                crate::failpoint::enter_child();
                super::closing::detach(&kept, BACKGROUND_NICE);
                wait_for_exit(parent);
                // A panic must not unwind into the caller's copy of the stack.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    crate::failpoint::held_child(|| work(self))
                }));
                // SAFETY: ends the child without running the caller's code.
                unsafe { libc::_exit(0) }
            }
            pid if pid < 0 => work(self),
            _ => {}
        }
    }
}
