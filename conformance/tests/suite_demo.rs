//! `demo` end to end against the workspace's plugins when they are built
//! (else Debian's reference plugins): it must finish without error, which
//! includes the real host being unchanged afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use conformance::topology::Tools;

#[test]
fn demo_runs_and_leaves_nothing() {
    if !cni::testing::privileged("demo_runs_and_leaves_nothing") {
        return;
    }
    let profile = cni::testing::workspace_bin_dir();
    let plugins = if profile.join("portmap").is_file() || std::env::var_os("CI").is_some() {
        profile
    } else {
        PathBuf::from("/usr/lib/cni")
    };
    let tools = Tools {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_cni-conformance")),
    };
    conformance::demo::run_with(&plugins, &tools).unwrap();
}
