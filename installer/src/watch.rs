//! The DaemonSet's main loop: install, chain, then wait on the conf dir
//! (inotify) and on SIGTERM/SIGINT (a signalfd, so a signal is never lost
//! between two checks), re-chaining whenever another agent rewrites the
//! network (Calico, Flannel and Cilium do on start). Keeps the readiness
//! file true: present exactly while the node is chained. A resync every
//! minute covers an inotify queue overflow.
//!
//! Uses the `inotify` crate rather than `notify`: only Linux matters here,
//! and we need exact control of the mask (close-after-write and renames, not
//! every partial write) and a raw fd to poll beside the signalfd.

use std::os::fd::AsFd;
use std::path::Path;

use inotify::{Inotify, WatchMask};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::error::InstallError;
use crate::files;
use crate::node::{Node, Status};

const RESYNC_MS: u16 = 60_000;

fn sys(what: &str) -> impl FnOnce(nix::Error) -> InstallError + '_ {
    move |e| InstallError::Io {
        what: what.to_string(),
        source: std::io::Error::from(e),
    }
}

/// Blocks SIGTERM and SIGINT for this thread and returns a signalfd that
/// reports them. Call first, before anything that may take time.
pub fn block_exit_signals() -> Result<SignalFd, InstallError> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.thread_block().map_err(sys("blocking SIGTERM"))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(sys("creating a signalfd"))
}

/// Chains once and brings the readiness file in line; errors are reported
/// and leave the node unready.
fn reconcile_and_report(node: &mut Node, readiness: &Path) -> Status {
    let status = match node.reconcile() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cni-install: not chained: {e}");
            Status::NoNetwork
        }
    };
    let result = match &status {
        Status::Chained { file } => {
            let content = format!("{}\n", node.conf_dir().join(file).display());
            // Rewrite only on change: the file's mtime then tells when the
            // node became chained.
            if std::fs::read_to_string(readiness).ok().as_deref() == Some(content.as_str()) {
                Ok(())
            } else {
                files::write_readiness(readiness, &content)
            }
        }
        Status::NoNetwork => files::remove_if_present(readiness),
    };
    if let Err(e) = result {
        eprintln!("cni-install: readiness file: {e}");
    }
    status
}

/// Runs until SIGTERM/SIGINT. Then removes the readiness file and, with
/// `cleanup`, what we added to the conflists.
pub fn run(
    node: &mut Node,
    signals: &SignalFd,
    readiness: &Path,
    cleanup: bool,
) -> Result<(), InstallError> {
    std::fs::create_dir_all(node.conf_dir()).map_err(|source| InstallError::Io {
        what: format!("creating {}", node.conf_dir().display()),
        source,
    })?;
    let mut inotify = Inotify::init().map_err(|source| InstallError::Io {
        what: "creating an inotify instance".into(),
        source,
    })?;
    // Watch before the first reconcile, so no change falls between them.
    inotify
        .watches()
        .add(
            node.conf_dir(),
            WatchMask::CLOSE_WRITE
                | WatchMask::MOVED_TO
                | WatchMask::MOVED_FROM
                | WatchMask::CREATE
                | WatchMask::DELETE
                | WatchMask::DELETE_SELF
                | WatchMask::MOVE_SELF,
        )
        .map_err(|source| InstallError::Io {
            what: format!("watching {}", node.conf_dir().display()),
            source,
        })?;
    let mut buffer = [0u8; 16 * 1024];
    reconcile_and_report(node, readiness);
    loop {
        let (signal_ready, dir_ready) = {
            let mut fds = [
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::from(RESYNC_MS)) {
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(sys("waiting for events")(e)),
                Ok(_) => {}
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[1]))
        };
        if signal_ready {
            if let Ok(Some(info)) = signals.read_signal() {
                eprintln!("cni-install: signal {}, exiting", info.ssi_signo);
            }
            break;
        }
        let mut relevant = !dir_ready; // the resync timeout
        if dir_ready {
            loop {
                match inotify.read_events(&mut buffer) {
                    Ok(events) => {
                        let mut any = false;
                        for event in events {
                            any = true;
                            let ours = event
                                .name
                                .and_then(|n| n.to_str())
                                .is_some_and(files::is_our_temp_file);
                            relevant |= !ours;
                        }
                        if !any {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(source) => {
                        return Err(InstallError::Io {
                            what: "reading inotify events".into(),
                            source,
                        })
                    }
                }
            }
        }
        if relevant {
            reconcile_and_report(node, readiness);
        }
    }
    let removed = files::remove_if_present(readiness);
    if cleanup {
        node.cleanup()?;
    }
    removed
}
