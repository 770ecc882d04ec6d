//! Privileged tests of the real `bandwidth` binary against the kernel: a
//! "host" netns plays the host (the plugin runs there), "pod" netns are joined
//! to it by veths. Qdiscs, filters and IFBs are read back with `tc -j` and
//! `ip -j` inside the host netns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};

fn both() -> Value {
    json!({"ingressRate": 1_000_000, "ingressBurst": 80_000, "egressRate": 2_000_000, "egressBurst": 160_000})
}

fn has_check(version: &str) -> bool {
    !version.starts_with("0.3")
}

fn assert_clean(w: &World, veth: &str) {
    assert_no_shaping(w, veth, "");
}

#[test]
fn add_shapes_both_directions_and_del_removes_everything() {
    if !cni::testing::privileged("add_shapes_both_directions_and_del_removes_everything") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    for version in VERSIONS {
        let conf = w.conf(pod, version, both());
        let out = w.run(pod, "ADD", &conf);
        out.assert_ok();
        let result = out.json();
        assert_eq!(result["cniVersion"], *version);
        assert_eq!(result["interfaces"].as_array().unwrap().len(), 3);
        let ifb = ifb_of(&result);
        assert!(result["interfaces"][2]["mac"].as_str().unwrap().len() == 17);

        // Pod ingress: root TBF on the host veth.
        let tbf = w.qdisc(&pod.host_veth, "tbf").expect("tbf on host veth");
        assert_eq!(tbf["handle"], "1:");
        assert_eq!(tbf["root"], true);
        assert_eq!(tbf["options"]["rate"], 125_000);
        assert_eq!(tbf["options"]["burst"], 10_000);
        // tc's lat is (limit - burst) / rate: the limit is the burst here
        // (25 ms at 1 Mbit/s + one frame is less), so 0, where upstream's
        // limit (rate x 25 ms + burst) shows 25 000 µs.
        assert_eq!(tbf["options"]["lat"], 0, "{tbf}");
        // Pod egress: ingress qdisc + u32 match-all mirred redirect to the IFB.
        assert!(w.qdisc(&pod.host_veth, "ingress").is_some());
        let filters = w.ingress_filters(&pod.host_veth);
        let redirect = filters
            .iter()
            .find(|f| f["options"]["actions"].is_array())
            .expect("redirect filter");
        assert_eq!(redirect["pref"], 189);
        assert_eq!(redirect["protocol"], "all");
        assert_eq!(redirect["options"]["match"]["mask"], "0");
        let action = &redirect["options"]["actions"][0];
        assert_eq!(action["kind"], "mirred");
        assert_eq!(action["mirred_action"], "redirect");
        assert_eq!(action["direction"], "egress");
        assert_eq!(action["to_dev"], ifb.as_str());
        // The IFB: MTU below IPv6's minimum (the host veth has 1400), so no
        // IPv6 on it at all; owner in its alias, TBF at the egress rate.
        let link = w.link(&ifb).unwrap();
        assert_eq!(link["mtu"], 1279);
        assert!(
            link["flags"].as_array().unwrap().contains(&json!("UP")),
            "{link}"
        );
        let v6 = w.host.exec(&["ip", "-6", "addr", "show", "dev", &ifb]);
        assert!(v6.trim().is_empty(), "IPv6 addresses on {ifb}: {v6}");
        let v6 = w
            .host
            .exec(&["ip", "-6", "route", "show", "table", "all", "dev", &ifb]);
        assert!(v6.trim().is_empty(), "IPv6 routes via {ifb}: {v6}");
        let confs = w.host.exec(&["ls", "/proc/sys/net/ipv6/conf"]);
        assert!(confs.lines().any(|l| l == pod.host_veth), "{confs}");
        assert!(!confs.lines().any(|l| l == ifb), "{ifb} has IPv6: {confs}");
        assert_eq!(
            link["ifalias"],
            format!(
                "cni-bandwidth bwnet/ctr0/eth0 veth={} ingress-qdisc=ours",
                pod.host_veth
            )
        );
        let ifb_tbf = w.qdisc(&ifb, "tbf").unwrap();
        assert_eq!(ifb_tbf["handle"], "1:");
        assert_eq!(ifb_tbf["options"]["rate"], 250_000);
        assert_eq!(ifb_tbf["options"]["burst"], 20_000);

        if has_check(version) {
            w.run(pod, "CHECK", &conf).assert_ok();
        }
        w.run(pod, "DEL", &conf).assert_ok();
        assert_clean(&w, &pod.host_veth);
        // DEL twice is fine.
        w.run(pod, "DEL", &conf).assert_ok();
    }
}

