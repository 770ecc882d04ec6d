//! The only module of noop that changes the kernel: makes sure
//! `net.bridge.bridge-nf-call-iptables` and `-ip6tables` are 1 in the
//! plugin's (host) netns, as kubelet's built-in no-op network plugin did.
//! It never loads modules: without br_netfilter the sysctl directory is
//! missing and that is reported as an error.

use cni::sysctl::{Sysctl, SysctlKey};
use cni::{CniError, ErrorCode};

/// The two sysctls, in the order they are set.
pub const KEYS: [&str; 2] = [
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
];

fn key(name: &str) -> Result<SysctlKey, CniError> {
    SysctlKey::parse(name, "")
        .map_err(|e| CniError::internal(format!("noop: sysctl key {name}: {e}")))
}

/// `<root>/net/bridge` exists, i.e. br_netfilter is loaded.
pub fn available(sysctl: &Sysctl) -> Result<bool, CniError> {
    Ok(sysctl.path(&key("net/bridge")?).is_dir())
}

fn missing_module(sysctl: &Sysctl, code: ErrorCode) -> Result<CniError, CniError> {
    Ok(CniError::new(
        code,
        format!(
            "noop: bridgeNfCallIptables: {} does not exist",
            sysctl.path(&key("net/bridge")?).display()
        ),
    )
    .with_details("the br_netfilter kernel module is not loaded; run `modprobe br_netfilter`"))
}

/// Sets both sysctls to 1 where they are not. Returns the keys changed.
/// `-ip6tables` is skipped when the kernel lacks it (no IPv6), as kubelet
/// did; `-iptables` is required.
pub fn ensure(sysctl: &Sysctl) -> Result<Vec<String>, CniError> {
    if !available(sysctl)? {
        return Err(missing_module(sysctl, ErrorCode::Internal)?);
    }
    let mut changed = Vec::new();
    for (i, name) in KEYS.iter().enumerate() {
        let k = key(name)?;
        let current = match sysctl.read(&k) {
            Ok(v) => v,
            Err(e) if i > 0 && e.is_not_found() => continue,
            Err(e) => {
                return Err(CniError::internal(format!(
                    "noop: reading {}: {e}",
                    sysctl.path(&k).display()
                )))
            }
        };
        if current.trim() != "1" {
            sysctl.write(&k, "1").map_err(|e| {
                CniError::internal(format!(
                    "noop: setting {} to 1: {e}",
                    sysctl.path(&k).display()
                ))
            })?;
            changed.push((*name).to_string());
        }
    }
    Ok(changed)
}

/// CHECK: both sysctls (those present) are 1.
pub fn verify(sysctl: &Sysctl) -> Result<(), CniError> {
    if !available(sysctl)? {
        return Err(missing_module(sysctl, ErrorCode::Internal)?);
    }
    for (i, name) in KEYS.iter().enumerate() {
        let k = key(name)?;
        match sysctl.read(&k) {
            Ok(v) if v.trim() == "1" => {}
            Ok(v) => {
                return Err(CniError::internal(format!(
                    "noop: {} is {}, expected 1",
                    sysctl.path(&k).display(),
                    v.trim()
                )))
            }
            Err(e) if i > 0 && e.is_not_found() => {}
            Err(e) => {
                return Err(CniError::internal(format!(
                    "noop: reading {}: {e}",
                    sysctl.path(&k).display()
                )))
            }
        }
    }
    Ok(())
}

/// STATUS: code 50 (plugin not available) without br_netfilter.
pub fn status(sysctl: &Sysctl) -> Result<(), CniError> {
    if available(sysctl)? {
        Ok(())
    } else {
        Err(missing_module(sysctl, ErrorCode::PluginNotAvailable)?)
    }
}
