//! Keeps `/run/cni-portmap/netns-<inode>` from outliving the netns it
//! describes. An nsfs inode number is reused once its namespace is gone, so
//! each state directory records the namespace's cookie (`SO_NETNS_COOKIE`,
//! Linux ≥ 5.14: a 64-bit id never reused while the system runs) in an
//! `identity` file. Under the netns lock, [`adopt`] compares it with the
//! current namespace's cookie: a directory written by an earlier namespace
//! that had the same inode is emptied before anything reads it. [`prune`]
//! removes the directories and lock files of namespaces that no longer
//! exist (no process and no nsfs mount refers to their inode). Where the
//! kernel lacks the cookie, the identity is the inode alone (today's
//! behaviour). Touches no kernel object.

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::path::Path;

use cni::CniError;

const IDENTITY: &str = "identity";

/// The cookie of the calling thread's netns, if the kernel has one.
pub fn netns_cookie() -> Option<u64> {
    let sock = std::os::unix::net::UnixDatagram::unbound().ok()?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cookie`, a live
    // u64 whose size `len` states; the fd is open for the whole call.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    (rc == 0 && len as usize == std::mem::size_of::<u64>()).then_some(cookie)
}

/// Makes `dir` (the state directory of the current netns) belong to the
/// current netns: when its `identity` names another namespace (or is
/// missing while index files exist), its files are removed; then the
/// identity is (re)written. Call with the netns lock held.
pub fn adopt(dir: &Path) -> Result<(), CniError> {
    let Some(cookie) = netns_cookie() else {
        return Ok(());
    };
    let want = cookie.to_string();
    let id_path = dir.join(IDENTITY);
    let have = std::fs::read_to_string(&id_path).ok();
    if have.as_deref().map(str::trim) == Some(want.as_str()) {
        return Ok(());
    }
    let err = |what: &str, p: &Path, e: std::io::Error| {
        CniError::io(format!("portmap: {what} {}: {e}", p.display()))
    };
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let p = entry.path();
                std::fs::remove_file(&p).or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(err("removing stale", &p, e)),
                })?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("listing", dir, e)),
    }
    {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err("creating", dir, e))?;
        let tmp = dir.join(".identity.tmp");
        cni::failpoint::crash_point("portmap identity write");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(want.as_bytes()))
            .map_err(|e| err("writing", &tmp, e))?;
    }
    let tmp = dir.join(".identity.tmp");
    cni::failpoint::crash_point("portmap identity rename");
    std::fs::rename(&tmp, &id_path).map_err(|e| err("renaming into", &id_path, e))
}

/// Inodes of the network namespaces that exist as far as can be seen: those
/// of every process's `/proc/<pid>/task/<tid>/ns/net`, of every open nsfs
/// file descriptor (`net:[<ino>]`) and of every nsfs mount (`ip netns add`,
/// runtimes' pinned namespaces). A namespace kept only by a socket is
/// missed; losing its index only costs DEL a listing (an index is a hint).
pub fn live_netns_inodes() -> BTreeSet<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut live = BTreeSet::new();
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let name = p.file_name();
            if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Ok(fds) = std::fs::read_dir(p.path().join("fd")) {
                for fd in fds.flatten() {
                    let Ok(target) = std::fs::read_link(fd.path()) else {
                        continue;
                    };
                    let target = target.to_string_lossy();
                    if let Some(ino) = target
                        .strip_prefix("net:[")
                        .and_then(|t| t.strip_suffix(']'))
                        .and_then(|t| t.parse().ok())
                    {
                        live.insert(ino);
                    }
                }
            }
            let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else {
                continue;
            };
            for t in tasks.flatten() {
                if let Ok(m) = std::fs::metadata(t.path().join("ns/net")) {
                    live.insert(m.ino());
                }
            }
        }
    }
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in mounts.lines() {
            // "... - nsfs nsfs rw": the mount point is field 5.
            if !line.contains(" - nsfs ") {
                continue;
            }
            if let Some(point) = line.split(' ').nth(4) {
                if let Ok(m) = std::fs::metadata(point.replace("\\040", " ")) {
                    live.insert(m.ino());
                }
            }
        }
    }
    live
}

/// The inode a state entry name (`netns-<ino>`, `netns-<ino>.lock` or the
/// flush queue `netns-<ino>.udp`) is for.
pub fn entry_inode(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("netns-")?;
    let ino = rest
        .strip_suffix(".lock")
        .or_else(|| rest.strip_suffix(".udp"))
        .unwrap_or(rest);
    ino.parse().ok()
}

/// Removes state entries under `root` of namespaces not in `live`; never the
/// current one (`current`). Returns the names removed. Errors are ignored
/// per entry (another portmap may be removing the same one).
pub fn prune(root: &Path, live: &BTreeSet<u64>, current: u64) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(ino) = entry_inode(&name) else {
            continue;
        };
        if ino == current || live.contains(&ino) {
            continue;
        }
        let p = entry.path();
        let gone = if p.is_dir() {
            std::fs::remove_dir_all(&p).is_ok()
        } else {
            std::fs::remove_file(&p).is_ok()
        };
        if gone {
            removed.push(name);
        }
    }
    removed
}

/// Entries under the state root above which ADD/DEL prune too (GC always
/// does): a readdir count is cheap, the scan of `/proc` is not.
pub const PRUNE_ABOVE: usize = 32;

/// [`prune`] with the live set of this moment, only when `root` holds more
/// than [`PRUNE_ABOVE`] entries.
pub fn prune_if_crowded(root: &Path, current: u64) {
    let crowded = std::fs::read_dir(root)
        .map(|rd| rd.count() > PRUNE_ABOVE)
        .unwrap_or(false);
    if crowded {
        prune(root, &live_netns_inodes(), current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        assert_eq!(entry_inode("netns-4026532"), Some(4026532));
        assert_eq!(entry_inode("netns-4026532.lock"), Some(4026532));
        assert_eq!(entry_inode("netns-4026532.udp"), Some(4026532));
        assert_eq!(entry_inode("other"), None);
        assert_eq!(entry_inode("netns-x.lock"), None);
    }

    #[test]
    fn stale_identity_empties_the_directory() {
        let Some(cookie) = netns_cookie() else {
            println!("skipped: this kernel has no SO_NETNS_COOKIE");
            return;
        };
        let tmp = std::env::temp_dir().join(format!("portmap-adopt-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join(IDENTITY), "1").unwrap();
        std::fs::write(tmp.join("abc.json"), "{}").unwrap();
        adopt(&tmp).unwrap();
        assert!(!tmp.join("abc.json").exists(), "stale index trusted");
        assert_eq!(
            std::fs::read_to_string(tmp.join(IDENTITY)).unwrap(),
            cookie.to_string()
        );
        std::fs::write(tmp.join("abc.json"), "{}").unwrap();
        adopt(&tmp).unwrap();
        assert!(tmp.join("abc.json").exists(), "own index removed");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn prune_keeps_live_and_current() {
        let tmp = std::env::temp_dir().join(format!("portmap-prune-{}", std::process::id()));
        for d in ["netns-1", "netns-2", "netns-3"] {
            std::fs::create_dir_all(tmp.join(d)).unwrap();
            std::fs::write(tmp.join(format!("{d}.lock")), "").unwrap();
        }
        let live = BTreeSet::from([2]);
        let mut removed = prune(&tmp, &live, 3);
        removed.sort();
        assert_eq!(removed, vec!["netns-1", "netns-1.lock"]);
        assert!(tmp.join("netns-2").exists() && tmp.join("netns-3.lock").exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
