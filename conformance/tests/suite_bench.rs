//! `bench` end to end, briefly: the workspace's plugins (when built, else the
//! reference standing in) against Debian's reference plugins with 2
//! iterations, 2 parallel pods, small N and one rate. Checks the JSON has
//! every section with numbers where the verb exists, n/a (null) for the
//! reference's STATUS/GC, and that the Markdown report and plots render.
//! Numbers themselves are not asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use conformance::bench::{run, write_outputs, BenchOptions};

fn tiny_options() -> BenchOptions {
    let reference = PathBuf::from("/usr/lib/cni");
    let profile = cni::testing::workspace_bin_dir();
    let ours = if profile.join("portmap").is_file() {
        profile
    } else {
        reference.clone()
    };
    let mut opts = BenchOptions::new(ours);
    opts.vs = Some(reference);
    opts.iterations = 2;
    opts.pods = vec![1, 3];
    opts.shaped_pods = vec![1, 2];
    opts.node_pods = 2;
    opts.rates_mbit = vec![10];
    opts.shaping_seconds = 1.5;
    opts.progress = true;
    opts.tool_exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_cni-conformance")));
    opts
}

#[test]
fn bench_produces_every_section_and_the_report() {
    if !cni::testing::privileged("bench_produces_every_section_and_the_report") {
        return;
    }
    if !PathBuf::from("/usr/lib/cni/bridge").is_file() && std::env::var_os("CI").is_none() {
        eprintln!("SKIP: no reference plugins in /usr/lib/cni");
        return;
    }
    let opts = tiny_options();
    let ours_is_workspace = opts.plugins.as_path() != std::path::Path::new("/usr/lib/cni");
    let doc = run(&opts).unwrap();
    let verbs = doc["verbs"].as_array().unwrap();
    for plugin in ["portmap", "bandwidth", "tuning", "loopback"] {
        for verb in ["ADD", "CHECK", "DEL", "STATUS", "GC"] {
            let row = verbs
                .iter()
                .find(|r| r["plugin"] == plugin && r["verb"] == verb)
                .unwrap_or_else(|| panic!("no {plugin} {verb} row in {doc:#}"));
            if ours_is_workspace {
                assert!(row["ours"]["median_ms"].is_number(), "{row:#}");
                assert_eq!(row["ours"]["failures"], 0, "{row:#}");
            }
            if matches!(verb, "STATUS" | "GC") {
                assert!(row["reference"].is_null(), "v1.1.1 has no {verb}: {row:#}");
            } else {
                // Measured, or failed as v1.1.1 does (its portmap CHECK).
                let r = &row["reference"];
                assert!(r["median_ms"].is_number() || r["failures"] != 0, "{row:#}");
            }
        }
    }
    // v1.1.1's portmap fails every dual-stack CHECK: CHECK is measured once
    // more on the pod's IPv4 half, with a ratio even when the reference
    // fails there too (against its time to fail).
    let dual = verbs
        .iter()
        .find(|r| r["plugin"] == "portmap" && r["verb"] == "CHECK")
        .unwrap();
    if dual["reference"]["median_ms"].is_null() {
        let half = verbs
            .iter()
            .find(|r| r["plugin"] == "portmap" && r["verb"] == "CHECK" && r["pod"] == "IPv4 half")
            .unwrap_or_else(|| panic!("no IPv4-half CHECK row in {verbs:#?}"));
        if ours_is_workspace {
            assert!(half["ratio"].is_number(), "{half:#}");
        }
        assert!(
            half["reference"]["median_ms"].is_number()
                || half["reference"]["failed_median_ms"].is_number(),
            "{half:#}"
        );
    }
    for side in ["ours", "reference", "main_only"] {
        assert_eq!(doc["node"][side]["add"]["errors"], 0, "{:#}", doc["node"]);
        assert!(
            doc["node"][side]["del"]["wall_s"].is_number(),
            "{:#}",
            doc["node"]
        );
    }
    let pm = doc["scaling"]["portmap"].as_array().unwrap();
    assert!(
        pm.iter()
            .any(|r| r["pods"] == 3 && r["verb"] == "ADD" && r["ours"]["median_ms"].is_number()),
        "{pm:#?}"
    );
    assert!(
        pm.iter()
            .any(|r| r["verb"] == "connect" && r["ours"]["per_s"].is_number()),
        "{pm:#?}"
    );
    let bw = doc["scaling"]["bandwidth"].as_array().unwrap();
    assert!(
        bw.iter()
            .any(|r| r["pods"] == 2 && r["verb"] == "ADD" && r["ours"]["median_ms"].is_number()),
        "{bw:#?}"
    );
    for key in ["rates", "first_second", "latency"] {
        let rows = doc["shaping"][key].as_array().unwrap();
        assert!(
            !rows.is_empty() && rows.iter().all(|r| r["error"].is_null()),
            "{key}: {rows:#?}"
        );
    }
    let dir = std::env::temp_dir().join(format!("cni-bench-test-{}", std::process::id()));
    let md = write_outputs(
        &doc,
        Some(&dir.join("b.json")),
        Some(&dir.join("B.md")),
        &dir.join("plots"),
    )
    .unwrap();
    for heading in [
        "## Per plugin and verb",
        "## Node",
        "## Scaling",
        "## Shaping",
        "## Targets of issue #14",
    ] {
        assert!(md.contains(heading), "{heading} missing in\n{md}");
    }
    println!("{md}");
    assert!(md.contains("](plots/verbs.svg)"), "{md}");
    let svg = std::fs::read_to_string(dir.join("plots/verbs.svg")).unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("b.json")).unwrap()).unwrap();
    assert_eq!(back, doc);
    let _ = std::fs::remove_dir_all(&dir);
}
