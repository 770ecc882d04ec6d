//! Plugin-private state under `/run/cni-portmap`, per host netns (by inode),
//! whatever the backend: the flock that serialises portmap's
//! list-then-modify sequences, and one index file per attachment in which
//! the backend records what its ADD installed (the nftables backend: its
//! elements and pod chain), so DEL finds them without listing. An index is
//! a hint, never the authority. Directories are 0700, files 0600. Touches
//! no kernel object.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cni::args::Owner;
use cni::CniError;
use nix::fcntl::{Flock, FlockArg};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::plan::owner_hash;

const STATE_DIR: &str = "/run/cni-portmap";

fn netns_ino() -> Result<u64, CniError> {
    std::fs::metadata(cni::netns::THREAD_NETNS)
        .map(|m| m.ino())
        .map_err(|e| CniError::io(format!("portmap: reading the current netns: {e}")))
}

/// Creates `dir` (and missing parents) 0700; an existing directory that is
/// not 0700 (an older version created them 0755) is made so. One stat when
/// all is well.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.permissions().mode() & 0o777 == 0o700 => Ok(()),
        Ok(_) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)),
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir),
    }
}

/// The current netns's queue of background UDP conntrack flushes
/// (`netns-<ino>.udp`, see [`crate::flush_queue`]), created 0700 if needed.
pub fn udp_flush_dir() -> Result<PathBuf, CniError> {
    let dir = PathBuf::from(format!("{STATE_DIR}/netns-{}.udp", netns_ino()?));
    private_dir(&dir)
        .map_err(|e| CniError::io(format!("portmap: creating {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Serialises portmap's list-then-modify sequences within one netns.
pub struct NetnsLock {
    _lock: Flock<File>,
}

impl NetnsLock {
    /// Takes the lock of the current netns, waiting for it.
    pub fn take() -> Result<NetnsLock, CniError> {
        let ino = netns_ino()?;
        private_dir(Path::new(STATE_DIR))
            .map_err(|e| CniError::io(format!("portmap: creating {STATE_DIR}: {e}")))?;
        let path = format!("{STATE_DIR}/netns-{ino}.lock");
        let lock = lock_file(Path::new(&path))
            .map_err(|e| CniError::io(format!("portmap: locking {path}: {e}")))?;
        crate::netns_state::adopt(std::path::Path::new(&format!("{STATE_DIR}/netns-{ino}")))?;
        crate::netns_state::prune_if_crowded(std::path::Path::new(STATE_DIR), ino);
        Ok(NetnsLock { _lock: lock })
    }
}

/// An exclusive flock on `path` (a private file, created if missing),
/// waiting for it; released when the lock is dropped or its holder dies.
pub fn lock_file(path: &Path) -> std::io::Result<Flock<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e.into())
}

/// Removes the state of network namespaces that no longer exist (GC).
pub fn prune_dead() -> Result<Vec<String>, CniError> {
    let ino = netns_ino()?;
    let live = crate::netns_state::live_netns_inodes();
    Ok(crate::netns_state::prune(
        std::path::Path::new(STATE_DIR),
        &live,
        ino,
    ))
}

fn index_path(owner: &Owner) -> Result<PathBuf, CniError> {
    Ok(PathBuf::from(format!(
        "{STATE_DIR}/netns-{}/{}.json",
        netns_ino()?,
        owner_hash(owner)
    )))
}

/// The index of `owner`, if any (an unreadable one counts as absent).
pub fn read_index<T: DeserializeOwned>(owner: &Owner) -> Result<Option<T>, CniError> {
    let path = index_path(owner)?;
    match std::fs::read(&path) {
        Ok(bytes) => Ok(cni::gojson::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CniError::io(format!(
            "portmap: reading {}: {e}",
            path.display()
        ))),
    }
}

/// Every index of the current netns that reads as `T` (others, and
/// temporary files, are skipped): what healing rebuilds from.
pub fn read_indexes<T: DeserializeOwned>() -> Result<Vec<T>, CniError> {
    let dir = PathBuf::from(format!("{STATE_DIR}/netns-{}", netns_ino()?));
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(CniError::io(format!(
                "portmap: reading {}: {e}",
                dir.display()
            )))
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        if let Ok(bytes) = std::fs::read(&path) {
            if let Ok(index) = cni::gojson::from_slice(&bytes) {
                out.push(index);
            }
        }
    }
    Ok(out)
}

/// Writes the index atomically (temporary file + rename).
pub fn write_index<T: Serialize>(owner: &Owner, index: &T) -> Result<(), CniError> {
    let text = serde_json::to_vec(index)
        .map_err(|e| CniError::internal(format!("portmap: encoding the index: {e}")))?;
    write_atomically(&index_path(owner)?, &text)
}

/// The path of the backend's private file `name` (not an index: its name
/// does not end in `.json`) in the current netns's state directory.
fn private_path(name: &str) -> Result<PathBuf, CniError> {
    Ok(PathBuf::from(format!(
        "{STATE_DIR}/netns-{}/{name}",
        netns_ino()?
    )))
}

/// The content of the private file `name`, if it can be read.
pub fn read_private(name: &str) -> Option<Vec<u8>> {
    std::fs::read(private_path(name).ok()?).ok()
}

/// Writes the private file `name` atomically (under the netns lock).
pub fn write_private(name: &str, bytes: &[u8]) -> Result<(), CniError> {
    write_atomically(&private_path(name)?, bytes)
}

/// Removes the private file `name` (a missing one is fine; a failure only
/// leaves a file that readers check anyway).
pub fn remove_private(name: &str) {
    if let Ok(path) = private_path(name) {
        let _ = std::fs::remove_file(path);
    }
}

/// Writes `text` to `path` (0600) through a temporary file (`path` with
/// the extension `tmp`) and a rename, creating the directory if needed.
pub fn write_atomically(path: &Path, text: &[u8]) -> Result<(), CniError> {
    let err = |what: &str, e: std::io::Error| {
        CniError::io(format!("portmap: {what} {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent() {
        private_dir(dir).map_err(|e| err("creating the directory of", e))?;
    }
    let tmp = path.with_extension("tmp");
    cni::failpoint::crash_point("portmap index write");
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err("creating", e))?;
    f.write_all(text).map_err(|e| err("writing", e))?;
    cni::failpoint::crash_point("portmap index rename");
    std::fs::rename(&tmp, path).map_err(|e| err("renaming into", e))
}

/// Removes the index of `owner`, and the temporary file of a writer killed
/// before its rename (issue #15 §3; writers hold the netns lock, as DEL
/// does, so no live writer owns it); missing ones are fine.
pub fn remove_index(owner: &Owner) -> Result<(), CniError> {
    let path = index_path(owner)?;
    cni::failpoint::crash_point("portmap index remove");
    for p in [path.with_extension("tmp"), path] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CniError::io(format!(
                    "portmap: removing {}: {e}",
                    p.display()
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_file_is_exclusive_until_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("lock");
        let held = lock_file(&path).unwrap();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        assert!(Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err());
        drop(held);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        assert!(Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
