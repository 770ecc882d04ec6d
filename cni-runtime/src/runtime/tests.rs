//! Unit tests of the runtime's libcni semantics against the scripted fake
//! exec: injected stdin (snapshots), verb order, cache use per version, GC,
//! STATUS, validation and how plugin failures are reported.

use super::*;
use crate::conflist::parse_conflist;
use crate::exec::fake::{exit, ok, passthrough, Call, FakeExec};
use crate::exec::ExecError;
use cni::ErrorCode;
use serde_json::json;
use std::path::Path;

use crate::test_dir::Dir;

const CHAIN: &str = r#"{
  "cniVersion": "1.1.0",
  "name": "k8s-pod-network",
  "plugins": [
    {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}, "mtu": 1400},
    {"type": "tuning", "capabilities": {"mac": true}, "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}},
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
    {"type": "bandwidth", "capabilities": {"bandwidth": false}, "ingressRate": 1000, "ingressBurst": 100}
  ]
}"#;

fn chain(version: &str) -> NetworkConfigList {
    parse_conflist(CHAIN.replace("1.1.0", version).as_bytes(), None).unwrap()
}

fn caps() -> Map<String, Value> {
    json!({
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "bandwidth": {"ingressRate": 1000000, "ingressBurst": 80000},
        "mac": "c2:11:22:33:44:55",
        "ips": ["10.1.0.9/24"]
    })
    .as_object()
    .unwrap()
    .clone()
}

fn rt() -> RuntimeConf {
    RuntimeConf {
        container_id: "ctr1".into(),
        netns: "/run/netns/pod1".into(),
        ifname: "eth0".into(),
        args: vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAME".into(), "web".into()),
        ],
        capability_args: caps(),
    }
}

fn runtime(exec: &FakeExec, cache: &Dir) -> Runtime {
    Runtime::new(vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()])
        .with_cache_dir(cache.0.clone())
        .with_exec(Arc::new(exec.clone()))
}

const ALL: &[&str] = &["ptp", "tuning", "portmap", "bandwidth"];

fn pretty(call: &Call) -> String {
    serde_json::to_string_pretty(&call.stdin).unwrap()
}

