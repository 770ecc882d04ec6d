//! The only module that touches the kernel: reads and writes sysctls and link
//! attributes inside the container's netns. The calling thread enters the
//! netns for the whole operation (so `/proc/sys/net` resolves there) and the
//! rtnetlink socket is opened inside it, lazily, only when a link is needed.
//! Each link attribute is its own RTM_SETLINK so a failure names the
//! attribute. No planning or policy here: callers decide what to write.
//!
//! Cost matters (CRI-O runs CHECK after every ADD), so this module talks
//! rtnetlink over one plain blocking socket (`cni::rtnl`, no async runtime)
//! with cni's link verbs: one RTM_GETLINK (VF stats skipped) to read a link,
//! one RTM_SETLINK per attribute.
//! Sysctls go through `cni::sysctl` (race-free `O_PATH` open with an escape
//! check); this module only adds the netns and the configured key to its
//! errors.

use std::path::{Path, PathBuf};

use cni::netns::{NetnsError, NetnsGuard};
use cni::rtnl::{Rtnl, RtnlError};
use cni::sysctl::{Sysctl, SysctlError, SysctlKey};
use cni::CniError;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

use crate::config::Config;
use crate::mac::Mac;
use crate::plan::{LinkState, Observed, Step};

/// A kernel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("tuning: netns {0} is gone")]
    NetnsGone(PathBuf),
    #[error("tuning: {0}")]
    Netns(#[from] NetnsError),
    #[error("tuning: in netns {netns}: opening a netlink socket: {source}")]
    Netlink {
        netns: String,
        source: std::io::Error,
    },
    #[error("tuning: sysctl {key:?} resolves to {real}, outside /proc/sys/net")]
    SysctlEscape { key: String, real: String },
    #[error("tuning: {op} sysctl {key} (/proc/sys/{path}) in netns {netns}: {source}")]
    Sysctl {
        op: &'static str,
        key: String,
        path: String,
        netns: String,
        source: std::io::Error,
    },
    #[error("tuning: link {ifname:?} not found in netns {netns}")]
    LinkMissing { ifname: String, netns: String },
    #[error("tuning: reading link {ifname:?} in netns {netns}: {reason}")]
    LinkRead {
        ifname: String,
        netns: String,
        reason: String,
    },
    /// `target` is `eth0 (ifindex 7)`, or just the name when set by name.
    #[error("tuning: setting {step} on {target} in netns {netns}: {reason}")]
    LinkSet {
        step: String,
        target: String,
        netns: String,
        reason: String,
        /// The kernel's errno, when it answered with one.
        errno: Option<i32>,
    },
}

impl KernelError {
    /// The object is gone (netns, link, or a per-interface sysctl file).
    pub fn is_gone(&self) -> bool {
        match self {
            KernelError::NetnsGone(_) | KernelError::LinkMissing { .. } => true,
            KernelError::Sysctl { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            KernelError::LinkSet { errno, .. } => *errno == Some(libc::ENODEV),
            _ => false,
        }
    }
}

impl From<KernelError> for CniError {
    fn from(e: KernelError) -> Self {
        match e {
            KernelError::SysctlEscape { .. } => CniError::invalid_config(e.to_string()),
            _ => CniError::internal(e.to_string()),
        }
    }
}

/// Access to one netns's sysctls and links; exists only while the calling
/// thread is inside that netns (see [`in_netns`]).
pub struct Kernel {
    sysctl: Sysctl,
    netns: String,
    rtnl: Option<Rtnl>,
}

/// Runs `f` with the current thread inside the netns at `netns`. A missing
/// netns (or a path that is no longer a netns, e.g. an unmounted pin) is
/// `KernelError::NetnsGone`.
pub fn in_netns<T>(netns: &Path, f: impl FnOnce(&mut Kernel) -> T) -> Result<T, KernelError> {
    let guard = match NetnsGuard::enter(netns) {
        Ok(g) => g,
        Err(NetnsError::NotFound { .. } | NetnsError::NotANamespace { .. }) => {
            return Err(KernelError::NetnsGone(netns.to_path_buf()))
        }
        Err(e) => return Err(e.into()),
    };
    let mut kernel = Kernel::with_root("/proc/sys", &netns.display().to_string());
    let out = f(&mut kernel);
    drop(kernel);
    guard.leave()?;
    Ok(out)
}

impl Kernel {
    /// A kernel view with sysctls below `root` (tests use a temp dir).
    pub fn with_root(root: impl Into<PathBuf>, netns: &str) -> Kernel {
        Kernel {
            sysctl: Sysctl::with_root(root),
            netns: netns.to_string(),
            rtnl: None,
        }
    }

