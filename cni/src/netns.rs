//! Network namespaces by path: validation (the path must be an nsfs or procfs
//! namespace file), identity comparison, and a guard that moves the *current
//! thread* into a netns and moves it back on drop. Never hold a guard across
//! an await on a multi-thread runtime: setns is per thread. Threads spawned
//! while a guard is alive start in the target netns (clone(2) copies the
//! creator's namespaces), so spawn helpers before entering, not inside.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use nix::sys::statfs::{statfs, NSFS_MAGIC, PROC_SUPER_MAGIC};

/// Why a netns could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("netns {path}: does not exist")]
    /// Nothing exists at the path.
    NotFound {
        /// The netns path.
        path: PathBuf,
    },
    #[error("netns {path}: not a network namespace file")]
    /// The path exists but is not a network namespace (e.g. an unmounted pin).
    NotANamespace {
        /// The netns path.
        path: PathBuf,
    },
    #[error("netns {path}: {source}")]
    /// Opening or reading the netns file failed.
    Io {
        /// The netns path.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    #[error("entering netns {path}: {source}")]
    /// setns(2) into the netns failed.
    Setns {
        /// The netns path.
        path: PathBuf,
        /// The errno.
        source: nix::Error,
    },
    #[error("creating a netns (unshare): {0}")]
    /// unshare(2) of the network namespace failed.
    Unshare(nix::Error),
    #[error("returning to the original netns: {0}")]
    /// The thread could not return to the netns it started in.
    Restore(nix::Error),
}

impl NetnsError {
    /// True when the netns path does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetnsError::NotFound { .. })
    }
}

impl From<NetnsError> for crate::CniError {
    fn from(e: NetnsError) -> Self {
        crate::CniError::internal(e.to_string())
    }
}

/// The path of the calling thread's netns.
pub const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// Checks, without opening it, that `path` is a netns file (nsfs, or a /proc
/// ns link). Never opens: a FIFO at `path` must not block the caller.
pub fn check_kind(path: &Path) -> Result<(), NetnsError> {
    let fs = statfs(path).map_err(|e| match e {
        nix::Error::ENOENT => NetnsError::NotFound {
            path: path.to_path_buf(),
        },
        other => NetnsError::Io {
            path: path.to_path_buf(),
            source: other.into(),
        },
    })?;
    let t = fs.filesystem_type();
    if t != NSFS_MAGIC && t != PROC_SUPER_MAGIC {
        return Err(NetnsError::NotANamespace {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Opens a netns file after checking it is one (nsfs, or a /proc ns link).
pub fn open(path: &Path) -> Result<File, NetnsError> {
    check_kind(path)?;
    File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => NetnsError::NotFound {
            path: path.to_path_buf(),
        },
        _ => NetnsError::Io {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// True when `path` is the netns the calling thread is in.
pub fn is_current(path: &Path) -> Result<bool, NetnsError> {
    let here = std::fs::metadata(THREAD_NETNS).map_err(|source| NetnsError::Io {
        path: THREAD_NETNS.into(),
        source,
    })?;
    let there = open(path)?.metadata().map_err(|source| NetnsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(here.dev() == there.dev() && here.ino() == there.ino())
}

/// While alive, the current thread is inside another netns.
#[derive(Debug)]
pub struct NetnsGuard {
    original: Option<File>,
}

impl NetnsGuard {
    /// Moves the current thread into the netns at `path`.
    pub fn enter(path: &Path) -> Result<NetnsGuard, NetnsError> {
        let target = open(path)?;
        let original = File::open(THREAD_NETNS).map_err(|source| NetnsError::Io {
            path: THREAD_NETNS.into(),
            source,
        })?;
        setns(&target, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Setns {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(NetnsGuard {
            original: Some(original),
        })
    }

    /// Moves the current thread into a new, empty netns of its own
    /// (`unshare(CLONE_NEWNET)`: no file names it). Once the thread has
    /// left and no socket made in it is open, nothing holds it and the
    /// kernel dismantles it, asynchronously.
    pub fn enter_new() -> Result<NetnsGuard, NetnsError> {
        let original = File::open(THREAD_NETNS).map_err(|source| NetnsError::Io {
            path: THREAD_NETNS.into(),
            source,
        })?;
        nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(NetnsError::Unshare)?;
        Ok(NetnsGuard {
            original: Some(original),
        })
    }

    /// Returns to the original netns, reporting failure (drop only logs it).
    pub fn leave(mut self) -> Result<(), NetnsError> {
        match self.original.take() {
            Some(f) => setns(&f, CloneFlags::CLONE_NEWNET).map_err(NetnsError::Restore),
            None => Ok(()),
        }
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let Some(original) = self.original.take() else {
            return;
        };
        if let Err(e) = setns(&original, CloneFlags::CLONE_NEWNET) {
            // Nothing sane can continue on this thread in the wrong netns.
            eprintln!("fatal: cannot return to the original netns: {e}");
            std::process::abort();
        }
    }
}

/// Runs `f` with the current thread inside the netns at `path`.
pub fn run_in<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T, NetnsError> {
    let guard = NetnsGuard::enter(path)?;
    let out = f();
    guard.leave()?;
    Ok(out)
}
