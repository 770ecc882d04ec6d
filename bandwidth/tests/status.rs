//! STATUS against the real kernel: the prerequisite probe (an IFB, a tbf
//! root qdisc, an ingress qdisc, a u32 filter and a mirred redirect, made
//! in a throwaway netns) passes on this kernel for every cniVersion with
//! STATUS, and leaves no link and no netns file behind, as containerd's
//! STATUS every 5 s needs. A prerequisite the kernel refuses — the
//! test-only failpoint `probe <kind>` sends that object with a kind the
//! kernel does not know, as a kernel without it would see it — is code 50
//! naming the object and the kernel's reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use cni::testing::{Invocation, PluginRun, PREFIX};
use common::{plugin, World, VERSIONS};

/// The versions that have STATUS.
fn status_versions() -> Vec<&'static str> {
    VERSIONS
        .iter()
        .copied()
        .filter(|v| {
            v.parse::<cni::CniVersion>()
                .is_ok_and(|v| v.allows_gc_and_status())
        })
        .collect()
}

fn status(w: &World, version: &str, failpoint: Option<&str>) -> PluginRun {
    let mut inv = Invocation::new("STATUS");
    inv.host_netns = Some(w.host.name.clone());
    if let Some(f) = failpoint {
        inv.extra_env
            .insert(cni::failpoint::FAIL_ENV.into(), f.to_string());
    }
    inv.run(
        &plugin(),
        &format!(r#"{{"cniVersion":"{version}","name":"bwnet","type":"bandwidth"}}"#),
    )
}

/// The named netns files not made by tests (tests' names start with
/// [`PREFIX`]; other test binaries may add theirs meanwhile).
fn foreign_netns_files() -> BTreeSet<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with(PREFIX))
                .collect()
        })
        .unwrap_or_default()
}

fn link_names(w: &World) -> Vec<String> {
    w.links()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn status_probes_the_prerequisites_and_leaves_nothing() {
    if !cni::testing::privileged("status_probes_the_prerequisites_and_leaves_nothing") {
        return;
    }
    let w = World::new(1);
    let versions = status_versions();
    assert_eq!(versions, vec!["1.1.0"]);
    let links = link_names(&w);
    let files = foreign_netns_files();
    for version in versions {
        for _ in 0..3 {
            let out = status(&w, version, None);
            out.assert_ok();
            assert_eq!(
                out.stdout, "",
                "{version}: STATUS prints nothing on success"
            );
        }
        assert_eq!(
            link_names(&w),
            links,
            "{version}: no link left in the host netns"
        );
        assert_eq!(
            foreign_netns_files(),
            files,
            "{version}: no netns file left"
        );
        assert!(w.qdisc(&w.pod(0).host_veth, "tbf").is_none());
    }
}

#[test]
fn a_prerequisite_the_kernel_refuses_is_code_50_naming_it() {
    if !cni::testing::privileged("a_prerequisite_the_kernel_refuses_is_code_50_naming_it") {
        return;
    }
    let w = World::new(0);
    let links = link_names(&w);
    for version in status_versions() {
        for (kind, object) in [
            ("ifb", "an ifb link"),
            ("tbf", "a tbf root qdisc"),
            ("ingress", "an ingress qdisc"),
            ("u32", "a u32 filter"),
            ("mirred", "a u32 filter with a mirred redirect action"),
        ] {
            let out = status(&w, version, Some(&format!("probe {kind}")));
            let e = out.json();
            assert_eq!(out.code, 1, "{version} {kind}: {}", out.stdout);
            assert_eq!(e["code"], 50, "{version} {kind}: {e}");
            let msg = e["msg"].as_str().unwrap();
            let named = format!(
                "bandwidth: the kernel cannot create {object} (probed in a throwaway netns): "
            );
            assert!(msg.starts_with(&named), "{version} {kind}: {msg}");
            assert!(
                msg.contains("(os error "),
                "{version} {kind}: the reason: {msg}"
            );
        }
    }
    assert_eq!(link_names(&w), links);
}
