//! Network sysctls under `/proc/sys/net/`: key normalisation (dots → slashes,
//! then the first `IFNAME` → the interface name) with traversal checks, and
//! reads/writes against an injectable root so tests need no privileges.
//! `/proc/sys/net` resolves against the *calling thread's* netns.

use std::fs;
use std::io::Write;
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
    #[error("invalid net sysctl key {0:?}: only keys under net/ are allowed")]
    NotNet(String),
    #[error("invalid sysctl key {0:?}: empty, absolute or containing '..'")]
    Traversal(String),
    #[error("invalid sysctl key {0:?}: contains a control character (NUL, newline, ...)")]
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

    pub fn as_str(&self) -> &str {
        &self.rel
    }
}

impl std::fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.rel)
    }
}

/// Access to sysctls below a root (`/proc/sys` in production).
#[derive(Debug, Clone)]
pub struct Sysctl {
    root: PathBuf,
}

impl Default for Sysctl {
    fn default() -> Self {
        Sysctl {
            root: PathBuf::from("/proc/sys"),
        }
    }
}

impl Sysctl {
    pub fn with_root(root: impl Into<PathBuf>) -> Sysctl {
        Sysctl { root: root.into() }
    }

    pub fn path(&self, key: &SysctlKey) -> PathBuf {
        self.root.join(&key.rel)
    }

    /// Refuses a key whose path resolves (through symlinks) outside
    /// `<root>/net`.
    fn checked_path(&self, key: &SysctlKey) -> std::io::Result<PathBuf> {
        let path = self.path(key);
        let net_root = fs::canonicalize(self.root.join("net"))?;
        match fs::canonicalize(&path) {
            Ok(real) if real.starts_with(&net_root) => Ok(path),
            Ok(real) => Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} resolves to {}, outside {}",
                    path.display(),
                    real.display(),
                    net_root.display()
                ),
            )),
            Err(e) => Err(e),
        }
    }

    /// The current value with one trailing newline removed.
    pub fn read(&self, key: &SysctlKey) -> std::io::Result<String> {
        let path = self.checked_path(key)?;
        let mut s = fs::read_to_string(path)?;
        if s.ends_with('\n') {
            s.pop();
        }
        Ok(s)
    }

    pub fn write(&self, key: &SysctlKey, value: &str) -> std::io::Result<()> {
        let path = self.checked_path(key)?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)?;
        f.write_all(value.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn reads_and_writes_under_an_injected_root() {
        let dir = std::env::temp_dir().join(format!("cni-sysctl-test-{}", std::process::id()));
        fs::create_dir_all(dir.join("net/core")).unwrap();
        fs::write(dir.join("net/core/somaxconn"), "4096\n").unwrap();
        let s = Sysctl::with_root(&dir);
        let k = SysctlKey::parse("net.core.somaxconn", "eth0").unwrap();
        assert_eq!(s.read(&k).unwrap(), "4096");
        s.write(&k, "100").unwrap();
        assert_eq!(s.read(&k).unwrap(), "100");
        // A symlink that escapes net/ is refused.
        std::os::unix::fs::symlink("/etc", dir.join("net/escape")).unwrap();
        let k = SysctlKey::parse("net.escape.hostname", "eth0").unwrap();
        assert!(s.read(&k).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
