//! A plugin directory without the plugins: every scenario SKIPs with the
//! missing binary named as the reason, none PASSes or FAILs (only the
//! real-host isolation checks of the per-plugin scenarios run), and the exit
//! code is 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use conformance::report::Outcome;
use conformance::scenarios::{run_suite, SuiteOptions};

#[test]
fn missing_plugins_skip_with_the_reason() {
    if !cni::testing::privileged("missing_plugins_skip_with_the_reason") {
        return;
    }
    let empty = std::env::temp_dir().join(format!("cnt-empty-plugins-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let mut opts = SuiteOptions::new(empty.clone());
    opts.tool_exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_cni-conformance")));
    opts.fixture_dir = Path::new(env!("CARGO_BIN_EXE_cni-test-veth"))
        .parent()
        .map(Path::to_path_buf);
    let report = run_suite(&opts);
    std::fs::remove_dir_all(&empty).unwrap();
    assert_eq!(report.failed(), 0, "{}", report.to_text());
    for c in &report.cases {
        match &c.outcome {
            Outcome::Skip(reason) => assert!(
                reason.contains("is missing") && reason.contains(empty.to_str().unwrap()),
                "{}: {reason}",
                c.id()
            ),
            Outcome::Pass => assert_eq!(c.check, "host-unchanged", "{} passed", c.id()),
            Outcome::Fail(r) => panic!("{} failed: {r}", c.id()),
        }
    }
    for scenario in [
        "portmap",
        "bandwidth",
        "tuning",
        "loopback",
        "chain",
        "gc",
        "status",
    ] {
        assert!(
            report
                .cases
                .iter()
                .any(|c| c.scenario == scenario && matches!(c.outcome, Outcome::Skip(_))),
            "{scenario} not skipped:\n{}",
            report.to_text()
        );
    }
    assert_eq!(report.exit_code(), 0);
}