#[test]
fn add_injects_name_version_prev_result_and_filtered_runtime_config() {
    let d = Dir::new("add-snap");
    let exec = FakeExec::new(ALL, passthrough);
    let r = runtime(&exec, &d);
    let out = r.add_network_list(&chain("1.1.0"), &rt()).unwrap();
    assert_eq!(
        exec.trace(),
        vec!["ADD ptp", "ADD tuning", "ADD portmap", "ADD bandwidth"]
    );
    let calls = exec.calls();
    for (i, call) in calls.iter().enumerate() {
        insta::assert_snapshot!(format!("add_stdin_{i}_{}", call.plugin), pretty(call));
    }
    // the stdin keys are sorted like libcni's re-marshalled maps
    let raw = String::from_utf8(calls[1].stdin_raw.clone()).unwrap();
    assert!(raw.starts_with(r#"{"capabilities":{"mac":true},"cniVersion":"1.1.0","name":"k8s-pod-network","prevResult":"#), "{raw}");
    // capability false ⇒ nothing injected; absent capability ⇒ nothing injected
    assert!(calls[0].stdin.get("runtimeConfig").is_none());
    assert!(calls[3].stdin.get("runtimeConfig").is_none());
    assert_eq!(
        calls[1].stdin["runtimeConfig"],
        json!({"mac": "c2:11:22:33:44:55"})
    );
    // each plugin's result is the next prevResult
    assert!(calls[0].stdin.get("prevResult").is_none());
    assert_eq!(
        calls[2].stdin["prevResult"]["interfaces"][2]["name"],
        "by-tuning"
    );
    // the final result is the last plugin's
    assert_eq!(out.version, CniVersion::V1_1_0);
    assert_eq!(out.raw["interfaces"].as_array().unwrap().len(), 5);
    assert_eq!(out.result.interfaces[4].name, "by-bandwidth");
    // env like libcni's
    let env = &calls[0].env;
    assert_eq!(env["CNI_COMMAND"], "ADD");
    assert_eq!(env["CNI_CONTAINERID"], "ctr1");
    assert_eq!(env["CNI_NETNS"], "/run/netns/pod1");
    assert_eq!(env["CNI_IFNAME"], "eth0");
    assert_eq!(env["CNI_ARGS"], "IgnoreUnknown=1;K8S_POD_NAME=web");
    assert_eq!(env["CNI_PATH"], "/opt/cni/bin:/usr/lib/cni");
    assert_eq!(calls[0].timeout, Some(DEFAULT_TIMEOUT));
    assert_eq!(calls[0].netns, None);
}

#[test]
fn add_writes_the_cache_with_config_args_caps_and_result() {
    let d = Dir::new("add-cache");
    let exec = FakeExec::new(ALL, passthrough);
    let list = chain("1.0.0");
    let out = runtime(&exec, &d).add_network_list(&list, &rt()).unwrap();
    let entry = ResultCache::new(&d.0)
        .read("k8s-pod-network", "ctr1", "eth0")
        .unwrap()
        .unwrap();
    assert_eq!(entry.config, list.bytes);
    assert_eq!(entry.netns, "/run/netns/pod1");
    assert_eq!(entry.cni_args, rt().args);
    assert_eq!(entry.capability_args, caps());
    assert_eq!(entry.result, Some(out.raw));
    assert!(d.0.join("results/k8s-pod-network-ctr1-eth0").is_file());
}

#[test]
fn a_result_without_cni_version_is_labelled_with_the_list_version() {
    let d = Dir::new("fixup");
    let exec = FakeExec::new(&["ptp"], |_| {
        ok(r#"{"ips":[{"address":"10.1.0.2/24","version":"4"}]}"#)
    });
    let list = parse_conflist(
        br#"{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"ptp"}]}"#,
        None,
    )
    .unwrap();
    let out = runtime(&exec, &d).add_network_list(&list, &rt()).unwrap();
    assert_eq!(out.raw["cniVersion"], "0.4.0");
    assert_eq!(out.version, CniVersion::V0_4_0);
}

#[test]
fn add_stops_at_the_first_failure_names_plugin_and_verb_and_caches_nothing() {
    let d = Dir::new("add-fail");
    let exec = FakeExec::new(ALL, |c| {
        if c.plugin == "tuning" {
            exit(
                1,
                r#"{"cniVersion":"1.1.0","code":7,"msg":"invalid sysctl","details":"net.x"}"#,
                "",
            )
        } else {
            passthrough(c)
        }
    });
    let e = runtime(&exec, &d)
        .add_network_list(&chain("1.1.0"), &rt())
        .unwrap_err();
    assert_eq!(exec.trace(), vec!["ADD ptp", "ADD tuning"]);
    assert_eq!(
        e.to_string(),
        "network \"k8s-pod-network\": plugin #1 type=\"tuning\" failed (ADD): code 7: invalid sysctl; net.x"
    );
    let cni = e.cni_error().unwrap();
    assert_eq!(
        (cni.code, cni.msg.as_str()),
        (ErrorCode::InvalidNetworkConfig, "invalid sysctl")
    );
    assert_eq!(e.plugin().unwrap().verb, Command::Add);
    assert!(!d.0.join("results/k8s-pod-network-ctr1-eth0").exists());
}

#[test]
fn a_missing_plugin_is_reported_with_the_search_path_before_anything_runs() {
    let d = Dir::new("missing");
    let exec = FakeExec::new(&["ptp"], passthrough);
    let e = runtime(&exec, &d)
        .add_network_list(&chain("1.1.0"), &rt())
        .unwrap_err();
    assert_eq!(exec.trace(), vec!["ADD ptp"]);
    assert_eq!(
        e.to_string(),
        "network \"k8s-pod-network\": plugin #1 type=\"tuning\" failed (ADD): plugin \"tuning\" not found in [/opt/cni/bin /usr/lib/cni]"
    );
}

#[test]
fn invalid_container_id_and_ifname_are_rejected_before_exec() {
    let d = Dir::new("invalid");
    let exec = FakeExec::new(ALL, passthrough);
    let r = runtime(&exec, &d);
    let cases: &[(&str, &str, &str)] = &[
        ("", "eth0", "container ID \"\": must not be empty"),
        ("a/b", "eth0", "container ID \"a/b\""),
        ("-ab", "eth0", "container ID \"-ab\""),
        ("ctr", "", "interface name \"\": must not be empty"),
        ("ctr", "0123456789abcdef", "longer than 15 bytes"),
        ("ctr", "..", "must not be . or .."),
        ("ctr", "eth/0", "must not contain"),
        ("ctr", "eth:0", "must not contain"),
        ("ctr", "eth 0", "must not contain"),
    ];
    for (id, ifname, want) in cases {
        let mut conf = rt();
        conf.container_id = id.to_string();
        conf.ifname = ifname.to_string();
        for result in [
            r.add_network_list(&chain("1.1.0"), &conf).map(|_| ()),
            r.check_network_list(&chain("1.1.0"), &conf),
            r.del_network_list(&chain("1.1.0"), &conf),
        ] {
            let e = result.unwrap_err();
            assert!(matches!(e, RuntimeError::InvalidAttachment { .. }), "{e}");
            assert!(e.to_string().contains(want), "{e} lacks {want}");
        }
    }
    assert!(exec.calls().is_empty());
}

#[test]
fn del_runs_in_reverse_with_the_cached_result_and_removes_the_cache() {
    let d = Dir::new("del");
    let exec = FakeExec::new(ALL, passthrough);
    let r = runtime(&exec, &d);
    let list = chain("1.1.0");
    let added = r.add_network_list(&list, &rt()).unwrap();
    let before = exec.calls().len();
    r.del_network_list(&list, &rt()).unwrap();
    let calls: Vec<Call> = exec.calls().split_off(before);
    let order: Vec<String> = calls
        .iter()
        .map(|c| format!("{} {}", c.command, c.plugin))
        .collect();
    assert_eq!(
        order,
        vec!["DEL bandwidth", "DEL portmap", "DEL tuning", "DEL ptp"]
    );
    for c in &calls {
        assert_eq!(c.stdin["prevResult"], added.raw, "{}", c.plugin);
    }
    insta::assert_snapshot!("del_stdin_portmap", pretty(&calls[1]));
    assert!(!d.0.join("results/k8s-pod-network-ctr1-eth0").exists());
    // DEL again: no cache, no prevResult, still succeeds
    let before = exec.calls().len();
    r.del_network_list(&list, &rt()).unwrap();
    assert!(exec.calls()[before..]
        .iter()
        .all(|c| c.stdin.get("prevResult").is_none()));
}

#[test]
fn del_keeps_going_past_failures_reports_them_all_and_keeps_the_cache() {
    let d = Dir::new("del-fail");
    let exec = FakeExec::new(&["ptp", "tuning", "portmap"], |c| {
        match (c.command.as_str(), c.plugin.as_str()) {
            ("DEL", "portmap") => exit(1, r#"{"code":999,"msg":"nft: busy"}"#, ""),
            _ => passthrough(c),
        }
    });
    let r = runtime(&exec, &d);
    let list = parse_conflist(
        br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"ptp"},{"type":"tuning"},{"type":"portmap"},{"type":"bandwidth"}]}"#,
        None,
    )
    .unwrap();
    // bandwidth is missing (R8): ADD would fail; write a cache entry by hand
    ResultCache::new(&d.0)
        .write(&CacheEntry {
            container_id: "ctr1".into(),
            network: "n".into(),
            ifname: "eth0".into(),
            config: list.bytes.clone(),
            netns: "/run/netns/pod1".into(),
            cni_args: vec![],
            capability_args: Map::new(),
            result: Some(json!({"cniVersion":"1.0.0","ips":[{"address":"10.1.0.2/24"}]})),
            legacy: false,
        })
        .unwrap();
    let e = r.del_network_list(&list, &rt()).unwrap_err();
    assert_eq!(exec.trace(), vec!["DEL portmap", "DEL tuning", "DEL ptp"]);
    let msg = e.to_string();
    assert!(msg.starts_with("network \"n\": DEL: 2 errors: (1) network \"n\": plugin #3 type=\"bandwidth\" failed (DEL): plugin \"bandwidth\" not found"), "{msg}");
    assert!(
        msg.contains(
            "(2) network \"n\": plugin #2 type=\"portmap\" failed (DEL): code 999: nft: busy"
        ),
        "{msg}"
    );
    assert_eq!(e.all().len(), 2);
    assert_eq!(e.cni_error().unwrap().msg, "nft: busy");
    assert!(
        d.0.join("results/n-ctr1-eth0").exists(),
        "cache kept for a retry"
    );
}

#[test]
fn del_tolerates_an_unreadable_cache_and_proceeds_without_prev_result() {
    for garbage in [
        "",
        "{\"kind\":",
        "[1,2]",
        "{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"nonsense\"}]}",
    ] {
        let d = Dir::new("del-garbage");
        let exec = FakeExec::new(ALL, passthrough);
        let r = runtime(&exec, &d);
        std::fs::create_dir_all(d.0.join("results")).unwrap();
        std::fs::write(d.0.join("results/k8s-pod-network-ctr1-eth0"), garbage).unwrap();
        r.del_network_list(&chain("1.0.0"), &rt()).unwrap();
        assert_eq!(exec.calls().len(), 4);
        assert!(
            exec.calls()
                .iter()
                .all(|c| c.stdin.get("prevResult").is_none()),
            "{garbage:?}"
        );
        assert!(
            !d.0.join("results/k8s-pod-network-ctr1-eth0").exists(),
            "{garbage:?}"
        );
    }
}

#[test]
fn check_and_del_pass_the_cached_result_by_version() {
    let cached = json!({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/pod1"}],
        "ips":[{"address":"10.1.0.2/24","gateway":"10.1.0.1","interface":0}]});
    for version in CniVersion::ALL {
        let d = Dir::new("prev-by-version");
        let exec = FakeExec::new(ALL, passthrough);
        let r = runtime(&exec, &d);
        let list = chain(version.as_str());
        let entry = CacheEntry {
            container_id: "ctr1".into(),
            network: list.name.clone(),
            ifname: "eth0".into(),
            config: list.bytes.clone(),
            netns: "/run/netns/pod1".into(),
            cni_args: vec![],
            capability_args: Map::new(),
            result: Some(cached.clone()),
            legacy: false,
        };
        ResultCache::new(&d.0).write(&entry).unwrap();
        let check = r.check_network_list(&list, &rt());
        if version.allows_check() {
            check.unwrap();
            let prev = exec.calls()[0].stdin["prevResult"].clone();
            assert_eq!(prev["cniVersion"], version.as_str(), "{version}");
            if *version == CniVersion::V0_4_0 {
                assert_eq!(prev["ips"][0]["version"], "4");
            }
            if *version == CniVersion::V1_0_0 {
                assert_eq!(prev, cached, "same version passes through unchanged");
            }
            assert_eq!(
                exec.trace(),
                vec![
                    "CHECK ptp",
                    "CHECK tuning",
                    "CHECK portmap",
                    "CHECK bandwidth"
                ]
            );
        } else {
            let e = check.unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("network \"k8s-pod-network\": configuration version \"{version}\" does not support the CHECK command")
            );
            assert!(exec.calls().is_empty());
        }
        let before = exec.calls().len();
        r.del_network_list(&list, &rt()).unwrap();
        let del = &exec.calls()[before..];
        assert_eq!(del.len(), 4);
        for c in del {
            assert_eq!(
                c.stdin.get("prevResult").is_some(),
                version.allows_check(),
                "{version}"
            );
        }
        // a legacy (bare result) cache file is read the same way
        std::fs::create_dir_all(d.0.join("results")).unwrap();
        std::fs::write(
            d.0.join("results/k8s-pod-network-ctr1-eth0"),
            cached.to_string(),
        )
        .unwrap();
        if version.allows_check() {
            let before = exec.calls().len();
            r.check_network_list(&list, &rt()).unwrap();
            assert_eq!(
                exec.calls()[before].stdin["prevResult"]["ips"][0]["address"],
                "10.1.0.2/24"
            );
        }
    }
}

