//! The whole conformance suite against this workspace's freshly built plugin
//! binaries (target/<profile>/, found from this test's own path; build the
//! workspace first). No FAIL allowed; a SKIP only when a plugin binary is
//! missing, and under CI not even then. `CNI_CONFORMANCE_PLUGINS=<dir>`
//! points it at another directory, `CNI_CONFORMANCE_ONLY=<name>` narrows it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite_support;

use suite_support::{assert_passes, options};

#[test]
fn suite_passes_against_the_workspace_plugins() {
    if !cni::testing::privileged("suite_passes_against_the_workspace_plugins") {
        return;
    }
    let passed = assert_passes(&options());
    assert!(passed > 0, "nothing passed");
}