    /// Reads a sysctl (`key` as configured, `path` normalised); one
    /// trailing newline removed.
    pub fn read_sysctl(&mut self, key: &str, path: &SysctlKey) -> Result<String, KernelError> {
        self.sysctl
            .read(path)
            .map_err(|e| self.sysctl_error("reading", key, path, e))
    }

    /// Writes a sysctl (`key` as configured, `path` normalised).
    pub fn write_sysctl(
        &mut self,
        key: &str,
        path: &SysctlKey,
        value: &str,
    ) -> Result<(), KernelError> {
        self.sysctl
            .write(path, value)
            .map_err(|e| self.sysctl_error("writing", key, path, e))
    }

    /// An escape is code 7 ([`KernelError::SysctlEscape`]); anything else
    /// names the operation, both key forms and the netns.
    fn sysctl_error(
        &self,
        op: &'static str,
        key: &str,
        path: &SysctlKey,
        e: SysctlError,
    ) -> KernelError {
        match e {
            SysctlError::Escape { real, .. } => KernelError::SysctlEscape {
                key: key.to_string(),
                real: real.display().to_string(),
            },
            SysctlError::Io(source) => KernelError::Sysctl {
                op,
                key: key.to_string(),
                path: path.to_string(),
                netns: self.netns.clone(),
                source,
            },
        }
    }

    fn rtnl(&mut self) -> Result<&Rtnl, KernelError> {
        if self.rtnl.is_none() {
            let r = Rtnl::open().map_err(|e| KernelError::Netlink {
                netns: self.netns.clone(),
                source: match e {
                    RtnlError::Io(io) => io,
                    other => std::io::Error::other(other.to_string()),
                },
            })?;
            self.rtnl = Some(r);
        }
        match &self.rtnl {
            Some(r) => Ok(r),
            None => Err(KernelError::LinkRead {
                ifname: String::new(),
                netns: self.netns.clone(),
                reason: "no netlink socket".into(),
            }),
        }
    }