#[test]
fn check_without_cache_has_no_prev_result_and_a_corrupt_cache_is_an_error() {
    let d = Dir::new("check-cache");
    let exec = FakeExec::new(ALL, passthrough);
    let r = runtime(&exec, &d);
    r.check_network_list(&chain("1.1.0"), &rt()).unwrap();
    assert!(exec
        .calls()
        .iter()
        .all(|c| c.stdin.get("prevResult").is_none()));
    std::fs::create_dir_all(d.0.join("results")).unwrap();
    std::fs::write(d.0.join("results/k8s-pod-network-ctr1-eth0"), "").unwrap();
    let before = exec.calls().len();
    let e = r.check_network_list(&chain("1.1.0"), &rt()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("network \"k8s-pod-network\": reading the result cache: "),
        "{e}"
    );
    assert!(e.to_string().ends_with("the file is empty"), "{e}");
    assert_eq!(exec.calls().len(), before);
}

#[test]
fn check_stops_at_the_first_failure_and_disable_check_skips_everything() {
    let d = Dir::new("check");
    let exec = FakeExec::new(ALL, |c| match c.plugin.as_str() {
        "tuning" => exit(1, r#"{"code":999,"msg":"mtu 1500 != 1400"}"#, ""),
        _ => ok(""),
    });
    let r = runtime(&exec, &d);
    let e = r.check_network_list(&chain("1.0.0"), &rt()).unwrap_err();
    assert_eq!(exec.trace(), vec!["CHECK ptp", "CHECK tuning"]);
    assert!(
        e.to_string()
            .ends_with("type=\"tuning\" failed (CHECK): code 999: mtu 1500 != 1400"),
        "{e}"
    );
    let mut list = chain("1.0.0");
    list.disable_check = true;
    let before = exec.calls().len();
    r.check_network_list(&list, &rt()).unwrap();
    assert_eq!(exec.calls().len(), before);
}

fn cache_entry(list: &NetworkConfigList, id: &str, ifname: &str) -> CacheEntry {
    CacheEntry {
        container_id: id.into(),
        network: list.name.clone(),
        ifname: ifname.into(),
        config: list.bytes.clone(),
        netns: format!("/run/netns/{id}"),
        cni_args: vec![("K8S_POD_NAME".into(), id.into())],
        capability_args: caps(),
        result: Some(json!({"cniVersion":"1.1.0","ips":[{"address":"10.1.0.2/24"}]})),
        legacy: false,
    }
}

#[test]
fn gc_deletes_stale_attachments_then_sends_gc_with_valid_attachments() {
    let d = Dir::new("gc");
    let exec = FakeExec::new(ALL, passthrough);
    let r = runtime(&exec, &d);
    let list = chain("1.1.0");
    let cache = ResultCache::new(&d.0);
    cache.write(&cache_entry(&list, "live", "eth0")).unwrap();
    cache.write(&cache_entry(&list, "stale", "eth0")).unwrap();
    let mut other = cache_entry(&list, "stale", "eth0");
    other.network = "other-net".into();
    cache.write(&other).unwrap();
    let valid = vec![Attachment {
        container_id: "live".into(),
        ifname: "eth0".into(),
    }];
    r.gc_network_list(&list, &valid).unwrap();
    assert_eq!(
        exec.trace(),
        vec![
            "DEL bandwidth",
            "DEL portmap",
            "DEL tuning",
            "DEL ptp",
            "GC ptp",
            "GC tuning",
            "GC portmap",
            "GC bandwidth"
        ]
    );
    let calls = exec.calls();
    // the stale DEL used the cached netns, CNI_ARGS and capability args
    assert_eq!(calls[0].env["CNI_CONTAINERID"], "stale");
    assert_eq!(calls[0].env["CNI_NETNS"], "/run/netns/stale");
    assert_eq!(calls[0].env["CNI_ARGS"], "K8S_POD_NAME=stale");
    assert_eq!(
        calls[1].stdin["runtimeConfig"]["portMappings"][0]["hostPort"],
        8080
    );
    assert!(calls[3].stdin.get("prevResult").is_some());
    // GC: no container env, valid attachments under both names
    assert_eq!(calls[4].env["CNI_CONTAINERID"], "");
    assert_eq!(calls[4].env["CNI_NETNS"], "");
    insta::assert_snapshot!("gc_stdin_portmap", pretty(&calls[6]));
    assert!(!d.0.join("results/k8s-pod-network-stale-eth0").exists());
    assert!(d.0.join("results/k8s-pod-network-live-eth0").exists());
    assert!(
        d.0.join("results/other-net-stale-eth0").exists(),
        "other networks untouched"
    );
}

#[test]
fn gc_with_no_valid_attachments_deletes_every_cached_one() {
    let d = Dir::new("gc-empty");
    let exec = FakeExec::new(ALL, passthrough);
    let r = runtime(&exec, &d);
    let list = chain("1.1.0");
    ResultCache::new(&d.0)
        .write(&cache_entry(&list, "a", "eth0"))
        .unwrap();
    ResultCache::new(&d.0)
        .write(&cache_entry(&list, "a", "net1"))
        .unwrap();
    r.gc_network_list(&list, &[]).unwrap();
    assert_eq!(
        exec.calls().iter().filter(|c| c.command == "DEL").count(),
        8
    );
    let gc: Vec<Call> = exec
        .calls()
        .into_iter()
        .filter(|c| c.command == "GC")
        .collect();
    assert_eq!(gc.len(), 4);
    assert_eq!(gc[0].stdin["cni.dev/valid-attachments"], json!([]));
    assert_eq!(gc[0].stdin["cni.dev/attachments"], json!([]));
    assert!(!d.0.join("results/k8s-pod-network-a-net1").exists());
}

#[test]
fn gc_below_1_1_0_only_deletes_and_disable_gc_does_nothing() {
    let d = Dir::new("gc-old");
    let exec = FakeExec::new(ALL, passthrough);
    let r = runtime(&exec, &d);
    let list = chain("1.0.0");
    ResultCache::new(&d.0)
        .write(&cache_entry(&list, "old", "eth0"))
        .unwrap();
    let mut disabled = list.clone();
    disabled.disable_gc = true;
    r.gc_network_list(&disabled, &[]).unwrap();
    assert!(exec.calls().is_empty());
    r.gc_network_list(&list, &[]).unwrap();
    assert_eq!(
        exec.trace(),
        vec!["DEL bandwidth", "DEL portmap", "DEL tuning", "DEL ptp"]
    );
}

#[test]
fn gc_collects_errors_from_stale_deletes_and_plugins() {
    let d = Dir::new("gc-errors");
    let exec = FakeExec::new(ALL, |c| match (c.command.as_str(), c.plugin.as_str()) {
        ("DEL", "ptp") => exit(1, r#"{"code":11,"msg":"try again"}"#, ""),
        ("GC", "portmap") => exit(2, "", "panic: boom"),
        _ => passthrough(c),
    });
    let r = runtime(&exec, &d);
    let list = chain("1.1.0");
    ResultCache::new(&d.0)
        .write(&cache_entry(&list, "gone", "eth0"))
        .unwrap();
    let e = r.gc_network_list(&list, &[]).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("deleting stale attachment gone eth0: 1 errors: (1) network \"k8s-pod-network\": plugin #0 type=\"ptp\" failed (DEL): code 11: try again"), "{msg}");
    assert!(msg.contains("plugin #2 type=\"portmap\" failed (GC): exited with status 2 without printing an error (stderr: \"panic: boom\")"), "{msg}");
    assert_eq!(
        exec.calls().iter().filter(|c| c.command == "GC").count(),
        4,
        "GC continues past errors"
    );
}

#[test]
fn status_is_sent_in_order_only_for_1_1_0_and_returns_the_first_error() {
    let d = Dir::new("status");
    let exec = FakeExec::new(ALL, |c| match c.plugin.as_str() {
        "tuning" => exit(
            1,
            r#"{"code":50,"msg":"plugin not available","details":"no ipam"}"#,
            "",
        ),
        _ => ok(""),
    });
    let r = runtime(&exec, &d);
    r.status_network_list(&chain("1.0.0")).unwrap();
    assert!(exec.calls().is_empty());
    let e = r.status_network_list(&chain("1.1.0")).unwrap_err();
    assert_eq!(exec.trace(), vec!["STATUS ptp", "STATUS tuning"]);
    assert_eq!(e.cni_error().unwrap().code, ErrorCode::PluginNotAvailable);
    assert!(
        e.to_string()
            .ends_with("type=\"tuning\" failed (STATUS): code 50: plugin not available; no ipam"),
        "{e}"
    );
    let calls = exec.calls();
    insta::assert_snapshot!("status_stdin_ptp", pretty(&calls[0]));
    assert_eq!(calls[0].env["CNI_COMMAND"], "STATUS");
}

#[test]
fn failures_without_a_spec_error_are_described() {
    let cases: Vec<(Result<ExecOutput, ExecError>, &str)> = vec![
        (exit(3, "", ""), "exited with status 3 without printing an error (stderr empty)"),
        (exit(1, "", "fatal: no ipam\n"), "exited with status 1 without printing an error (stderr: \"fatal: no ipam\")"),
        (exit(1, "Segmentation fault", ""), "exited with status 1 and printed something that is not a CNI error: \"Segmentation fault\""),
        (exit(1, "{\"hello\":1}", ""), "not a CNI error: \"{\\\"hello\\\":1}\""),
        (
            Ok(ExecOutput { exit_code: None, signal: Some(9), stdout: vec![], stderr: b"oom".to_vec() }),
            "was killed by signal 9 (stderr: \"oom\")",
        ),
        (
            Err(ExecError::Timeout { after: Duration::from_secs(5), stderr: String::new() }),
            "did not finish within 5s and was killed",
        ),
        (ok("garbage"), "printed an invalid result (not JSON: expected value at line 1 column 1): \"garbage\""),
        (ok(""), "printed an invalid result (no output)"),
        (ok("[1]"), "printed an invalid result (not a JSON object)"),
        (ok(r#"{"cniVersion":"1.0.0","ips":[{"address":"bad"}]}"#), "printed an invalid result (decoding result"),
    ];
    for (answer, want) in cases {
        let d = Dir::new("garbage");
        let answer = std::sync::Mutex::new(Some(answer));
        let exec = FakeExec::new(&["ptp"], move |_| answer.lock().unwrap().take().unwrap());
        let list = parse_conflist(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"ptp"}]}"#,
            None,
        )
        .unwrap();
        let e = runtime(&exec, &d)
            .add_network_list(&list, &rt())
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("network \"n\": plugin #0 type=\"ptp\" failed (ADD): "),
            "{msg}"
        );
        assert!(msg.contains(want), "{msg}\n  lacks {want}");
        assert!(e.cni_error().is_none());
    }
}

