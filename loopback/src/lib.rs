//! The `loopback` CNI plugin: brings `lo` up in the container netns (ADD),
//! down again (DEL), and checks it is up (CHECK). It ignores `CNI_IFNAME`
//! and `CNI_ARGS`, as the reference plugin does. GC and STATUS succeed.
//!
//! Error codes: a netns that cannot be opened and a `lo` that carries a
//! non-loopback address are code 999 (internal: the configuration is fine,
//! the container's netns is not in a state this plugin can accept — the same
//! code the reference plugin uses), as is a failed CHECK.
//!
//! Output: the result is printed in the layout of the requested version
//! (0.1.0/0.2.0 `ip4`/`ip6`, 0.3.x/0.4.0 with `ips[].version`, 1.x); the
//! reference plugin prints a 1.x layout labelled with any version. A
//! prevResult is passed through, converted to the requested version.
//!
//! Handlers decide; `lo.rs` is the only module that touches the kernel.

pub mod lo;
pub mod report;

use std::path::Path;

use cni::{CniError, Reply, Request};

use crate::lo::{LoError, Loopback};
use crate::report::{first_non_loopback, loopback_result};

/// The plugin, for `cni::skel::run`.
pub struct Plugin;

fn kernel_error(e: LoError) -> CniError {
    CniError::internal(format!("loopback: {e}"))
}

fn netns_of(req: &Request) -> Result<&Path, CniError> {
    req.cmd
        .netns
        .as_deref()
        .ok_or_else(|| CniError::invalid_env("loopback: CNI_NETNS is required"))
}

fn non_loopback_error(netns: &Path, address: cni::types::Cidr) -> CniError {
    CniError::internal(format!(
        "loopback: interface lo in {} carries the non-loopback address {address}",
        netns.display()
    ))
    .with_details("lo may only carry 127.0.0.0/8 and ::1 addresses")
}

impl cni::Plugin for Plugin {
    fn about(&self) -> String {
        format!("CNI loopback plugin (rust) v{}", env!("CARGO_PKG_VERSION"))
    }

    fn add(&self, req: &Request) -> Result<Reply, CniError> {
        let netns = netns_of(req)?;
        let lo = Loopback::open(netns).map_err(kernel_error)?;
        let before = lo.state().map_err(kernel_error)?;
        if let Some(bad) = first_non_loopback(&before.addresses) {
            return Err(non_loopback_error(netns, bad));
        }
        lo.set_up(before.index, true).map_err(kernel_error)?;
        // A failed ADD leaves lo as it found it; the error is what matters.
        let undo = || {
            if !before.up {
                let _ = lo.set_up(before.index, false);
            }
        };
        // IPv6 puts ::1 on lo only once it is up: read the addresses again.
        let after = match lo.state() {
            Ok(state) => state,
            Err(e) => {
                undo();
                return Err(kernel_error(e));
            }
        };
        if let Some(bad) = first_non_loopback(&after.addresses) {
            undo();
            return Err(non_loopback_error(netns, bad));
        }
        let result = match &req.prev_result {
            Some(prev) => prev.clone(),
            None => loopback_result(&after.addresses, &netns.display().to_string()),
        };
        Ok(Reply::Result(result))
    }

    fn check(&self, req: &Request) -> Result<Reply, CniError> {
        let netns = netns_of(req)?;
        let lo = Loopback::open(netns).map_err(kernel_error)?;
        let state = lo.state().map_err(kernel_error)?;
        if !state.up {
            return Err(CniError::internal(format!(
                "loopback: interface lo in {} is down",
                netns.display()
            ))
            .with_details("loopback interface is down"));
        }
        Ok(Reply::Empty)
    }

    /// Sets `lo` down. Nothing to do (success) when CNI_NETNS is empty, the
    /// netns file is gone or no longer a namespace (unmounted), or `lo`
    /// is already down; so DEL can repeat.
    fn del(&self, req: &Request) -> Result<Reply, CniError> {
        let Some(netns) = req.cmd.netns.as_deref() else {
            return Ok(Reply::Empty);
        };
        let lo = match Loopback::open(netns) {
            Ok(lo) => lo,
            Err(e) if e.is_netns_gone() => return Ok(Reply::Empty),
            Err(e) => return Err(kernel_error(e)),
        };
        let state = match lo.state() {
            Ok(s) => s,
            Err(LoError::Missing { .. }) => return Ok(Reply::Empty),
            Err(e) => return Err(kernel_error(e)),
        };
        if state.up {
            lo.set_up(state.index, false).map_err(kernel_error)?;
        }
        Ok(Reply::Empty)
    }
}
