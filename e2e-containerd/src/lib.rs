//! Test only (publish = false; never a dependency of `cni` or of a plugin):
//! drives a private containerd 1.6 over the CRI gRPC API with this
//! workspace's plugins as its CNI, the way kubelet does.
//!
//! - [`containerd::Containerd`]: one daemon with its own config, root, state,
//!   socket and CNI dirs under a temp dir, running in a netns the test owns;
//!   torn down completely on drop.
//! - [`cri::Cri`]: a blocking CRI v1 client (`k8s-cri` on tonic), every call
//!   bounded, errors carrying the runtime's message verbatim.
//! - [`image`]: the busybox OCI image the pods run (no registry needed).
//! - [`available`]: skip-or-fail gating for the privileged test.

pub mod containerd;
pub mod cri;
pub mod image;

use std::path::Path;
use std::process::Command;

/// Debian's reference plugins (the main plugins of the test's conflist).
pub const DEBIAN_CNI: &str = "/usr/lib/cni";

/// True when the containerd end-to-end test can run here: root (see
/// [`cni::testing::privileged`]) and containerd, ctr, runc, nsenter, tc,
/// busybox-static and Debian's bridge + host-local present. Otherwise prints
/// why and returns false, or panics when `CI` is set.
pub fn available(test: &str) -> bool {
    if !cni::testing::privileged(test) {
        return false;
    }
    let mut missing = Vec::new();
    for (tool, arg) in [
        ("containerd", "--version"),
        ("ctr", "--version"),
        ("runc", "--version"),
        ("nsenter", "--version"),
        ("tc", "-V"),
    ] {
        if Command::new(tool).arg(arg).output().is_err() {
            missing.push(tool.to_string());
        }
    }
    for file in [
        image::BUSYBOX.to_string(),
        format!("{DEBIAN_CNI}/bridge"),
        format!("{DEBIAN_CNI}/host-local"),
    ] {
        if !Path::new(&file).is_file() {
            missing.push(file);
        }
    }
    if missing.is_empty() {
        return true;
    }
    let reason = format!(
        "missing {} (scripts/setup.sh installs them)",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{test} cannot run under CI: {reason}");
    }
    eprintln!("SKIP {test}: {reason}");
    false
}
