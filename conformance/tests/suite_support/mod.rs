//! What the suite tests share: the options for this workspace's plugins,
//! and the assertion that a run passes.

use std::path::{Path, PathBuf};

use conformance::report::Outcome;
use conformance::scenarios::{run_suite, SuiteOptions};

/// The suite's options for this workspace's binaries
/// (`CNI_CONFORMANCE_PLUGINS` and `CNI_CONFORMANCE_ONLY` honoured).
pub fn options() -> SuiteOptions {
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
pub fn assert_passes(opts: &SuiteOptions) -> usize {
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
