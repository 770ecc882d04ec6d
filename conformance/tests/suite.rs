//! The whole conformance suite against this workspace's freshly built plugin
//! binaries (target/<profile>/, found from this test's own path; build the
//! workspace first). No FAIL allowed; a SKIP only when a plugin binary is
//! missing, and under CI not even then. `CNI_CONFORMANCE_PLUGINS=<dir>`
//! points it at another directory, `CNI_CONFORMANCE_ONLY=<name>` narrows it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use conformance::report::Outcome;
use conformance::scenarios::{run_suite, SuiteOptions};

fn options() -> SuiteOptions {
    let plugins = std::env::var_os("CNI_CONFORMANCE_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(cni::testing::workspace_bin_dir);
    let mut opts = SuiteOptions::new(plugins);
    opts.tool_exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_cni-conformance")));
    opts.fixture_dir = Path::new(env!("CARGO_BIN_EXE_cni-test-veth"))
        .parent()
        .map(Path::to_path_buf);
    opts.only = std::env::var("CNI_CONFORMANCE_ONLY").ok();
    opts.progress = true;
    opts
}

/// Runs the suite with `opts`; no FAIL, no SKIP but for a missing plugin
/// outside CI; returns how many cases passed.
fn assert_passes(opts: &SuiteOptions) -> usize {
    let report = run_suite(opts);
    println!("{}", report.summary());
    let ci = std::env::var_os("CI").is_some();
    let bad: Vec<String> = report
        .cases
        .iter()
        .filter(|c| match &c.outcome {
            Outcome::Pass => false,
            Outcome::Fail(_) => true,
            Outcome::Skip(reason) => ci || !reason.contains("is missing"),
        })
        .map(|c| {
            format!(
                "{} {}: {}",
                c.outcome.label(),
                c.id(),
                c.outcome.reason().unwrap_or("")
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "against {}: {}\n{}",
        opts.plugins.display(),
        report.summary(),
        bad.join("\n")
    );
    report.passed()
}

#[test]
fn suite_passes_against_the_workspace_plugins() {
    if !cni::testing::privileged("suite_passes_against_the_workspace_plugins") {
        return;
    }
    let passed = assert_passes(&options());
    assert!(passed > 0, "nothing passed");
}

/// Every scenario that chains portmap (but for `portmap`, whose iptables
/// run is `portmap-iptables` in the suite), with our portmap's iptables
/// backend forced into each conflist (`--portmap-backend iptables`).
#[test]
fn portmap_scenarios_pass_with_the_iptables_backend_forced() {
    if !cni::testing::privileged("portmap_scenarios_pass_with_the_iptables_backend_forced") {
        return;
    }
    let mut opts = options();
    opts.portmap_backend = Some("iptables".into());
    let only = opts.only.take();
    let mut passed = 0;
    for name in [
        "chain",
        "del-without-cache",
        "parallel-pods",
        "interleavings",
        "gc",
        "status",
    ] {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        opts.only = Some(name.into());
        passed += assert_passes(&opts);
    }
    assert!(passed > 0 || only.is_some(), "nothing passed");
}
