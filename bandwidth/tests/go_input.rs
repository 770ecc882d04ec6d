//! Privileged: what Go runtimes send. containerd's Go-cased
//! `runtimeConfig.bandwidth` shapes (TBF and IFB with the capped burst), and
//! no malformed input blocks teardown: DEL with a garbage `runtimeConfig`,
//! a truncated `prevResult`, `CNI_NETNS=""`, twice, and after the pod's
//! netns is gone removes every qdisc and the IFB and exits 0 — for every
//! version the plugin supports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};

/// go-cni's `BandWidth` struct, marshalled without JSON tags.
fn containerd(extra: Value) -> Value {
    let mut c = json!({"capabilities": {"bandwidth": true}, "maxBurst": 400_000,
        "runtimeConfig": {"bandwidth": {
            "IngressRate": 10_000_000, "IngressBurst": 4_294_967_295u64,
            "EgressRate": 20_000_000, "EgressBurst": 4_294_967_295u64}}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn assert_shaped(w: &World, pod: &Pod, result: &Value, what: &str) {
    let ifb = ifb_of(result);
    let tbf = w.qdisc(&pod.host_veth, "tbf").expect("tbf on host veth");
    assert_eq!(tbf["options"]["rate"], 1_250_000, "{what}");
    assert_eq!(tbf["options"]["burst"], 50_000, "{what}");
    let ifb_tbf = w.qdisc(&ifb, "tbf").expect("tbf on ifb");
    assert_eq!(ifb_tbf["options"]["rate"], 2_500_000, "{what}");
    assert_eq!(ifb_tbf["options"]["burst"], 50_000, "{what}");
}

#[test]
fn go_cased_runtime_config_shapes_and_malformed_input_never_blocks_del() {
    if !cni::testing::privileged(
        "go_cased_runtime_config_shapes_and_malformed_input_never_blocks_del",
    ) {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    for version in VERSIONS {
        let conf = w.conf(pod, version, containerd(json!({})));
        let dels = [
            (
                "garbage runtimeConfig",
                true,
                w.conf(pod, version, containerd(json!({"runtimeConfig": "garbage"}))),
            ),
            (
                "wrong types in runtimeConfig.bandwidth and args",
                true,
                w.conf(
                    pod,
                    version,
                    containerd(json!({"args": 7,
                        "runtimeConfig": {"bandwidth": {"IngressRate": "fast", "EgressBurst": -1}}})),
                ),
            ),
            (
                "truncated prevResult",
                true,
                w.conf(
                    pod,
                    version,
                    containerd(json!({"prevResult": {"cniVersion": version, "interfaces": [{"mac": "x"}]}})),
                ),
            ),
            ("CNI_NETNS=\"\"", false, conf.clone()),
        ];
        for (what, with_netns, del_conf) in dels {
            let what = format!("{version} {what}");
            let out = w.run(pod, "ADD", &conf);
            out.assert_ok();
            assert_shaped(&w, pod, &out.json(), &what);
            let mut inv = w.inv(pod, "DEL");
            if !with_netns {
                inv.netns = String::new();
            }
            let out = inv.run(&plugin(), &del_conf);
            out.assert_ok();
            assert_eq!(out.stdout, "", "{what}");
            assert_no_shaping(&w, &pod.host_veth, &what);
            inv.run(&plugin(), &del_conf).assert_ok();
            assert_no_shaping(&w, &pod.host_veth, &format!("{what}, second DEL"));
        }
    }
}

#[test]
fn del_after_the_pod_netns_is_gone_removes_the_ifb() {
    if !cni::testing::privileged("del_after_the_pod_netns_is_gone_removes_the_ifb") {
        return;
    }
    let mut w = World::new(VERSIONS.len() as u8);
    for version in VERSIONS.iter().rev() {
        let pod = w.pods.pop().unwrap();
        let conf = w.conf(&pod, version, containerd(json!({})));
        let out = w.run(&pod, "ADD", &conf);
        out.assert_ok();
        assert_shaped(&w, &pod, &out.json(), version);
        let inv = w.inv(&pod, "DEL");
        drop(pod);
        assert!(!std::path::Path::new(&inv.netns).exists());
        inv.run(&plugin(), &conf).assert_ok();
        // The host veth dies with the netns (asynchronously, so it is not
        // checked here); the IFB is ours to remove, at once.
        assert!(w.ifbs().is_empty(), "{version}: ifbs left: {:?}", w.ifbs());
        inv.run(&plugin(), &conf).assert_ok();
    }
}