#[test]
fn a_result_followed_by_an_error_is_read_as_the_error() {
    // Go skel's own-netns guard prints the result, then the error (anchors §1c)
    let d = Dir::new("double");
    let exec = FakeExec::new(&["ptp"], |_| {
        exit(1, "{\n    \"cniVersion\": \"1.0.0\"\n}{\n    \"code\": 8,\n    \"msg\": \"plugin's netns and netns from CNI_NETNS should not be the same\"\n}", "")
    });
    let list = parse_conflist(
        br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"ptp"}]}"#,
        None,
    )
    .unwrap();
    let e = runtime(&exec, &d)
        .add_network_list(&list, &rt())
        .unwrap_err();
    assert_eq!(e.cni_error().unwrap().code.as_u32(), 8);
}

#[test]
fn validate_checks_every_plugin_version_and_returns_capabilities() {
    let d = Dir::new("validate");
    let exec = FakeExec::new(&["ptp", "tuning", "portmap"], |c| {
        assert_eq!(c.command, "VERSION");
        assert_eq!(c.stdin, json!({"cniVersion": "1.1.0"}));
        match c.plugin.as_str() {
            "tuning" => {
                ok(r#"{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}"#)
            }
            "portmap" => exit(1, r#"{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}"#, ""),
            _ => passthrough(c),
        }
    });
    let r = runtime(&exec, &d);
    let caps = r.validate_network_list(&chain("1.0.0")).unwrap_err();
    let msg = caps.to_string();
    // portmap only knows 0.1.0; bandwidth is missing
    assert!(msg.contains("plugin #2 type=\"portmap\" does not support config version \"1.0.0\"; it supports [\"0.1.0\"]"), "{msg}");
    assert!(
        msg.contains(
            "plugin #3 type=\"bandwidth\" failed (VERSION): plugin \"bandwidth\" not found"
        ),
        "{msg}"
    );
    assert!(!msg.contains("tuning"), "{msg}");
    let e = r.validate_network_list(&chain("1.1.0")).unwrap_err();
    assert!(e.to_string().contains("type=\"tuning\" does not support config version \"1.1.0\"; it supports [\"0.3.1\" \"0.4.0\" \"1.0.0\"]"), "{e}");
    let two = parse_conflist(
        br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"ptp","capabilities":{"ips":true,"mac":false}},{"type":"tuning","capabilities":{"mac":true,"ips":true}}]}"#,
        None,
    )
    .unwrap();
    assert_eq!(r.validate_network_list(&two).unwrap(), vec!["ips", "mac"]);
    // ADD does not pay for VERSION calls
    let before = exec.calls().len();
    let exec2 = FakeExec::new(&["ptp", "tuning"], passthrough);
    runtime(&exec2, &d).add_network_list(&two, &rt()).unwrap();
    assert!(exec2.calls().iter().all(|c| c.command == "ADD"));
    assert_eq!(exec.calls().len(), before);
}

