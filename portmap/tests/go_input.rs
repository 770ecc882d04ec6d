//! Privileged: what Go runtimes send. containerd's Go-cased port mappings
//! work (real traffic), and no malformed input blocks teardown: DEL with a
//! garbage `runtimeConfig`, a truncated `prevResult`, `CNI_NETNS=""`, twice,
//! and after the pod's netns is gone, each removes every element and the
//! index file and exits 0 — for every cniVersion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};

/// go-cni's `PortMapping`, marshalled without JSON tags.
fn go_cased(hp_tcp: u16, hp_udp: u16) -> Value {
    json!([
        {"HostPort": hp_tcp, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""},
        {"HostPort": hp_udp, "ContainerPort": 81, "Protocol": "udp", "HostIP": ""}
    ])
}

fn assert_clean(w: &World, id: &str, what: &str) {
    let rules = w.nft_ruleset();
    assert!(
        !rules.contains(&format!("pmnet/{id}/eth0")),
        "{what}: {rules}"
    );
    assert!(!index_path(w, id).exists(), "{what}: index file left");
}

#[test]
fn go_cased_mappings_work_and_malformed_input_never_blocks_del() {
    if !cni::testing::privileged("go_cased_mappings_work_and_malformed_input_never_blocks_del") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let _srv = serve(&a.ns, "A", 80, 81);
    let ns_a = a.ns.path().display().to_string();
    for v in cni::CniVersion::ALL {
        let prev = a.prev_at(*v);
        let conf = portmap_conf(v.as_str(), Some(&prev), go_cased(8080, 8081));
        let garbage_rc = {
            let mut c = conf.clone();
            c["runtimeConfig"] = json!({"portMappings": "garbage"});
            c
        };
        let wrong_types = {
            let mut c = conf.clone();
            c["runtimeConfig"] = json!({"portMappings": [{"HostPort": "x", "Protocol": 6}]});
            c["args"] = json!("not an object");
            c
        };
        let truncated_prev = {
            let mut c = conf.clone();
            c["prevResult"] = json!({"cniVersion": v.as_str(), "ips": [{"interface": 0}]});
            c
        };
        let dels: [(&str, &str, &Value); 4] = [
            ("garbage runtimeConfig", ns_a.as_str(), &garbage_rc),
            (
                "wrong types in runtimeConfig and args",
                ns_a.as_str(),
                &wrong_types,
            ),
            ("truncated prevResult", ns_a.as_str(), &truncated_prev),
            ("CNI_NETNS=\"\"", "", &conf),
        ];
        for (what, netns, del_conf) in dels {
            w.portmap("ADD", &a.id, &ns_a, &conf).assert_ok();
            assert_eq!(
                tcp_get(&w.ext.path(), addr(NODE4, 8080)),
                Ok("A".into()),
                "{v} {what}"
            );
            assert_eq!(
                udp_get(&w.ext.path(), addr(NODE4, 8081), None),
                Ok("A".into()),
                "{v} {what}"
            );
            assert!(w.nft_ruleset().contains("pmnet/ctrA/eth0"), "{v} {what}");
            let out = w.portmap("DEL", &a.id, netns, del_conf);
            out.assert_ok();
            assert_eq!(out.stdout, "", "{v} {what}");
            if what != "CNI_NETNS=\"\"" {
                assert!(out.stderr.contains("ignor"), "{v} {what}: {}", out.stderr);
            }
            assert_clean(&w, &a.id, &format!("{v} {what}"));
            // DEL again: nothing left to remove, still success.
            w.portmap("DEL", &a.id, netns, del_conf).assert_ok();
            assert_clean(&w, &a.id, &format!("{v} {what}, second DEL"));
            assert!(
                tcp_get(&w.ext.path(), addr(NODE4, 8080)).is_err(),
                "{v} {what}"
            );
        }
    }
}

#[test]
fn del_after_the_pod_netns_is_gone_removes_everything() {
    if !cni::testing::privileged("del_after_the_pod_netns_is_gone_removes_everything") {
        return;
    }
    let w = World::new();
    for v in cni::CniVersion::ALL {
        let id = format!("gone{}", v.as_str().replace('.', ""));
        let pod = w.pod(&id);
        let prev = pod.prev_at(*v);
        let Pod { ns, .. } = pod;
        let path = ns.path().display().to_string();
        let conf = portmap_conf(v.as_str(), Some(&prev), go_cased(8090, 8091));
        w.portmap("ADD", &id, &path, &conf).assert_ok();
        assert!(w.nft_ruleset().contains(&format!("pmnet/{id}/eth0")), "{v}");
        drop(ns);
        assert!(!std::path::Path::new(&path).exists());
        w.portmap("DEL", &id, &path, &conf).assert_ok();
        assert_clean(&w, &id, &format!("{v} netns gone"));
        w.portmap("DEL", &id, "", &conf).assert_ok();
    }
}