#[test]
fn one_direction_only() {
    if !cni::testing::privileged("one_direction_only") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let conf = w.conf(
        pod,
        "1.0.0",
        json!({"ingressRate": 8000, "ingressBurst": 80}),
    );
    let result = w.run(pod, "ADD", &conf).assert_ok().json();
    assert_eq!(
        result["interfaces"].as_array().unwrap().len(),
        2,
        "no ifb without egress"
    );
    assert!(w.ifbs().is_empty());
    let qs = w.qdiscs(&pod.host_veth);
    assert_eq!(qs.len(), 1, "{qs:?}");
    assert_eq!(qs[0]["kind"], "tbf");
    assert_eq!(qs[0]["options"]["rate"], 1000);
    w.run(pod, "CHECK", &conf).assert_ok();
    w.run(pod, "DEL", &conf).assert_ok();
    assert_clean(&w, &pod.host_veth);

    let conf = w.conf(pod, "1.0.0", json!({"egressRate": 8000, "egressBurst": 80}));
    let result = w.run(pod, "ADD", &conf).assert_ok().json();
    let ifb = ifb_of(&result);
    assert!(w.qdisc(&pod.host_veth, "tbf").is_none());
    assert_eq!(w.qdisc(&ifb, "tbf").unwrap()["options"]["rate"], 1000);
    w.run(pod, "CHECK", &conf).assert_ok();
    w.run(pod, "DEL", &conf).assert_ok();
    assert_clean(&w, &pod.host_veth);

    // Nothing configured: prevResult passes through, nothing is created.
    let conf = w.conf(pod, "1.0.0", json!({}));
    let result = w.run(pod, "ADD", &conf).assert_ok().json();
    assert_eq!(result["interfaces"].as_array().unwrap().len(), 2);
    assert!(w
        .qdiscs(&pod.host_veth)
        .iter()
        .all(|q| q["kind"] == "noqueue"));
    w.run(pod, "CHECK", &conf).assert_ok();
}

#[test]
fn runtime_config_bandwidth_capability() {
    if !cni::testing::privileged("runtime_config_bandwidth_capability") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    // containerd's shape: huge burst, capped by maxBurst.
    let conf = w.conf(
        pod,
        "1.1.0",
        json!({"capabilities": {"bandwidth": true}, "maxBurst": 400_000, "runtimeConfig": {"bandwidth": {
            "ingressRate": 10_000_000, "ingressBurst": 4_294_967_295u64,
            "egressRate": 20_000_000, "egressBurst": 4_294_967_295u64}}}),
    );
    let result = w.run(pod, "ADD", &conf).assert_ok().json();
    let ifb = ifb_of(&result);
    let tbf = w.qdisc(&pod.host_veth, "tbf").unwrap();
    assert_eq!(tbf["options"]["rate"], 1_250_000);
    assert_eq!(tbf["options"]["burst"], 50_000);
    assert_eq!(w.qdisc(&ifb, "tbf").unwrap()["options"]["rate"], 2_500_000);
    w.run(pod, "CHECK", &conf).assert_ok();
    w.run(pod, "DEL", &conf).assert_ok();
    assert_clean(&w, &pod.host_veth);
}

#[test]
fn re_add_replaces_instead_of_failing() {
    if !cni::testing::privileged("re_add_replaces_instead_of_failing") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    for version in VERSIONS {
        let first = w.conf(pod, version, both());
        let ifb = ifb_of(&w.run(pod, "ADD", &first).assert_ok().json());
        let second = w.conf(
            pod,
            version,
            json!({"ingressRate": 3_000_000, "ingressBurst": 80_000, "egressRate": 4_000_000, "egressBurst": 160_000}),
        );
        let result = w.run(pod, "ADD", &second).assert_ok().json();
        assert_eq!(ifb_of(&result), ifb, "same owner, same ifb name");
        assert_eq!(
            w.qdisc(&pod.host_veth, "tbf").unwrap()["options"]["rate"],
            375_000
        );
        assert_eq!(w.qdisc(&ifb, "tbf").unwrap()["options"]["rate"], 500_000);
        let redirects: Vec<_> = w
            .ingress_filters(&pod.host_veth)
            .into_iter()
            .filter(|f| f["options"]["actions"].is_array())
            .collect();
        assert_eq!(redirects.len(), 1, "{redirects:?}");
        assert_eq!(w.ifbs(), vec![ifb.clone()]);
        if has_check(version) {
            w.run(pod, "CHECK", &second).assert_ok();
            let e = w.run(pod, "CHECK", &first);
            assert_ne!(e.code, 0);
        }
        // Re-ADD with a prevResult that already lists the IFB: not duplicated.
        let mut with_ifb: Value = serde_json::from_str(&second).unwrap();
        with_ifb["prevResult"] = result.clone();
        let again = w.run(pod, "ADD", &with_ifb.to_string()).assert_ok().json();
        assert_eq!(again["interfaces"].as_array().unwrap().len(), 3);
        w.run(pod, "DEL", &second).assert_ok();
        assert_clean(&w, &pod.host_veth);
    }
}

#[test]
fn coexists_with_a_foreign_ingress_or_clsact_qdisc() {
    if !cni::testing::privileged("coexists_with_a_foreign_ingress_or_clsact_qdisc") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let veth = pod.host_veth.as_str();
    for kind in ["ingress", "clsact"] {
        w.host.exec(&["tc", "qdisc", "add", "dev", veth, kind]);
        w.host.exec(&[
            "tc",
            "filter",
            "add",
            "dev",
            veth,
            "ingress",
            "prio",
            "1",
            "protocol",
            "ip",
            "u32",
            "match",
            "ip",
            "dst",
            "192.0.2.1/32",
            "flowid",
            "1:1",
        ]);
        let conf = w.conf(pod, "1.1.0", both());
        let ifb = ifb_of(&w.run(pod, "ADD", &conf).assert_ok().json());
        let link = w.link(&ifb).unwrap();
        assert!(link["ifalias"]
            .as_str()
            .unwrap()
            .ends_with("ingress-qdisc=theirs"));
        let prefs: Vec<i64> = w
            .ingress_filters(veth)
            .iter()
            .map(|f| f["pref"].as_i64().unwrap())
            .collect();
        assert!(prefs.contains(&1) && prefs.contains(&189), "{prefs:?}");
        w.run(pod, "CHECK", &conf).assert_ok();
        w.run(pod, "DEL", &conf).assert_ok();
        // Their qdisc and filter stay; ours are gone.
        assert!(w.qdisc(veth, kind).is_some(), "{kind} qdisc removed");
        let prefs: Vec<i64> = w
            .ingress_filters(veth)
            .iter()
            .map(|f| f["pref"].as_i64().unwrap())
            .collect();
        assert!(prefs.contains(&1) && !prefs.contains(&189), "{prefs:?}");
        assert!(w.ifbs().is_empty());
        w.host.exec(&["tc", "qdisc", "del", "dev", veth, kind]);
    }
}