#[test]
fn version_info_reports_supported_versions() {
    let d = Dir::new("version");
    let exec = FakeExec::new(&["ptp"], passthrough);
    let r = runtime(&exec, &d);
    let v = r.version_info("ptp").unwrap();
    assert_eq!(v.first().map(String::as_str), Some("0.1.0"));
    assert_eq!(v.last().map(String::as_str), Some("1.1.0"));
    let env = &exec.calls()[0].env;
    assert_eq!(env["CNI_COMMAND"], "VERSION");
    assert_eq!(env["CNI_NETNS"], "dummy");
    let e = r.version_info("nope").unwrap_err();
    assert!(e.to_string().contains("plugin \"nope\" not found"), "{e}");
}

#[test]
fn exec_netns_and_timeout_reach_the_exec() {
    let d = Dir::new("netns");
    let exec = FakeExec::new(ALL, passthrough);
    let r = runtime(&exec, &d)
        .with_exec_netns("/run/netns/host1".into())
        .with_timeout(Duration::from_millis(1500));
    r.status_network_list(&chain("1.1.0")).unwrap();
    for c in exec.calls() {
        assert_eq!(c.netns.as_deref(), Some(Path::new("/run/netns/host1")));
        assert_eq!(c.timeout, Some(Duration::from_millis(1500)));
    }
    let exec = FakeExec::new(ALL, passthrough);
    runtime(&exec, &d)
        .without_timeout()
        .status_network_list(&chain("1.1.0"))
        .unwrap();
    assert_eq!(exec.calls()[0].timeout, None);
}

