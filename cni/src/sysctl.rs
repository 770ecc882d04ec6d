//! The one implementation of network sysctl access, for every plugin:
//! key normalisation (dots → slashes, then the first `IFNAME` → the interface
//! name) with traversal checks ([`SysctlKey`]), and race-free reads and
//! writes below `/proc/sys/net/` only ([`Sysctl`]).
//!
//! A sysctl file is opened `O_PATH` (which reads and writes nothing), its
//! real path is checked through `/proc/self/fd` (one readlink, no race with
//! the open: no rename or symlink swap can slip in between), and only then is
//! it reopened through that descriptor for the read or the write. The root
//! is injectable so tests need no privileges. `/proc/sys/net` resolves
//! against the *calling thread's* netns. Knows no plugin: callers add their
//! own context to a [`SysctlError`].

use std::cell::OnceCell;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// A validated sysctl key relative to the sysctl root, always `net/...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SysctlKey {
    /// Slash form, e.g. `net/ipv4/conf/eth0/arp_filter`.
    rel: String,
}

/// A key that does not name a network sysctl.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SysctlKeyError {
    /// The key normalises to something outside `net/`.
    #[error("invalid net sysctl key {0:?}: only keys under net/ are allowed")]
    NotNet(String),
    /// The key is empty or absolute, or has an empty, `.` or `..` component.
    #[error("invalid sysctl key {0:?}: empty, absolute or containing '..'")]
    Traversal(String),
    #[error("invalid sysctl key {0:?}: contains a control character (NUL, newline, ...)")]
    /// The key contains a control character (NUL, newline, …).
    ControlCharacter(String),
}

impl SysctlKey {
    /// Normalises `key` as upstream tuning does: every `.` becomes `/`, then
    /// the first `IFNAME` becomes `ifname` (so names with dots, `eth0.100`,
    /// survive). The result must stay under `net/` with no `..`, `.` or empty
    /// components, and must not be absolute.
    pub fn parse(key: &str, ifname: &str) -> Result<SysctlKey, SysctlKeyError> {
        // A NUL cannot be in a path at all, and no sysctl name has any other
        // control character: reject them here (code 7) rather than at open.
        if key.chars().any(char::is_control) {
            return Err(SysctlKeyError::ControlCharacter(key.to_string()));
        }
        let slashed = key.replace('.', "/");
        let rel = slashed.replacen("IFNAME", ifname, 1);
        if rel.starts_with('/') || rel.is_empty() {
            return Err(SysctlKeyError::Traversal(key.to_string()));
        }
        for part in rel.split('/') {
            if part.is_empty() || part == ".." || part == "." {
                return Err(SysctlKeyError::Traversal(key.to_string()));
            }
        }
        if !rel.starts_with("net/") {
            return Err(SysctlKeyError::NotNet(key.to_string()));
        }
        // The ifname itself may contain dots; it must not contain a slash
        // (skel rejects those) or make a component `..`.
        let path = Path::new(&rel);
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(SysctlKeyError::Traversal(key.to_string()));
        }
        Ok(SysctlKey { rel })
    }

    /// The slash form relative to the sysctl root, e.g. `net/core/somaxconn`.
    pub fn as_str(&self) -> &str {
        &self.rel
    }
}

impl std::fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.rel)
    }
}