    /// The link's current attributes; `Ok(None)` when it does not exist.
    pub fn link(&mut self, ifname: &str) -> Result<Option<LinkState>, KernelError> {
        match self.rtnl()?.link_by_name(ifname) {
            Ok(Some(link)) => Ok(Some(link_state(&link))),
            Ok(None) => Ok(None),
            Err(e) => Err(KernelError::LinkRead {
                ifname: ifname.to_string(),
                netns: self.netns.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// Like [`Kernel::link`], but a missing link is an error.
    pub fn existing_link(&mut self, ifname: &str) -> Result<LinkState, KernelError> {
        self.link(ifname)?.ok_or_else(|| KernelError::LinkMissing {
            ifname: ifname.to_string(),
            netns: self.netns.clone(),
        })
    }

    /// Reads everything `config` names (the link only if it sets any
    /// attribute).
    pub fn observe(&mut self, config: &Config, ifname: &str) -> Result<Observed, KernelError> {
        let sysctls = config
            .sysctls
            .iter()
            .map(|s| self.read_sysctl(&s.key, &s.path))
            .collect::<Result<Vec<_>, _>>()?;
        let link = if config.link.is_empty() {
            None
        } else {
            Some(self.existing_link(ifname)?)
        };
        Ok(Observed { sysctls, link })
    }

    /// Performs one step: a sysctl write, or one RTM_SETLINK on `index`
    /// (`0`: on the link named `ifname`, which spares DEL an RTM_GETLINK; a
    /// missing link is then ENODEV, see [`KernelError::is_gone`]).
    pub fn apply(&mut self, step: &Step, ifname: &str, index: u32) -> Result<(), KernelError> {
        let netns = self.netns.clone();
        let rtnl = match step {
            Step::Sysctl { key, path, value } => return self.write_sysctl(key, path, value),
            _ => self.rtnl()?,
        };
        let set = if index == 0 {
            rtnl.link_set_by_name(ifname)
        } else {
            rtnl.link_set(index)
        };
        let set = match step {
            Step::Sysctl { .. } => set,
            Step::Promisc(on) => set.promisc(*on),
            Step::Allmulti(on) => set.allmulti(*on),
            Step::Mac(m) => set.address(&m.0),
            Step::Mtu(m) => set.mtu(*m),
            Step::TxQLen(q) => set.tx_queue_len(*q),
        };
        set.execute().map_err(|e| KernelError::LinkSet {
            step: step.to_string(),
            target: if index == 0 {
                ifname.to_string()
            } else {
                format!("{ifname} (ifindex {index})")
            },
            netns,
            errno: e.errno(),
            reason: e.to_string(),
        })
    }
}

fn link_state(msg: &LinkMessage) -> LinkState {
    let mut state = LinkState {
        index: msg.header.index,
        mac: None,
        promisc: msg.header.flags.contains(LinkFlags::Promisc),
        mtu: 0,
        allmulti: msg.header.flags.contains(LinkFlags::Allmulti),
        tx_qlen: 0,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::Address(a) => state.mac = Mac::from_bytes(a),
            LinkAttribute::Mtu(m) => state.mtu = *m,
            LinkAttribute::TxQueueLen(q) => state.tx_qlen = *q,
            _ => {}
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::ErrorCode;

    #[test]
    fn sysctls_are_read_and_written_below_an_injected_root_and_escapes_are_code_7() {
        let tmp = tempfile::Builder::new()
            .prefix("tuning-kernel-")
            .tempdir()
            .unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("net/core")).unwrap();
        std::fs::create_dir_all(root.join("kernel")).unwrap();
        std::fs::write(root.join("net/core/somaxconn"), "4096\n").unwrap();
        std::fs::write(root.join("kernel/hostname"), "h\n").unwrap();
        std::os::unix::fs::symlink(root.join("kernel"), root.join("net/escape")).unwrap();
        let mut k = Kernel::with_root(root, "test");
        let key = SysctlKey::parse("net.core.somaxconn", "eth0").unwrap();
        assert_eq!(k.read_sysctl("net.core.somaxconn", &key).unwrap(), "4096");
        k.write_sysctl("net.core.somaxconn", &key, "1").unwrap();
        assert_eq!(k.read_sysctl("net.core.somaxconn", &key).unwrap(), "1");

        let esc = SysctlKey::parse("net.escape.hostname", "eth0").unwrap();
        let e = k.read_sysctl("net.escape.hostname", &esc).unwrap_err();
        assert!(matches!(e, KernelError::SysctlEscape { .. }), "{e}");
        let e = CniError::from(
            k.write_sysctl("net.escape.hostname", &esc, "x")
                .unwrap_err(),
        );
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
        assert!(e.msg.contains("net.escape.hostname"), "{e}");
        assert_eq!(
            std::fs::read_to_string(root.join("kernel/hostname")).unwrap(),
            "h\n"
        );

        let missing = SysctlKey::parse("net.core.nope", "eth0").unwrap();
        let e = k.read_sysctl("net.core.nope", &missing).unwrap_err();
        assert!(e.is_gone(), "{e}");
        assert!(e.to_string().contains("/proc/sys/net/core/nope"), "{e}");
    }
}