#[test]
fn an_unwritable_cache_fails_add_after_the_plugins_ran() {
    let d = Dir::new("ro-cache");
    std::fs::write(&d.0, b"not a directory").unwrap();
    let exec = FakeExec::new(ALL, passthrough);
    let e = runtime(&exec, &d)
        .add_network_list(&chain("1.1.0"), &rt())
        .unwrap_err();
    assert_eq!(exec.calls().len(), 4);
    assert!(e.to_string().starts_with("network \"k8s-pod-network\": ADD succeeded but DEL is needed: writing the result cache: "), "{e}");
    let _ = std::fs::remove_file(&d.0);
}

#[test]
fn plugin_stdin_is_a_pure_function_of_list_prev_and_caps() {
    let list = chain("1.0.0");
    let prev = json!({"cniVersion":"1.0.0","ips":[]});
    let a = plugin_stdin(&list, 2, Some(&prev), &caps());
    let b = plugin_stdin(&list, 2, Some(&prev), &caps());
    assert_eq!(a, b);
    let v: Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(v["snat"], true, "unknown plugin keys pass through");
    assert_eq!(
        v["capabilities"],
        json!({"portMappings": true}),
        "capabilities are not stripped (libcni)"
    );
    // a runtimeConfig already in the plugin object is replaced only when caps apply
    let mut with_rc = list.clone();
    with_rc.plugins[0].insert("runtimeConfig".into(), json!({"static": 1}));
    let v: Value = serde_json::from_slice(&plugin_stdin(&with_rc, 0, None, &caps())).unwrap();
    assert_eq!(v["runtimeConfig"], json!({"static": 1}));
    let v: Value = serde_json::from_slice(&plugin_stdin(&list, 2, None, &Map::new())).unwrap();
    assert!(
        v.get("runtimeConfig").is_none(),
        "no capability args ⇒ no runtimeConfig"
    );
}
