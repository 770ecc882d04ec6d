//! `make demo` end to end: runs the `cni-conformance demo …` command line of
//! scripts/demo.sh as written there (so a CLI change that breaks the README's
//! demo command fails here), against the workspace's plugins when they are
//! built (else Debian's reference plugins). It must finish without error,
//! which includes the real host being unchanged afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The arguments after `cni-conformance` on the script's `exec` line.
fn demo_script_args() -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/demo.sh");
    let text = std::fs::read_to_string(&script).unwrap();
    let line = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("exec target/release/cni-conformance ")
        })
        .unwrap_or_else(|| panic!("no `exec target/release/cni-conformance` line in {script:?}"));
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
fn the_demo_script_names_the_demo_subcommand_and_the_built_plugins() {
    let args = demo_script_args();
    assert_eq!(args[0], "demo", "{args:?}");
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--plugins" && w[1] == "target/release"),
        "{args:?}"
    );
}

#[test]
fn demo_runs_as_make_demo_runs_it_and_leaves_nothing() {
    if !cni::testing::privileged("demo_runs_as_make_demo_runs_it_and_leaves_nothing") {
        return;
    }
    let profile = cni::testing::workspace_bin_dir();
    let plugins = if profile.join("portmap").is_file() || std::env::var_os("CI").is_some() {
        profile
    } else {
        PathBuf::from("/usr/lib/cni")
    };
    let args: Vec<String> = demo_script_args()
        .into_iter()
        .map(|a| {
            if a == "target/release" {
                plugins.display().to_string()
            } else {
                a
            }
        })
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_cni-conformance"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cni-conformance {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
