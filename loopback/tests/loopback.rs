//! The loopback binary against real throwaway netns, for every cniVersion:
//! ADD brings lo up and prints the version's real layout (insta snapshots,
//! netns path redacted), CHECK sees it, DEL takes it down (twice, and with
//! the netns gone), bad netns states are refused without side effects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cni::testing::{privileged, Invocation, PluginRun, TestNetns};
use cni::{CniResult, CniVersion};
use serde_json::{json, Value};

fn plugin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_loopback"))
}

fn conf(version: CniVersion) -> String {
    json!({"cniVersion": version.as_str(), "name": "lonet", "type": "loopback"}).to_string()
}

fn invoke(command: &str, ns: &TestNetns, stdin: &str) -> PluginRun {
    let mut inv = Invocation::new(command);
    inv.netns = ns.path().display().to_string();
    inv.run(plugin(), stdin)
}

fn lo_is_up(ns: &TestNetns) -> bool {
    let line = ns.exec(&["ip", "-o", "link", "show", "lo"]);
    let flags = line
        .split('<')
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .unwrap();
    flags.split(',').any(|f| f == "UP")
}

/// A netns whose lo is down, as a runtime creates it.
fn fresh_netns(tag: &str) -> TestNetns {
    let ns = TestNetns::new(tag);
    ns.exec(&["ip", "link", "set", "lo", "down"]);
    assert!(!lo_is_up(&ns));
    ns
}

fn redact(stdout: &str, ns: &TestNetns) -> String {
    stdout.replace(&ns.path().display().to_string(), "[netns]")
}

#[test]
fn add_check_del_in_every_version() {
    if !privileged("add_check_del_in_every_version") {
        return;
    }
    for &v in CniVersion::ALL {
        let ns = fresh_netns("lo");
        let add = invoke("ADD", &ns, &conf(v));
        add.assert_ok();
        assert!(lo_is_up(&ns), "{v}: lo not up after ADD");
        insta::assert_snapshot!(
            format!("add_{}", v.as_str().replace('.', "_")),
            redact(&add.stdout, &ns)
        );
        let j = add.json();
        assert_eq!(j["cniVersion"], v.as_str());
        // The printed result reads back as a result of that version.
        let (r, labelled) = CniResult::from_value(&j, v).unwrap();
        assert_eq!(labelled, v);
        let ips: Vec<String> = r.ips.iter().map(|i| i.address.to_string()).collect();
        assert_eq!(ips, ["127.0.0.1/8", "::1/128"], "{v}");

        if v.allows_check() {
            let check = invoke("CHECK", &ns, &conf(v));
            check.assert_ok();
            assert_eq!(check.stdout, "");
        }
        for round in 0..2 {
            let del = invoke("DEL", &ns, &conf(v));
            del.assert_ok();
            assert_eq!(del.stdout, "", "{v} DEL #{round}");
            assert!(!lo_is_up(&ns), "{v}: lo up after DEL");
        }
        if v.allows_check() {
            let check = invoke("CHECK", &ns, &conf(v));
            assert_eq!(check.code, 1, "{v}: CHECK passed with lo down");
            let e = check.json();
            assert_eq!(e["code"], 999);
            assert_eq!(
                e["msg"],
                format!("loopback: interface lo in {} is down", ns.path().display())
            );
        }
    }
}

#[test]
fn prev_result_is_passed_through_converted() {
    if !privileged("prev_result_is_passed_through_converted") {
        return;
    }
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:01:00:02", "sandbox": "/var/run/netns/x"}],
        "ips": [{"interface": 0, "address": "10.1.0.2/24", "gateway": "10.1.0.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
        "x-kept": true
    });
    for &v in CniVersion::ALL {
        let ns = fresh_netns("lp");
        let mut stdin = json!({"cniVersion": v.as_str(), "name": "lonet", "type": "loopback"});
        stdin["prevResult"] = prev.clone();
        let add = invoke("ADD", &ns, &stdin.to_string());
        add.assert_ok();
        assert!(lo_is_up(&ns));
        let (r, _) = CniResult::from_value(&prev, v).unwrap();
        assert_eq!(add.json(), r.to_value(v).unwrap(), "{v}");
        assert_eq!(add.json()["x-kept"], true);
    }
}