#[test]
fn foreign_root_qdisc_is_an_error_not_overwritten() {
    if !cni::testing::privileged("foreign_root_qdisc_is_an_error_not_overwritten") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let veth = pod.host_veth.as_str();
    w.host.exec(&[
        "tc", "qdisc", "add", "dev", veth, "root", "handle", "5:", "pfifo", "limit", "77",
    ]);
    let out = w.run(pod, "ADD", &w.conf(pod, "1.0.0", both()));
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("already has a root qdisc pfifo 5:"),
        "{}",
        out.stdout
    );
    // The failed ADD undid its work and left theirs alone.
    assert!(w.ifbs().is_empty());
    assert_eq!(w.qdisc(veth, "pfifo").unwrap()["options"]["limit"], 77);
    // DEL leaves a foreign root alone, and so it does one with our handle
    // (1:) that is not a tbf or an htb: the kernel refuses the delete that
    // names our handle and kind.
    w.run(pod, "DEL", &w.conf(pod, "1.0.0", both())).assert_ok();
    assert_eq!(w.qdisc(veth, "pfifo").unwrap()["options"]["limit"], 77);
    w.host.exec(&["tc", "qdisc", "del", "dev", veth, "root"]);
    w.host.exec(&[
        "tc", "qdisc", "add", "dev", veth, "root", "handle", "1:", "pfifo", "limit", "78",
    ]);
    w.run(pod, "DEL", &w.conf(pod, "1.0.0", both())).assert_ok();
    let theirs = w.qdisc(veth, "pfifo").expect("their 1: pfifo stays");
    assert_eq!(
        (
            theirs["handle"].as_str(),
            theirs["options"]["limit"].as_u64()
        ),
        (Some("1:"), Some(78))
    );
    w.host.exec(&["tc", "qdisc", "del", "dev", veth, "root"]);
}

#[test]
fn del_without_netns_or_prev_result_and_after_pod_is_gone() {
    if !cni::testing::privileged("del_without_netns_or_prev_result_and_after_pod_is_gone") {
        return;
    }
    let mut w = World::new(1);
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let pod = w.pod(0);
        let conf = w.conf(pod, version, both());
        w.run(pod, "ADD", &conf).assert_ok();
        // No CNI_NETNS, no prevResult: found by the IFB's name and alias.
        let mut inv = w.inv(pod, "DEL");
        inv.netns = String::new();
        let bare = w.conf(pod, version, json!({"prevResult": null}));
        inv.run(&plugin(), &bare).assert_ok();
        assert_clean(&w, &pod.host_veth);
    }
    // Pod netns deleted (the veth dies with it): DEL still succeeds and removes the IFB.
    let conf = w.conf(w.pod(0), "1.1.0", both());
    w.run(w.pod(0), "ADD", &conf).assert_ok();
    let pod = w.pods.pop().unwrap();
    let inv = w.inv(&pod, "DEL");
    drop(pod);
    inv.run(&plugin(), &conf).assert_ok();
    assert!(w.ifbs().is_empty());
    inv.run(&plugin(), &conf).assert_ok();
}

#[test]
fn check_reports_which_value_differs() {
    if !cni::testing::privileged("check_reports_which_value_differs") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let veth = pod.host_veth.as_str();
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let conf = w.conf(pod, version, both());
        // CHECK fails (code 1) with a message that says `what`.
        let check_says = |what: &str| {
            let out = w.run(pod, "CHECK", &conf);
            assert_eq!(out.code, 1, "{}", out.stdout);
            assert!(out.stdout.contains(what), "{what:?} in {}", out.stdout);
        };
        let ifb = ifb_of(&w.run(pod, "ADD", &conf).assert_ok().json());
        w.run(pod, "CHECK", &conf).assert_ok();

        w.host.exec(&[
            "tc", "qdisc", "change", "dev", veth, "root", "handle", "1:", "tbf", "rate", "2mbit",
            "burst", "10000", "latency", "25ms",
        ]);
        check_says(&format!(
            "host veth {veth}: ingress tbf rate doesn't match: kernel has 250000"
        ));

        w.run(pod, "ADD", &conf).assert_ok();
        w.host.exec(&[
            "tc", "qdisc", "change", "dev", &ifb, "root", "handle", "1:", "tbf", "rate", "2mbit",
            "burst", "20000", "latency", "50ms",
        ]);
        check_says(&format!("ifb {ifb}: egress tbf limit doesn't match"));

        w.run(pod, "ADD", &conf).assert_ok();
        w.host
            .exec(&["tc", "filter", "del", "dev", veth, "ingress", "prio", "189"]);
        check_says("no u32 redirect filter");

        // An IFB of an earlier release has the host veth's MTU (1400 here).
        w.run(pod, "ADD", &conf).assert_ok();
        w.host.exec(&["ip", "link", "set", &ifb, "mtu", "1400"]);
        w.run(pod, "CHECK", &conf).assert_ok();
        w.host.exec(&["ip", "link", "set", &ifb, "mtu", "1500"]);
        check_says(&format!(
            "ifb {ifb}: mtu is 1500, expected 1279 (or 1400, the mtu of host veth {veth})"
        ));

        w.run(pod, "ADD", &conf).assert_ok();
        w.host.exec(&["ip", "link", "del", &ifb]);
        check_says("does not exist");
        w.run(pod, "DEL", &conf).assert_ok();
    }
}