/// A sysctl read or write failed. The message names no key (callers say
/// which one and why they touched it), except for an escape.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    /// The file's real path is outside `<root>/net` (a symlink led out):
    /// nothing was read or written.
    #[error("{} resolves to {}, outside {}", path.display(), real.display(), net_root.display())]
    Escape {
        /// The path that was opened.
        path: PathBuf,
        /// Where it really is.
        real: PathBuf,
        /// `<root>/net`, symlinks resolved.
        net_root: PathBuf,
    },
    /// Opening, reading or writing failed (or the value is not UTF-8).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl SysctlError {
    /// The file does not exist (an unknown key, a missing module, or an
    /// interface that is gone).
    pub fn is_not_found(&self) -> bool {
        matches!(self, SysctlError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Access to sysctls below a root (`/proc/sys` in production). Resolves
/// `<root>/net` once, on first use.
#[derive(Debug, Clone)]
pub struct Sysctl {
    root: PathBuf,
    net_root: OnceCell<PathBuf>,
}

impl Default for Sysctl {
    fn default() -> Self {
        Sysctl::with_root("/proc/sys")
    }
}

impl Sysctl {
    /// Sysctls below `root` instead of `/proc/sys` (tests use a temp dir).
    pub fn with_root(root: impl Into<PathBuf>) -> Sysctl {
        Sysctl {
            root: root.into(),
            net_root: OnceCell::new(),
        }
    }

    /// The file of `key` below the root (not checked; for messages).
    pub fn path(&self, key: &SysctlKey) -> PathBuf {
        self.root.join(&key.rel)
    }

    fn net_root(&self) -> Result<&Path, SysctlError> {
        if let Some(net) = self.net_root.get() {
            return Ok(net);
        }
        let net = std::fs::canonicalize(self.root.join("net"))?;
        Ok(self.net_root.get_or_init(|| net))
    }

    /// Opens `key`'s file for reading or writing, refusing one whose real
    /// path is outside `<root>/net`. The check is made on the opened file
    /// itself (an `O_PATH` descriptor), which is then reopened through
    /// `/proc/self/fd`.
    fn open(&self, key: &SysctlKey, write: bool) -> Result<File, SysctlError> {
        let path = self.path(key);
        let pinned = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(&path)?;
        let fd_path = format!("/proc/self/fd/{}", pinned.as_raw_fd());
        let real = std::fs::read_link(&fd_path)?;
        let net_root = self.net_root()?;
        if !real.starts_with(net_root) {
            return Err(SysctlError::Escape {
                path,
                real,
                net_root: net_root.to_path_buf(),
            });
        }
        let mut opts = OpenOptions::new();
        if write {
            opts.write(true).truncate(true);
        } else {
            opts.read(true);
        }
        Ok(opts.open(&fd_path)?)
    }

    /// The current value with one trailing newline removed.
    pub fn read(&self, key: &SysctlKey) -> Result<String, SysctlError> {
        let mut f = self.open(key, false)?;
        // A plain read loop: `read_to_string` would stat and seek first.
        let (mut bytes, mut chunk) = (Vec::new(), [0u8; 512]);
        loop {
            match f.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut value = String::from_utf8(bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if value.ends_with('\n') {
            value.pop();
        }
        Ok(value)
    }

    /// Writes `value` (as is, no newline added) to `key`.
    pub fn write(&self, key: &SysctlKey, value: &str) -> Result<(), SysctlError> {
        crate::failpoint::crash_point("sysctl write");
        let mut f = self.open(key, true)?;
        Ok(f.write_all(value.as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn normalises_dots_and_ifname() {
        let k = SysctlKey::parse("net.ipv4.conf.IFNAME.arp_filter", "eth0.100").unwrap();
        assert_eq!(k.as_str(), "net/ipv4/conf/eth0.100/arp_filter");
        let k = SysctlKey::parse("net/core/somaxconn", "eth0").unwrap();
        assert_eq!(k.as_str(), "net/core/somaxconn");
        // Only the first IFNAME is replaced.
        let k = SysctlKey::parse("net.IFNAME.IFNAME", "e").unwrap();
        assert_eq!(k.as_str(), "net/e/IFNAME");
    }

    #[test]
    fn rejects_non_net_and_traversal() {
        for bad in [
            "kernel.hostname",
            "/proc/sys/net/core/somaxconn",
            "net/../kernel/hostname",
            "net//core",
            "",
            "netfilter/x",
            "net.core.somaxconn\0",
            "net.core.some\nmaxconn",
        ] {
            assert!(SysctlKey::parse(bad, "eth0").is_err(), "{bad} accepted");
        }
        assert!(SysctlKey::parse("net.ipv4.conf.IFNAME.x", "..").is_err());
    }

    #[test]
    fn key_errors_say_which_rule_was_broken() {
        assert_eq!(
            SysctlKey::parse("kernel.hostname", "eth0"),
            Err(SysctlKeyError::NotNet("kernel.hostname".into()))
        );
        // `..` is a traversal even when the rest would be under net/, and
        // an ifname can produce it (dots in the name become slashes first,
        // so only the substituted name can be `..` itself).
        for (key, ifname) in [
            ("net/../kernel", "eth0"),
            ("net.ipv4.conf.IFNAME.x", "."),
            ("net.ipv4.conf.IFNAME.x", ""),
            ("net.core.", "eth0"),
            ("/net/core", "eth0"),
        ] {
            assert_eq!(
                SysctlKey::parse(key, ifname),
                Err(SysctlKeyError::Traversal(key.into())),
                "{key} with {ifname:?}"
            );
        }
        // A dotted ifname is one component, not a traversal.
        let k = SysctlKey::parse("net.ipv6.conf.IFNAME.mtu", "v.1").unwrap();
        assert_eq!(k.to_string(), "net/ipv6/conf/v.1/mtu");
    }

    #[test]
    fn reads_and_writes_under_an_injected_root() {
        let dir = std::env::temp_dir().join(format!("cni-sysctl-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("net/core")).unwrap();
        fs::create_dir_all(dir.join("kernel")).unwrap();
        fs::write(dir.join("net/core/somaxconn"), "4096\n").unwrap();
        fs::write(dir.join("kernel/hostname"), "h\n").unwrap();
        let s = Sysctl::with_root(&dir);
        let k = SysctlKey::parse("net.core.somaxconn", "eth0").unwrap();
        assert_eq!(s.read(&k).unwrap(), "4096");
        s.write(&k, "100").unwrap();
        assert_eq!(s.read(&k).unwrap(), "100");
        // A symlink that escapes net/ is refused, for reads and writes.
        std::os::unix::fs::symlink(dir.join("kernel"), dir.join("net/escape")).unwrap();
        let k = SysctlKey::parse("net.escape.hostname", "eth0").unwrap();
        let e = s.read(&k).unwrap_err();
        assert!(matches!(e, SysctlError::Escape { .. }), "{e}");
        assert!(!e.is_not_found());
        let e = s.write(&k, "x").unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        assert_eq!(
            fs::read_to_string(dir.join("kernel/hostname")).unwrap(),
            "h\n"
        );
        // A missing file is "not found", not an escape.
        let k = SysctlKey::parse("net.core.nope", "eth0").unwrap();
        assert!(s.read(&k).unwrap_err().is_not_found());
        fs::remove_dir_all(&dir).unwrap();
    }
}