#[test]
fn non_loopback_address_is_refused_and_lo_left_down() {
    if !privileged("non_loopback_address_is_refused_and_lo_left_down") {
        return;
    }
    let ns = fresh_netns("ln");
    ns.exec(&["ip", "addr", "add", "10.9.9.9/8", "dev", "lo"]);
    let add = invoke("ADD", &ns, &conf(CniVersion::V1_1_0));
    assert_eq!(add.code, 1);
    let e = add.json();
    assert_eq!(e["code"], 999);
    assert_eq!(
        e["msg"],
        format!(
            "loopback: interface lo in {} carries the non-loopback address 10.9.9.9/8",
            ns.path().display()
        )
    );
    assert!(!lo_is_up(&ns), "a failed ADD left lo up");
}

#[test]
fn only_present_families_are_reported() {
    if !privileged("only_present_families_are_reported") {
        return;
    }
    let ns = fresh_netns("l6");
    ns.exec(&["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
    ns.exec(&["sysctl", "-q", "-w", "net.ipv6.conf.lo.disable_ipv6=1"]);
    for v in [CniVersion::V0_2_0, CniVersion::V1_1_0] {
        let add = invoke("ADD", &ns, &conf(v));
        add.assert_ok();
        let j = add.json();
        if v == CniVersion::V0_2_0 {
            assert_eq!(j["ip4"]["ip"], "127.0.0.1/8");
            assert!(j.get("ip6").is_none(), "{j}");
        } else {
            assert_eq!(
                j["ips"],
                json!([{"address": "127.0.0.1/8", "interface": 0}])
            );
        }
    }
}

/// containerd runs loopback as its own network with Go-cased keys possible
/// anywhere; DEL never fails on input it does not need.
#[test]
fn del_with_garbage_input_takes_lo_down_in_every_version() {
    if !privileged("del_with_garbage_input_takes_lo_down_in_every_version") {
        return;
    }
    for &v in CniVersion::ALL {
        let ns = fresh_netns("lg");
        for (what, stdin) in [
            (
                "garbage runtimeConfig and args",
                json!({"cniVersion": v.as_str(), "name": "cni-loopback",
                "type": "loopback", "runtimeConfig": "garbage", "args": [1]}),
            ),
            (
                "truncated prevResult",
                json!({"CNIVersion": v.as_str(), "Name": "cni-loopback",
                "Type": "loopback", "prevResult": {"cniVersion": v.as_str(), "ips": [{"interface": 0}]}}),
            ),
            (
                "bad capabilities",
                json!({"cniVersion": v.as_str(), "name": "cni-loopback",
                "capabilities": "all"}),
            ),
        ] {
            let stdin = stdin.to_string();
            invoke("ADD", &ns, &conf(v)).assert_ok();
            assert!(lo_is_up(&ns), "{v} {what}");
            let out = invoke("DEL", &ns, &stdin);
            out.assert_ok();
            assert_eq!(out.stdout, "", "{v} {what}");
            assert!(!lo_is_up(&ns), "{v} {what}: lo still up");
            invoke("DEL", &ns, &stdin).assert_ok();
            let mut inv = Invocation::new("DEL");
            inv.netns = String::new();
            inv.run(plugin(), &stdin).assert_ok();
        }
    }
}

#[test]
fn del_succeeds_without_a_netns() {
    if !privileged("del_succeeds_without_a_netns") {
        return;
    }
    for netns in ["", "/run/netns/cnt-never-existed"] {
        for _ in 0..2 {
            let mut inv = Invocation::new("DEL");
            inv.netns = netns.into();
            let del = inv.run(plugin(), &conf(CniVersion::V1_0_0));
            del.assert_ok();
            assert_eq!(del.stdout, "");
        }
    }
    // A netns deleted between ADD and DEL.
    let ns = fresh_netns("lg");
    invoke("ADD", &ns, &conf(CniVersion::V0_4_0)).assert_ok();
    let path = ns.path();
    drop(ns);
    let mut inv = Invocation::new("DEL");
    inv.netns = path.display().to_string();
    inv.run(plugin(), &conf(CniVersion::V0_4_0)).assert_ok();
}

#[test]
fn add_and_check_fail_clearly_without_the_netns() {
    if !privileged("add_and_check_fail_clearly_without_the_netns") {
        return;
    }
    for command in ["ADD", "CHECK"] {
        let mut inv = Invocation::new(command);
        inv.netns = "/run/netns/cnt-never-existed".into();
        let run = inv.run(plugin(), &conf(CniVersion::V1_1_0));
        assert_eq!(run.code, 1, "{command}");
        let e = run.json();
        assert_eq!(e["code"], 999);
        assert_eq!(
            e["msg"],
            "loopback: netns /run/netns/cnt-never-existed: does not exist"
        );
    }
}

#[test]
fn gc_status_and_version_succeed() {
    if !privileged("gc_status_and_version_succeed") {
        return;
    }
    for command in ["GC", "STATUS"] {
        let inv = Invocation::new(command);
        let run = inv.run(plugin(), &conf(CniVersion::V1_1_0));
        run.assert_ok();
        assert_eq!(run.stdout, "");
    }
    let run = Invocation::new("VERSION").run(plugin(), "");
    run.assert_ok();
    let j: Value = run.json();
    assert_eq!(j["cniVersion"], "1.1.0");
    assert_eq!(j["supportedVersions"].as_array().unwrap().len(), 7);
}

#[test]
fn bad_invocations_of_the_binary_are_spec_errors() {
    if !privileged("bad_invocations_of_the_binary_are_spec_errors") {
        return;
    }
    let ns = fresh_netns("lb");
    let netns = ns.path().display().to_string();
    let ok = conf(CniVersion::V1_1_0);
    let cases: Vec<(&str, Invocation, String, u32)> = vec![
        (
            "bad ifname",
            {
                let mut i = Invocation::new("ADD");
                i.netns = netns.clone();
                i.ifname = "this-name-is-too-long".into();
                i
            },
            ok.clone(),
            4,
        ),
        ("missing netns", Invocation::new("ADD"), ok.clone(), 4),
        (
            "bad container id",
            {
                let mut i = Invocation::new("DEL");
                i.container_id = "../etc".into();
                i
            },
            ok.clone(),
            4,
        ),
        (
            "bad JSON",
            {
                let mut i = Invocation::new("ADD");
                i.netns = netns.clone();
                i
            },
            "{".to_string(),
            6,
        ),
        (
            "unsupported version",
            {
                let mut i = Invocation::new("ADD");
                i.netns = netns.clone();
                i
            },
            conf_raw("2.0.0"),
            1,
        ),
        (
            "CHECK on 0.3.0",
            {
                let mut i = Invocation::new("CHECK");
                i.netns = netns.clone();
                i
            },
            conf(CniVersion::V0_3_0),
            1,
        ),
        (
            "own netns",
            {
                let mut i = Invocation::new("ADD");
                i.netns = "/proc/self/ns/net".into();
                i.host_netns = Some(ns.name.clone());
                i
            },
            ok.clone(),
            8,
        ),
    ];
    for (name, inv, stdin, code) in cases {
        let run = inv.run(plugin(), &stdin);
        assert_eq!(run.code, 1, "{name}: {}", run.stdout);
        assert_eq!(run.json()["code"], code, "{name}: {}", run.stdout);
        assert!(run.json()["msg"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Nothing above touched lo.
    assert!(!lo_is_up(&ns));
}

fn conf_raw(version: &str) -> String {
    json!({"cniVersion": version, "name": "lonet", "type": "loopback"}).to_string()
}
