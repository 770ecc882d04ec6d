//! The only module that touches the kernel: reads and writes sysctls and link
//! attributes inside the container's netns. The calling thread enters the
//! netns for the whole operation (so `/proc/sys/net` resolves there) and the
//! netlink socket is opened inside it, lazily, only when a link is needed.
//! Each link attribute is its own RTM_SETLINK so a failure names the
//! attribute. No planning or policy here: callers decide what to write.

use std::path::{Path, PathBuf};

use cni::netlink::{describe, NetlinkError, NetlinkSession};
use cni::netns::{NetnsError, NetnsGuard};
use cni::sysctl::{Sysctl, SysctlKey};
use cni::CniError;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::LinkUnspec;

use crate::config::{Config, Mac};
use crate::plan::{LinkState, Observed, Step};

/// A kernel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("tuning: netns {0} is gone")]
    NetnsGone(PathBuf),
    #[error("tuning: {0}")]
    Netns(#[from] NetnsError),
    #[error("tuning: in netns {netns}: {source}")]
    Netlink { netns: String, source: NetlinkError },
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
    #[error("tuning: setting {step} on {ifname} (ifindex {index}) in netns {netns}: {reason}")]
    LinkSet {
        step: String,
        ifname: String,
        index: u32,
        netns: String,
        reason: String,
    },
}

impl KernelError {
    /// The object is gone (netns, link, or a per-interface sysctl file).
    pub fn is_gone(&self) -> bool {
        match self {
            KernelError::NetnsGone(_) | KernelError::LinkMissing { .. } => true,
            KernelError::Sysctl { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
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
    sysctl_root: PathBuf,
    netns: String,
    netlink: Option<NetlinkSession>,
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
        let root = root.into();
        Kernel {
            sysctl: Sysctl::with_root(&root),
            sysctl_root: root,
            netns: netns.to_string(),
            netlink: None,
        }
    }

    /// Refuses (code 7) a key whose file resolves outside `<root>/net`.
    fn checked(&self, key: &str, path: &SysctlKey, op: &'static str) -> Result<(), KernelError> {
        let file = self.sysctl.path(path);
        let io_err = |source| KernelError::Sysctl {
            op,
            key: key.to_string(),
            path: path.to_string(),
            netns: self.netns.clone(),
            source,
        };
        let real = std::fs::canonicalize(&file).map_err(io_err)?;
        let net = std::fs::canonicalize(self.sysctl_root.join("net")).map_err(io_err)?;
        if real.starts_with(&net) {
            Ok(())
        } else {
            Err(KernelError::SysctlEscape {
                key: key.to_string(),
                real: real.display().to_string(),
            })
        }
    }

    pub fn read_sysctl(&self, key: &str, path: &SysctlKey) -> Result<String, KernelError> {
        self.checked(key, path, "reading")?;
        self.sysctl
            .read(path)
            .map_err(|source| KernelError::Sysctl {
                op: "reading",
                key: key.to_string(),
                path: path.to_string(),
                netns: self.netns.clone(),
                source,
            })
    }

    pub fn write_sysctl(
        &self,
        key: &str,
        path: &SysctlKey,
        value: &str,
    ) -> Result<(), KernelError> {
        self.checked(key, path, "writing")?;
        self.sysctl
            .write(path, value)
            .map_err(|source| KernelError::Sysctl {
                op: "writing",
                key: key.to_string(),
                path: path.to_string(),
                netns: self.netns.clone(),
                source,
            })
    }

    fn session(&mut self) -> Result<&NetlinkSession, KernelError> {
        if self.netlink.is_none() {
            let s = NetlinkSession::open(None).map_err(|source| KernelError::Netlink {
                netns: self.netns.clone(),
                source,
            })?;
            self.netlink = Some(s);
        }
        match &self.netlink {
            Some(s) => Ok(s),
            None => Err(KernelError::LinkRead {
                ifname: String::new(),
                netns: self.netns.clone(),
                reason: "no netlink session".into(),
            }),
        }
    }

    /// The link's current attributes; `Ok(None)` when it does not exist.
    pub fn link(&mut self, ifname: &str) -> Result<Option<LinkState>, KernelError> {
        let netns = self.netns.clone();
        let msg = self
            .session()?
            .link_by_name(ifname)
            .map_err(|e| KernelError::LinkRead {
                ifname: ifname.to_string(),
                netns,
                reason: describe(&e),
            })?;
        Ok(msg.as_ref().map(link_state))
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

    /// Performs one step: a sysctl write, or one RTM_SETLINK on `index`.
    pub fn apply(&mut self, step: &Step, ifname: &str, index: u32) -> Result<(), KernelError> {
        let req = LinkUnspec::new_with_index(index);
        let msg = match step {
            Step::Sysctl { key, path, value } => return self.write_sysctl(key, path, value),
            Step::Mac(m) => req.address(m.0.to_vec()).build(),
            Step::Promisc(on) => req.promiscuous(*on).build(),
            Step::Mtu(m) => req.mtu(*m).build(),
            Step::Allmulti(on) => req.allmulticast(*on).build(),
            Step::TxQLen(q) => req.txqueuelen(*q).build(),
        };
        let netns = self.netns.clone();
        let session = self.session()?;
        let request = session.handle().link().set(msg).execute();
        session.block_on(request).map_err(|e| KernelError::LinkSet {
            step: step.to_string(),
            ifname: ifname.to_string(),
            index,
            netns,
            reason: describe(&e),
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
        let root = std::env::temp_dir().join(format!("tuning-kernel-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("net/core")).unwrap();
        std::fs::create_dir_all(root.join("kernel")).unwrap();
        std::fs::write(root.join("net/core/somaxconn"), "4096\n").unwrap();
        std::fs::write(root.join("kernel/hostname"), "h\n").unwrap();
        std::os::unix::fs::symlink(root.join("kernel"), root.join("net/escape")).unwrap();
        let k = Kernel::with_root(&root, "test");
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
        std::fs::remove_dir_all(&root).unwrap();
    }
}