#[test]
fn gc_removes_ifbs_of_stale_attachments_of_this_network_only() {
    if !cni::testing::privileged("gc_removes_ifbs_of_stale_attachments_of_this_network_only") {
        return;
    }
    let w = World::new(3);
    let (a, b, c) = (w.pod(0), w.pod(1), w.pod(2));
    let ifb_a = ifb_of(
        &w.run(a, "ADD", &w.conf(a, "1.1.0", both()))
            .assert_ok()
            .json(),
    );
    let ifb_b = ifb_of(
        &w.run(b, "ADD", &w.conf(b, "1.1.0", both()))
            .assert_ok()
            .json(),
    );
    let other_net = w.conf(
        c,
        "1.1.0",
        json!({"name": "othernet", "egressRate": 1_000_000, "egressBurst": 80_000}),
    );
    let ifb_c = ifb_of(&w.run(c, "ADD", &other_net).assert_ok().json());
    let mut gc: Value = json!({"cniVersion": "1.1.0", "name": "bwnet", "type": "bandwidth",
        "cni.dev/valid-attachments": [{"containerID": "ctr0", "ifname": "eth0"}]});
    let mut inv = cni::testing::Invocation::new("GC");
    inv.host_netns = Some(w.host.name.clone());
    inv.run(&plugin(), &gc.to_string()).assert_ok();
    let mut left = w.ifbs();
    left.sort();
    let mut want = vec![ifb_a.clone(), ifb_c.clone()];
    want.sort();
    assert_eq!(left, want, "b ({ifb_b}) is stale");
    // B's redirect filter went with it (its veth still exists).
    assert!(w
        .ingress_filters(&b.host_veth)
        .iter()
        .all(|f| f["pref"] != 189));
    assert!(w.qdisc(&b.host_veth, "tbf").is_none());
    // GC with no valid attachments clears the network; other networks stay.
    gc["cni.dev/valid-attachments"] = json!([]);
    inv.run(&plugin(), &gc.to_string()).assert_ok();
    assert_eq!(w.ifbs(), vec![ifb_c]);
}

