//! Privileged: what Go runtimes send. A Go-cased configuration (top-level
//! `RuntimeConfig`, `Sysctl`, `MTU` …) is applied, and no malformed input
//! blocks teardown: DEL with a garbage `runtimeConfig`/`args`, a truncated
//! `prevResult`, twice, with `CNI_NETNS=""` and after the netns is gone
//! restores the originals (where the netns still exists), drops the backup
//! file and exits 0 — for every version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni::testing::privileged;
use cni::CniVersion;
use common::*;
use serde_json::{json, Value};

const MAC: &str = "02:11:22:33:44:66";
const SOMAXCONN: &str = "net/core/somaxconn";

fn go_cased() -> Value {
    json!({"Sysctl": {"net.core.somaxconn": "1234"}, "MTU": 1300, "Promisc": true,
        "AllMulti": true, "TxQLen": 77, "RuntimeConfig": {"Mac": MAC}})
}

fn assert_applied(w: &World, what: &str) {
    assert_eq!(
        w.link(),
        LinkView {
            mac: MAC.into(),
            mtu: 1300,
            promisc: true,
            allmulti: true,
            txqlen: 77
        },
        "{what}"
    );
    assert_eq!(w.sysctl(SOMAXCONN), "1234", "{what}");
    assert_eq!(w.backups().len(), 1, "{what}");
}

#[test]
fn go_cased_config_applies_and_malformed_input_never_blocks_del() {
    if !privileged("go_cased_config_applies_and_malformed_input_never_blocks_del") {
        return;
    }
    for &v in CniVersion::ALL {
        let w = World::new();
        let before = (w.link(), w.sysctl(SOMAXCONN));
        let conf = w.conf(v, go_cased());
        let truncated = w.conf(
            v,
            json!({"prevResult": {"cniVersion": v.as_str(), "interfaces": [{"mac": 5}]}}),
        );
        for (what, del_conf) in [
            (
                "garbage runtimeConfig and args",
                w.conf(v, json!({"runtimeConfig": "garbage", "args": [1]})),
            ),
            (
                "wrong types everywhere but dataDir",
                w.conf(
                    v,
                    json!({"RuntimeConfig": {"Mac": 5},
                "args": {"cni": {"mtu": "x"}}, "sysctl": 3, "mtu": "big"}),
                ),
            ),
            ("truncated prevResult", truncated),
            ("the ADD configuration", conf.clone()),
        ] {
            let what = format!("{v} {what}");
            w.run("ADD", &conf).assert_ok();
            assert_applied(&w, &what);
            let out = w.run("DEL", &del_conf);
            out.assert_ok();
            assert_eq!(out.stdout, "", "{what}");
            assert_eq!(
                (w.link(), w.sysctl(SOMAXCONN)),
                before,
                "{what}: originals back"
            );
            assert!(w.backups().is_empty(), "{what}: backup left");
            w.run("DEL", &del_conf).assert_ok();
        }
        // RemovePodSandbox: CNI_NETNS="" drops the backup (nothing to restore into).
        w.run("ADD", &conf).assert_ok();
        let mut inv = w.invocation("DEL");
        inv.netns = String::new();
        inv.run(std::path::Path::new(PLUGIN), &conf).assert_ok();
        assert!(w.backups().is_empty(), "{v}");
        inv.run(std::path::Path::new(PLUGIN), &conf).assert_ok();
        // A dataDir ADD would refuse: nothing can be there, DEL says so and succeeds.
        let bad_dir = w.conf(v, json!({"dataDir": 5}));
        let out = w.run("DEL", &bad_dir);
        out.assert_ok();
        assert!(out.stderr.contains("dataDir"), "{v}: {}", out.stderr);
    }
}

#[test]
fn del_after_the_netns_is_gone_drops_the_backup_for_every_version() {
    if !privileged("del_after_the_netns_is_gone_drops_the_backup_for_every_version") {
        return;
    }
    for &v in CniVersion::ALL {
        let w = World::new();
        let conf = w.conf(v, go_cased());
        w.run("ADD", &conf).assert_ok();
        assert_applied(&w, v.as_str());
        cni::testing::sh(&["ip", "netns", "del", &w.ctr.name]);
        w.run("DEL", &conf).assert_ok();
        assert!(w.backups().is_empty(), "{v}");
        w.run("DEL", &conf).assert_ok();
    }
}
