//! The background UDP conntrack flushes of one netns, coalesced: every
//! verb's flush walks the kernel's whole, global conntrack hash table
//! (about 20 ms of CPU with 262144 buckets here, whatever is in it), and
//! with 50 pods ADDed or DELed at once those walks took more CPU than
//! anything else the chain ran (100 dumps; without them the parallel-pod
//! run took about 0.6 s less here). Verbs that end together share a dump
//! instead:
//!
//! 1. the verb's background child writes its [`FlushRequest`] as a file
//!    into the netns's queue directory (`/run/cni-portmap/netns-<ino>.udp`,
//!    [`crate::state::udp_flush_dir`]), after the verb committed;
//! 2. it waits for the queue's lock (a flock, released by the kernel if
//!    the holder dies);
//! 3. holding it: when its own file is gone, a flusher took it after it was
//!    written, so that flusher's dump started after this verb's commit, and
//!    there is nothing left to do; otherwise it takes every queued request,
//!    runs them in one dump, in the order they were queued
//!    ([`crate::conntrack::delete_udp`]: as if each had run when its verb
//!    ended), and removes their files.
//!
//! A request older than [`MAX_AGE`] whose writer is gone (a flusher killed
//! before it got the lock, or one of an earlier netns with the same inode)
//! is dropped unread: its verb's flush is long overdue (they are meant to
//! follow the verb within a second) and the ports may belong to someone
//! else by now. One whose writer still waits for the lock runs, however
//! old: the writer would take its file's absence for done. Without a queue
//! directory the request runs alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cni::netlink::netfilter::Nfnl;
use cni::netlink::NetlinkError;

use crate::conntrack::{delete_udp, FlushRequest};
use crate::state;

/// Queued requests older than this, whose writer is gone, are dropped
/// unread.
pub const MAX_AGE: Duration = Duration::from_secs(10);

/// Runs `request` on `sock`'s netns, sharing a dump with the requests of
/// other verbs queued meanwhile (see the module doc); alone when it cannot
/// be queued.
pub fn flush(sock: &Nfnl, request: FlushRequest) -> Result<(), NetlinkError> {
    if request.v4.is_empty() && request.v6.is_empty() {
        return Ok(());
    }
    let queued = state::udp_flush_dir().ok().and_then(|dir| {
        let queue = Queue { dir };
        let mine = queue.enqueue(&request)?;
        match state::lock_file(&queue.dir.join("lock")) {
            Ok(lock) => Some((queue, mine, lock)),
            Err(_) => {
                let _ = std::fs::remove_file(&mine);
                None
            }
        }
    });
    let Some((queue, mine, _lock)) = queued else {
        return delete_udp(sock, &[request]).map(drop);
    };
    if !mine.exists() {
        return Ok(());
    }
    let (requests, files) = queue.take();
    let result = delete_udp(sock, &requests);
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    result.map(drop)
}

/// A netns's queue directory.
struct Queue {
    dir: PathBuf,
}

/// Request files end in this; anything else in the directory is ignored.
const REQUEST: &str = "req";

impl Queue {
    /// Writes `request` into the queue (a temporary file renamed into
    /// place, so a reader sees all of it or nothing); its path.
    fn enqueue(&self, request: &FlushRequest) -> Option<PathBuf> {
        let bytes = serde_json::to_vec(request).ok()?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        // Names sort in the order the requests were queued.
        let name = format!("{now:020}-{}.{REQUEST}", std::process::id());
        let path = self.dir.join(name);
        state::write_atomically(&path, &bytes).ok()?;
        Some(path)
    }

    /// Every queued request young enough to run, in the order they were
    /// queued, and the files to remove once they ran (those too old or
    /// unreadable are removed here).
    fn take(&self) -> (Vec<FlushRequest>, Vec<PathBuf>) {
        let (mut requests, mut files) = (Vec::new(), Vec::new());
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return (requests, files);
        };
        let mut queued: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().and_then(|x| x.to_str()) == Some(REQUEST))
            .collect();
        queued.sort();
        for path in queued {
            match read_live(&path) {
                Some(r) => {
                    requests.push(r);
                    files.push(path);
                }
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        (requests, files)
    }
}

/// The request in `path` when it reads and is younger than [`MAX_AGE`] or
/// its writer (the pid in its name) is alive.
fn read_live(path: &Path) -> Option<FlushRequest> {
    let age = std::fs::metadata(path).ok()?.modified().ok()?.elapsed();
    // A modification time in the future (a clock step) counts as young.
    if age.is_ok_and(|a| a > MAX_AGE) && !writer_alive(path) {
        return None;
    }
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Whether the process named in a request's file name (`<time>-<pid>.req`)
/// exists.
fn writer_alive(path: &Path) -> bool {
    let pid = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit_once('-'))
        .and_then(|(_, pid)| pid.parse::<i32>().ok());
    pid.is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(port: u16) -> FlushRequest {
        FlushRequest {
            v4: vec![port],
            ..FlushRequest::default()
        }
    }

    /// A pid no process has (a child that was reaped).
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        child.id()
    }

    fn age(path: &Path) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - MAX_AGE - Duration::from_secs(1))
            .unwrap();
    }

    #[test]
    fn a_flusher_takes_every_live_request_and_drops_orphaned_and_garbled_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let q = Queue {
            dir: tmp.path().to_path_buf(),
        };
        let a = q.enqueue(&request(1)).unwrap();
        let b = q.enqueue(&request(2)).unwrap();
        // Old, and its writer is gone.
        let queued = q.enqueue(&request(3)).unwrap();
        let name = queued.file_name().unwrap().to_str().unwrap();
        let (time, _) = name.split_once('-').unwrap();
        let orphan = tmp.path().join(format!("{time}-{}.req", dead_pid()));
        std::fs::rename(&queued, &orphan).unwrap();
        age(&orphan);
        // Old, and its writer (this process) still waits: it runs.
        let waiting = q.enqueue(&request(4)).unwrap();
        age(&waiting);
        std::fs::write(tmp.path().join("x.req"), b"{not json").unwrap();
        std::fs::write(tmp.path().join("y.tmp"), b"{}").unwrap();
        // In the order they were queued.
        let (requests, files) = q.take();
        assert_eq!(requests, vec![request(1), request(2), request(4)]);
        assert_eq!(files, vec![a, b, waiting]);
        assert!(!orphan.exists() && !tmp.path().join("x.req").exists());
        // A writer's temporary file is not a request and stays.
        assert!(tmp.path().join("y.tmp").exists());
    }
}