#[test]
fn host_interface_discovery_errors() {
    if !cni::testing::privileged("host_interface_discovery_errors") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    // A bridge is not a veth.
    pod.ns.exec(&["ip", "link", "add", "br9", "type", "bridge"]);
    let mut inv = w.inv(pod, "ADD");
    inv.ifname = "br9".into();
    let out = inv.run(&plugin(), &w.conf(pod, "1.0.0", both()));
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("container interface br9 has no veth peer: it is a bridge link"),
        "{}",
        out.stdout
    );
    // A veth whose peer is inside the pod too: not in the host ns.
    pod.ns.exec(&[
        "ip", "link", "add", "in0", "type", "veth", "peer", "name", "in1",
    ]);
    inv.ifname = "in0".into();
    let out = inv.run(&plugin(), &w.conf(pod, "1.0.0", both()));
    assert!(out.stdout.contains("is not in host ns"), "{}", out.stdout);
    // prevResult lists other host interfaces only.
    let conf = w
        .conf(
            pod,
            "1.0.0",
            json!({"prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "vethother"}]}}),
        )
        .replace(
            "\"name\":\"bwnet\"",
            "\"name\":\"bwnet\",\"ingressRate\":8000,\"ingressBurst\":80",
        );
    let out = w.run(pod, "ADD", &conf);
    assert!(
        out.stdout
            .contains("no veth peer of container interface found in host ns"),
        "{}",
        out.stdout
    );
    assert!(w.qdisc(&pod.host_veth, "tbf").is_none());
    // Missing prevResult.
    let out = w.run(
        pod,
        "ADD",
        &w.conf(pod, "1.0.0", json!({"prevResult": null})),
    );
    assert_eq!(out.json()["code"], 7);
}

#[test]
fn versions_status_and_config_errors_through_the_binary() {
    if !cni::testing::privileged("versions_status_and_config_errors_through_the_binary") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    for old in ["0.1.0", "0.2.0"] {
        let out = w.run(pod, "ADD", &w.conf(pod, old, both()));
        assert_eq!(out.json()["code"], 1, "{}", out.stdout);
    }
    let out = w.run(
        pod,
        "ADD",
        &w.conf(pod, "1.0.0", json!({"ingressRate": 1000})),
    );
    let e = out.json();
    assert_eq!(e["code"], 7);
    assert!(e["msg"]
        .as_str()
        .unwrap()
        .contains("if rate is set, burst must also be set"));
    assert!(w.ifbs().is_empty());
    let mut inv = cni::testing::Invocation::new("STATUS");
    inv.host_netns = Some(w.host.name.clone());
    inv.run(
        &plugin(),
        r#"{"cniVersion":"1.1.0","name":"bwnet","type":"bandwidth"}"#,
    )
    .assert_ok();
    let mut inv = cni::testing::Invocation::new("VERSION");
    inv.host_netns = Some(w.host.name.clone());
    let v = inv.run(&plugin(), "").json();
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn subnet_split_objects_and_check() {
    if !cni::testing::privileged("subnet_split_objects_and_check") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let veth = pod.host_veth.as_str();
    let mut extra = both();
    extra["unshapedSubnets"] = json!(["10.78.0.0/24", "fd00:78::/64"]);
    let conf = w.conf(pod, "1.1.0", extra);
    let ifb = ifb_of(&w.run(pod, "ADD", &conf).assert_ok().json());
    for dev in [veth, ifb.as_str()] {
        let htb = w.qdisc(dev, "htb").unwrap();
        assert_eq!(htb["handle"], "1:");
        assert_eq!(htb["options"]["default"], "0x30");
        let tbf = w.qdisc(dev, "tbf").unwrap();
        assert_eq!(tbf["parent"], "1:30");
        assert_eq!(w.qdisc(dev, "pfifo").unwrap()["parent"], "1:1");
    }
    let filters = w.tc(&["filter", "show", "dev", veth, "parent", "1:"]);
    let text = filters.to_string();
    assert!(
        text.contains("\"pref\":16") && text.contains("\"pref\":15"),
        "{text}"
    );
    w.run(pod, "CHECK", &conf).assert_ok();
    // Re-ADD switching from subnets to plain TBF.
    let plain = w.conf(pod, "1.1.0", both());
    w.run(pod, "ADD", &plain).assert_ok();
    assert!(w.qdisc(veth, "htb").is_none());
    w.run(pod, "CHECK", &plain).assert_ok();
    assert_ne!(w.run(pod, "CHECK", &conf).code, 0);
    w.run(pod, "DEL", &plain).assert_ok();
    assert_clean(&w, veth);
    // DEL of a split: its htb root is ours too (the delete naming a tbf is
    // refused, the one naming an htb is not).
    w.run(pod, "ADD", &conf).assert_ok();
    assert!(w.qdisc(veth, "htb").is_some());
    w.run(pod, "DEL", &conf).assert_ok();
    assert_clean(&w, veth);
}

/// The veth's qdiscs and ingress filters as `tc -j` prints them.
fn tc_state(w: &World, veth: &str) -> (Vec<Value>, Vec<Value>) {
    let filters = if w
        .qdiscs(veth)
        .iter()
        .any(|q| q["kind"] == "ingress" || q["kind"] == "clsact")
    {
        w.ingress_filters(veth)
    } else {
        Vec::new()
    };
    (w.qdiscs(veth), filters)
}

#[test]
fn add_failing_at_the_last_step_undoes_everything_it_created() {
    if !cni::testing::privileged("add_failing_at_the_last_step_undoes_everything_it_created") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let veth = pod.host_veth.as_str();
    // Someone else's ingress qdisc and a filter at our redirect priority with
    // another protocol: the kernel refuses our redirect (the last step) after
    // the root TBF, the IFB and its TBF exist.
    w.host.exec(&["tc", "qdisc", "add", "dev", veth, "ingress"]);
    w.host.exec(&[
        "tc",
        "filter",
        "add",
        "dev",
        veth,
        "ingress",
        "prio",
        "189",
        "protocol",
        "ip",
        "u32",
        "match",
        "ip",
        "dst",
        "192.0.2.1/32",
        "flowid",
        "1:1",
    ]);
    let before = tc_state(&w, veth);
    assert_eq!(before.1.len(), 3, "{:?}", before.1);
    for version in VERSIONS {
        for config in [
            both(),
            json!({"ingressRate": 1_000_000, "ingressBurst": 80_000, "egressRate": 2_000_000,
                   "egressBurst": 160_000, "unshapedSubnets": ["10.0.0.0/8"]}),
        ] {
            let out = w.run(pod, "ADD", &w.conf(pod, version, config));
            assert_eq!(out.code, 1, "{version}: {}", out.stdout);
            assert!(
                out.stdout.contains(&format!(
                    "adding the u32 redirect filter on host veth {veth} (ifindex"
                )) && out.stdout.contains("to ifb bwp"),
                "{}",
                out.stdout
            );
            assert!(
                out.stdout
                    .contains("may already have a filter of another protocol at priority 189"),
                "{}",
                out.stdout
            );
            assert!(!out.stdout.contains("undoing"), "{}", out.stdout);
            assert_eq!(
                tc_state(&w, veth),
                before,
                "{version}: the veth is as it was"
            );
            assert!(w.ifbs().is_empty(), "{version}: ifb left: {:?}", w.ifbs());
        }
    }
    // Without the conflicting filter the same ADD succeeds.
    w.host
        .exec(&["tc", "filter", "del", "dev", veth, "ingress", "prio", "189"]);
    w.run(pod, "ADD", &w.conf(pod, "1.1.0", both())).assert_ok();
    w.run(pod, "DEL", &w.conf(pod, "1.1.0", both())).assert_ok();
    assert!(w.ifbs().is_empty());
    assert!(
        w.qdisc(veth, "ingress").is_some(),
        "their ingress qdisc stays"
    );
}

#[test]
fn add_failing_after_creating_the_ingress_qdisc_and_ifb_removes_them() {
    if !cni::testing::privileged(
        "add_failing_after_creating_the_ingress_qdisc_and_ifb_removes_them",
    ) {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let veth = pod.host_veth.as_str();
    // Someone else's IFB, which must survive.
    w.host
        .exec(&["ip", "link", "add", "theirifb0", "type", "ifb"]);
    let before = tc_state(&w, veth);
    assert!(
        before.0.iter().all(|q| q["kind"] == "noqueue"),
        "{:?}",
        before.0
    );
    // The IFB's TBF fails as the kernel would (EINVAL, through the test-only
    // failpoint): the failure comes after the veth's root qdisc, our ingress
    // qdisc, the IFB and its alias exist.
    let egress = json!({"ingressRate": 1_000_000, "ingressBurst": 80_000,
        "egressRate": 1_000_000, "egressBurst": 80_000});
    let split = json!({"ingressRate": 1_000_000, "ingressBurst": 80_000,
        "egressRate": 1_000_000, "egressBurst": 80_000, "shapedSubnets": ["10.0.0.0/8"]});
    for version in VERSIONS {
        for (config, object) in [
            (&egress, "creating tbf qdisc 1:0 parent root on ifb bwp"),
            (&split, "creating tbf qdisc 2:0 parent 1:30 on ifb bwp"),
        ] {
            let mut inv = w.inv(pod, "ADD");
            inv.extra_env
                .insert(cni::failpoint::FAIL_ENV.into(), "ifb-tbf".into());
            let out = inv.run(&plugin(), &w.conf(pod, version, config.clone()));
            assert_eq!(out.code, 1, "{version}: {}", out.stdout);
            assert!(out.stdout.contains("Invalid argument"), "{}", out.stdout);
            assert!(out.stdout.contains(object), "{}", out.stdout);
            assert!(!out.stdout.contains("undoing"), "{}", out.stdout);
            assert_eq!(
                tc_state(&w, veth),
                before,
                "{version}: the veth is as it was"
            );
            assert_eq!(w.ifbs(), vec!["theirifb0".to_string()], "{version}");
        }
    }
}

#[test]
fn a_burst_too_short_for_its_rate_is_code_7_before_anything_is_created() {
    if !cni::testing::privileged(
        "a_burst_too_short_for_its_rate_is_code_7_before_anything_is_created",
    ) {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let veth = pod.host_veth.as_str();
    let before = tc_state(&w, veth);
    // 8 bits at 100 Gbit/s last 0.08 ns: a TBF buffer of 0 ticks, which the
    // kernel refuses. Said up front, with the smallest burst that works.
    let conf = w.conf(
        pod,
        "1.0.0",
        json!({"ingressRate": 1_000_000, "ingressBurst": 80_000,
            "egressRate": 100_000_000_000u64, "egressBurst": 8}),
    );
    let out = w.run(pod, "ADD", &conf);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let err: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(err["code"], 7, "{err}");
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains("egress burst of 8 bits"), "{msg}");
    assert!(msg.contains("at least 100000 bits"), "{msg}");
    assert_eq!(tc_state(&w, veth), before, "nothing created");
    assert!(w.ifbs().is_empty(), "{:?}", w.ifbs());
    // CHECK says the same; DEL of that config still succeeds.
    assert_eq!(w.run(pod, "CHECK", &conf).code, 1);
    w.run(pod, "DEL", &conf).assert_ok();
}

#[test]
fn a_foreign_link_with_our_ifb_name_is_never_ours() {
    if !cni::testing::privileged("a_foreign_link_with_our_ifb_name_is_never_ours") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let veth = pod.host_veth.as_str();
    let name =
        bandwidth::plan::ifb_name(&cni::args::Owner::new("bwnet", &pod.container_id, "eth0"));
    let forged = format!(
        "cni-bandwidth bwnet/{}/eth0 veth={veth} ingress-qdisc=ours",
        pod.container_id
    );
    // (link name, its alias, the name it is found by): a veth called like our
    // IFB; one whose alias even names our owner (but it is no IFB); a veth
    // that carries our IFB's name as an altname.
    for (link, alias, how) in [
        (name.clone(), "someone else's".to_string(), "name"),
        (name.clone(), forged.clone(), "forged alias"),
        ("theirveth0".to_string(), forged.clone(), "altname"),
    ] {
        w.host.exec(&[
            "ip",
            "link",
            "add",
            &link,
            "type",
            "veth",
            "peer",
            "name",
            "theirpeer0",
        ]);
        w.host.exec(&["ip", "link", "set", &link, "alias", &alias]);
        if how == "altname" {
            w.host.exec(&[
                "ip", "link", "property", "add", "dev", &link, "altname", &name,
            ]);
        }
        let index = w.link(&link).unwrap()["ifindex"].clone();
        let before = tc_state(&w, veth);
        for version in VERSIONS {
            let conf = w.conf(pod, version, both());
            let out = w.run(pod, "ADD", &conf);
            assert_eq!(out.code, 1, "{how} {version}: {}", out.stdout);
            assert!(
                out.stdout.contains(&format!(
                    "cannot create ifb {name}: the name is taken by link {link} (ifindex {index}, veth"
                )),
                "{how}: {}",
                out.stdout
            );
            assert_eq!(tc_state(&w, veth), before, "{how}: nothing was created");
            // DEL finds nothing of ours and succeeds, twice.
            w.run(pod, "DEL", &conf).assert_ok();
            w.run(pod, "DEL", &conf).assert_ok();
            // Shaping without an IFB still works and is removed by DEL.
            let ingress = w.conf(
                pod,
                version,
                json!({"ingressRate": 8000, "ingressBurst": 80}),
            );
            w.run(pod, "ADD", &ingress).assert_ok();
            assert!(w.qdisc(veth, "tbf").is_some());
            w.run(pod, "DEL", &ingress).assert_ok();
            assert_eq!(tc_state(&w, veth), before, "{how}");
        }
        // GC of the whole network (no valid attachments) leaves it too.
        let gc = json!({"cniVersion": "1.1.0", "name": "bwnet", "type": "bandwidth",
            "cni.dev/valid-attachments": []});
        let mut inv = cni::testing::Invocation::new("GC");
        inv.host_netns = Some(w.host.name.clone());
        inv.run(&plugin(), &gc.to_string()).assert_ok();
        let after = w.link(&link).expect("the foreign link survives DEL and GC");
        assert_eq!(after["ifindex"], index, "{how}");
        assert_eq!(after["ifalias"], alias.as_str(), "{how}");
        assert_eq!(after["linkinfo"]["info_kind"], "veth", "{how}");
        w.host.exec(&["ip", "link", "del", &link]);
    }
    // With the name free again, ADD creates our IFB.
    let conf = w.conf(pod, "1.1.0", both());
    let result = w.run(pod, "ADD", &conf).assert_ok().json();
    assert_eq!(ifb_of(&result), name);
    w.run(pod, "DEL", &conf).assert_ok();
    assert_clean(&w, veth);
}

/// A first ADD creates exclusively without reading the kernel first; what is
/// already there answers EEXIST and the ADD falls back to the careful way.
/// Here an earlier ADD's IFB outlived the veth's qdiscs (someone deleted
/// them): the new ADD still replaces it instead of failing, and leaves one
/// IFB with one redirect to it.
#[test]
fn re_add_after_our_qdiscs_were_removed_by_hand_reuses_the_ifb_name() {
    if !cni::testing::privileged("re_add_after_our_qdiscs_were_removed_by_hand_reuses_the_ifb_name")
    {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let veth = pod.host_veth.as_str();
    for version in VERSIONS {
        let conf = w.conf(pod, version, both());
        let ifb = ifb_of(&w.run(pod, "ADD", &conf).assert_ok().json());
        let old_index = w.link(&ifb).unwrap()["ifindex"].clone();
        w.host.exec(&["tc", "qdisc", "del", "dev", veth, "root"]);
        w.host.exec(&["tc", "qdisc", "del", "dev", veth, "ingress"]);
        assert!(w.link(&ifb).is_some(), "the stale ifb is still there");
        let result = w.run(pod, "ADD", &conf).assert_ok().json();
        assert_eq!(ifb_of(&result), ifb);
        assert_eq!(w.ifbs(), vec![ifb.clone()]);
        let new_index = w.link(&ifb).unwrap()["ifindex"].clone();
        assert_ne!(
            new_index, old_index,
            "{version}: the stale ifb was replaced"
        );
        assert!(w.qdisc(veth, "tbf").is_some() && w.qdisc(veth, "ingress").is_some());
        let redirects: Vec<_> = w
            .ingress_filters(veth)
            .into_iter()
            .filter(|f| f["options"]["actions"].is_array())
            .collect();
        assert_eq!(redirects.len(), 1, "{redirects:?}");
        if has_check(version) {
            w.run(pod, "CHECK", &conf).assert_ok();
        }
        w.run(pod, "DEL", &conf).assert_ok();
        assert_clean(&w, veth);
    }
}

/// The name DEL gives an IFB before deleting it in the background.
fn retired(ifb: &str) -> String {
    format!("bwz{}", &ifb[3..])
}

/// DEL hands the IFB's unregistration to a detached child: nothing is left
/// within a second of DEL, and an ADD of the same pod right after DEL gets
/// the same IFB name and works (its old IFB retired under another name).
#[test]
fn del_unregisters_the_ifb_in_the_background_and_a_re_add_right_after_works() {
    if !cni::testing::privileged(
        "del_unregisters_the_ifb_in_the_background_and_a_re_add_right_after_works",
    ) {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let veth = pod.host_veth.as_str();
    let conf = w.conf(pod, "1.1.0", both());
    let ifb = ifb_of(&w.run(pod, "ADD", &conf).assert_ok().json());
    for round in 0..5 {
        w.run(pod, "DEL", &conf).assert_ok();
        let again = ifb_of(&w.run(pod, "ADD", &conf).assert_ok().json());
        assert_eq!(again, ifb, "round {round}");
        assert_eq!(w.ifbs(), vec![ifb.clone()], "round {round}");
        let tbf = w.qdisc(&ifb, "tbf").expect("tbf on the new ifb");
        assert_eq!(tbf["options"]["rate"], 250_000);
        w.run(pod, "CHECK", &conf).assert_ok();
    }
    w.run(pod, "DEL", &conf).assert_ok();
    let start = std::time::Instant::now();
    while !w.ifbs_now().is_empty() {
        assert!(
            start.elapsed() < TEARDOWN,
            "ifbs left a second after DEL: {:?}",
            w.ifbs_now()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_clean(&w, veth);
}

/// A DEL killed after retiring the IFB (renamed, not yet deleted) leaves a
/// `bwz…` IFB: GC of its network deletes it even though its owner is a
/// valid attachment again (re-added), and so does the owner's next DEL;
/// an ADD meanwhile works.
#[test]
fn gc_and_the_next_del_collect_the_retired_ifb_a_killed_del_left() {
    if !cni::testing::privileged("gc_and_the_next_del_collect_the_retired_ifb_a_killed_del_left") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let veth = pod.host_veth.as_str();
    let conf = w.conf(pod, "1.1.0", both());
    // What a DEL killed between the rename and the deletion leaves.
    let killed_del = |ifb: &str| {
        w.host.exec(&["tc", "qdisc", "del", "dev", veth, "root"]);
        w.host.exec(&["tc", "qdisc", "del", "dev", veth, "ingress"]);
        w.host
            .exec(&["ip", "link", "set", "dev", ifb, "name", &retired(ifb)]);
    };
    let ifb = ifb_of(&w.run(pod, "ADD", &conf).assert_ok().json());
    killed_del(&ifb);
    assert_eq!(w.ifbs_now(), vec![retired(&ifb)]);
    // Re-ADD with the retired one still there, then GC keeps the live pod.
    assert_eq!(ifb_of(&w.run(pod, "ADD", &conf).assert_ok().json()), ifb);
    let gc = json!({"cniVersion": "1.1.0", "name": "bwnet", "type": "bandwidth",
        "cni.dev/valid-attachments": [{"containerID": pod.container_id, "ifname": "eth0"}]});
    let mut inv = cni::testing::Invocation::new("GC");
    inv.host_netns = Some(w.host.name.clone());
    inv.run(&plugin(), &gc.to_string()).assert_ok();
    assert_eq!(
        w.ifbs_now(),
        vec![ifb.clone()],
        "GC deleted the retired ifb only"
    );
    w.run(pod, "CHECK", &conf).assert_ok();
    // The next DEL of the owner collects a retired leftover too, and the
    // live IFB (which cannot take the retired name) goes at once.
    killed_del(&ifb);
    assert_eq!(ifb_of(&w.run(pod, "ADD", &conf).assert_ok().json()), ifb);
    let mut both_ifbs = w.ifbs_now();
    both_ifbs.sort();
    assert_eq!(both_ifbs, vec![ifb.clone(), retired(&ifb)]);
    w.run(pod, "DEL", &conf).assert_ok();
    assert_clean(&w, veth);
    // And a DEL with only the retired leftover.
    w.run(pod, "ADD", &conf).assert_ok();
    killed_del(&ifb);
    w.run(pod, "DEL", &conf).assert_ok();
    assert_clean(&w, veth);
}

/// The link group DEL moves a retired IFB to (bandwidth's `RETIRED_GROUP`).
const RETIRED_GROUP: &str = "1651997185";

/// `ip -j link`'s group of `dev` (a number where no name is defined).
fn group_of(w: &World, dev: &str) -> String {
    w.link(dev).map_or(String::new(), |l| {
        l["group"].to_string().trim_matches('"').to_string()
    })
}

/// Waits (bounded by [`TEARDOWN`]) until `gone` holds no IFB of the host netns.
fn wait_until_gone(w: &World, gone: &[String]) {
    let start = std::time::Instant::now();
    while w.ifbs_now().iter().any(|i| gone.contains(i)) {
        assert!(
            start.elapsed() < TEARDOWN,
            "ifbs left a second after DEL: {:?}",
            w.ifbs_now()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A retired IFB joins the retired link group, and one DEL's background
/// child deletes every retired IFB of that group in one batch: here the
/// retired IFB a killed child left (pod 0) goes with pod 1's DEL, whose
/// owner is not pod 0's. A link someone else put in that group is never
/// deleted: the child then deletes its own IFB alone.
#[test]
fn del_deletes_the_retired_ifbs_as_one_group_and_never_a_foreign_member() {
    if !cni::testing::privileged(
        "del_deletes_the_retired_ifbs_as_one_group_and_never_a_foreign_member",
    ) {
        return;
    }
    let w = World::new(3);
    let ifbs: Vec<String> = (0..3)
        .map(|i| {
            let pod = w.pod(i);
            ifb_of(
                &w.run(pod, "ADD", &w.conf(pod, "1.1.0", both()))
                    .assert_ok()
                    .json(),
            )
        })
        .collect();
    // Pod 0's DEL, its background child killed at once: the IFB stays,
    // retired, in the retired group.
    let pod = w.pod(0);
    let mut inv = w.inv(pod, "DEL");
    inv.extra_env.insert(
        cni::failpoint::CRASH_ENV.into(),
        "background close child".into(),
    );
    inv.run(&plugin(), &w.conf(pod, "1.1.0", both()))
        .assert_ok();
    let leftover = retired(&ifbs[0]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(w.ifbs_now().contains(&leftover), "{:?}", w.ifbs_now());
    assert_eq!(group_of(&w, &leftover), RETIRED_GROUP);
    // Pod 1's DEL takes pod 0's leftover with its own IFB.
    let pod = w.pod(1);
    w.run(pod, "DEL", &w.conf(pod, "1.1.0", both())).assert_ok();
    wait_until_gone(&w, &[leftover.clone(), ifbs[1].clone(), retired(&ifbs[1])]);
    // A foreign link in the group: pod 2's DEL deletes its own IFB only.
    let foreign = format!("{}fg", w.host.name.chars().take(8).collect::<String>());
    w.host.exec(&[
        "ip",
        "link",
        "add",
        &foreign,
        "group",
        RETIRED_GROUP,
        "type",
        "ifb",
    ]);
    let pod = w.pod(2);
    w.run(pod, "DEL", &w.conf(pod, "1.1.0", both())).assert_ok();
    wait_until_gone(&w, &[ifbs[2].clone(), retired(&ifbs[2])]);
    assert_eq!(
        w.ifbs_now(),
        vec![foreign.clone()],
        "the foreign member stays"
    );
    w.host.exec(&["ip", "link", "del", &foreign]);
    for i in 0..3 {
        assert_clean(&w, &w.pod(i).host_veth);
    }
}
