//! `bench` end to end, briefly: Debian's reference plugins against the
//! workspace's (when built) with a few iterations and a small N, checking the
//! report has every plugin's ADD/CHECK/DEL with numbers, the N-mappings
//! table and the bandwidth rate line. Numbers themselves are not asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use conformance::bench::{run, BenchOptions};

#[test]
fn bench_reports_every_plugin_verb_and_scaling() {
    if !cni::testing::privileged("bench_reports_every_plugin_verb_and_scaling") {
        return;
    }
    let reference = PathBuf::from("/usr/lib/cni");
    if !reference.join("portmap").is_file() && std::env::var_os("CI").is_none() {
        eprintln!("SKIP: no reference plugins in /usr/lib/cni");
        return;
    }
    let profile = cni::testing::workspace_bin_dir();
    let mut opts = BenchOptions::new(reference);
    if profile.join("portmap").is_file() {
        opts.vs = Some(profile);
    }
    opts.iterations = 3;
    opts.pods = vec![5];
    opts.tool_exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_cni-conformance")));
    opts.fixture_dir = Path::new(env!("CARGO_BIN_EXE_cni-test-veth"))
        .parent()
        .map(Path::to_path_buf);
    let report = run(&opts).unwrap();
    println!("{report}");
    for plugin in ["portmap", "bandwidth", "tuning", "loopback"] {
        for verb in ["ADD", "CHECK", "DEL"] {
            assert!(
                report
                    .lines()
                    .any(|l| l.starts_with(plugin) && l.contains(verb) && l.contains(" A ")),
                "no {plugin} {verb} line in\n{report}"
            );
        }
    }
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("5 ") && l.contains("ADD")),
        "{report}"
    );
    assert!(
        report.contains("ingress") && report.contains("egress"),
        "{report}"
    );
    // The reference has known failures (e.g. v1.1.1 portmap CHECK); the
    // workspace's plugins (side B) must have none.
    let ours_failed: Vec<&str> = report
        .lines()
        .filter(|l| l.contains(" B ") && l.contains("failed"))
        .collect();
    assert!(ours_failed.is_empty(), "{ours_failed:#?}");
    let loopback_add = report
        .lines()
        .find(|l| l.starts_with("loopback") && l.contains("ADD") && l.contains(" A "))
        .unwrap();
    assert!(!loopback_add.contains(" - "), "no timing: {loopback_add}");
}
