//! Privileged tests of the real `tuning` binary against the kernel: each test
//! builds a private container netns with a veth `eth0` and its own data dir,
//! and checks link and sysctl state through iproute2 and /proc, per version
//! where the version matters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni::testing::{privileged, veth_pair};
use cni::CniVersion;
use common::*;
use serde_json::{json, Value};

const MAC: &str = "02:11:22:33:44:55";

fn all_link_fields() -> Value {
    json!({"mac": MAC, "promisc": true, "mtu": 1300, "allmulti": true, "txQLen": 123})
}

#[test]
fn link_attributes_are_applied_reported_and_restored_for_every_version() {
    if !privileged("link_attributes_are_applied_reported_and_restored_for_every_version") {
        return;
    }
    for &v in CniVersion::ALL {
        let w = World::new();
        let before = w.link();
        let conf = w.conf(v, all_link_fields());
        let add = w.run("ADD", &conf);
        add.assert_ok();
        assert_eq!(
            w.link(),
            LinkView {
                mac: MAC.into(),
                mtu: 1300,
                promisc: true,
                allmulti: true,
                txqlen: 123
            },
            "{v}"
        );
        let result = add.json();
        assert_eq!(result["cniVersion"], v.as_str());
        if v >= CniVersion::V0_3_0 {
            assert_eq!(result["interfaces"][1]["mac"], MAC, "{v}");
            assert!(result["interfaces"][0].get("mac").is_none(), "{v}");
        } else {
            assert_eq!(result["ip4"]["ip"], "10.1.2.3/24", "{v}");
        }
        insta::assert_json_snapshot!(
            format!("add_result_{}", v.as_str().replace('.', "_")),
            result,
            {".interfaces[].sandbox" => "[netns]"}
        );
        assert_eq!(w.backups().len(), 1, "{v}");
        if v.allows_check() {
            w.run("CHECK", &conf).assert_ok();
        }
        w.run("DEL", &conf).assert_ok();
        assert_eq!(w.link(), before, "{v}: DEL must restore every attribute");
        assert!(w.backups().is_empty(), "{v}");
        w.run("DEL", &conf).assert_ok();
    }
}

#[test]
fn each_attribute_alone_changes_only_itself_and_is_restored() {
    if !privileged("each_attribute_alone_changes_only_itself_and_is_restored") {
        return;
    }
    let w = World::new();
    let before = w.link();
    type Expect = Box<dyn Fn(&mut LinkView)>;
    let cases: Vec<(Value, Expect)> = vec![
        (json!({"mac": MAC}), Box::new(|l| l.mac = MAC.into())),
        (json!({"promisc": true}), Box::new(|l| l.promisc = true)),
        (json!({"mtu": 1280}), Box::new(|l| l.mtu = 1280)),
        (json!({"allmulti": true}), Box::new(|l| l.allmulti = true)),
        (json!({"txQLen": 0}), Box::new(|l| l.txqlen = 0)),
    ];
    for (fields, expect) in cases {
        let conf = w.conf(CniVersion::V1_1_0, fields.clone());
        w.run("ADD", &conf).assert_ok();
        let mut want = before.clone();
        expect(&mut want);
        assert_eq!(w.link(), want, "{fields}");
        w.run("CHECK", &conf).assert_ok();
        w.run("DEL", &conf).assert_ok();
        assert_eq!(w.link(), before, "{fields}");
        assert!(w.backups().is_empty());
    }
}

#[test]
fn runtime_config_args_and_cni_args_sources_apply() {
    if !privileged("runtime_config_args_and_cni_args_sources_apply") {
        return;
    }
    let w = World::new();
    let before = w.link();
    let conf = w.conf(
        CniVersion::V1_0_0,
        json!({
            "mac": "02:00:00:00:00:01",
            "runtimeConfig": {"mac": "02:00:00:00:00:03"},
            "args": {"cni": {"mtu": 1400, "txQLen": 77, "sysctl": {"net.core.somaxconn": "321"}}}
        }),
    );
    let mut inv = w.invocation("ADD");
    inv.args = "IgnoreUnknown=1;K8S_POD_NAME=p;MAC=02:00:00:00:00:02".into();
    let add = inv.run(std::path::Path::new(PLUGIN), &conf);
    add.assert_ok();
    assert_eq!(add.json()["interfaces"][1]["mac"], "02:00:00:00:00:03");
    let l = w.link();
    assert_eq!(
        (l.mac.as_str(), l.mtu, l.txqlen),
        ("02:00:00:00:00:03", 1400, 77)
    );
    assert_eq!(w.sysctl("net/core/somaxconn"), "321");
    let mut inv = w.invocation("DEL");
    inv.args = "IgnoreUnknown=1;K8S_POD_NAME=p;MAC=02:00:00:00:00:02".into();
    inv.run(std::path::Path::new(PLUGIN), &conf).assert_ok();
    assert_eq!(w.link(), before);
    assert_eq!(w.sysctl("net/core/somaxconn"), "4096");
}

#[test]
fn sysctls_are_applied_and_restored_for_every_version() {
    if !privileged("sysctls_are_applied_and_restored_for_every_version") {
        return;
    }
    for &v in CniVersion::ALL {
        let w = World::new();
        let (arp0, somax0) = (
            w.sysctl("net/ipv4/conf/eth0/arp_filter"),
            w.sysctl("net/core/somaxconn"),
        );
        let conf = w.conf(
            v,
            json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1", "net/core/somaxconn": "1234"}}),
        );
        let add = w.run("ADD", &conf);
        add.assert_ok();
        assert_eq!(w.sysctl("net/ipv4/conf/eth0/arp_filter"), "1", "{v}");
        assert_eq!(w.sysctl("net/core/somaxconn"), "1234", "{v}");
        if v.allows_check() {
            w.run("CHECK", &conf).assert_ok();
        }
        w.run("DEL", &conf).assert_ok();
        assert_eq!(w.sysctl("net/ipv4/conf/eth0/arp_filter"), arp0, "{v}");
        assert_eq!(w.sysctl("net/core/somaxconn"), somax0, "{v}");
        assert!(w.backups().is_empty(), "{v}");
    }
}

#[test]
fn ifname_sysctls_work_for_interface_names_with_dots() {
    if !privileged("ifname_sysctls_work_for_interface_names_with_dots") {
        return;
    }
    let w = World::new();
    veth_pair(&w.ctr, "eth0.100", &w.peer, "veth1");
    let conf = w.conf(
        CniVersion::V1_1_0,
        json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1"}, "mtu": 1450}),
    );
    let mut inv = w.invocation("ADD");
    inv.ifname = "eth0.100".into();
    inv.run(std::path::Path::new(PLUGIN), &conf).assert_ok();
    assert_eq!(w.sysctl("net/ipv4/conf/eth0.100/arp_filter"), "1");
    assert_eq!(w.sysctl("net/ipv4/conf/eth0/arp_filter"), "0");
    assert_eq!(w.link_named("eth0.100").mtu, 1450);
    inv.command = "DEL".into();
    inv.run(std::path::Path::new(PLUGIN), &conf).assert_ok();
    assert_eq!(w.sysctl("net/ipv4/conf/eth0.100/arp_filter"), "0");
    assert_eq!(w.link_named("eth0.100").mtu, 1500);
}

#[test]
fn backup_file_records_every_original_with_safe_modes() {
    if !privileged("backup_file_records_every_original_with_safe_modes") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let mut fields = all_link_fields();
    fields["sysctl"] =
        json!({"net.ipv4.conf.IFNAME.arp_filter": "1", "net.core.somaxconn": "1234"});
    w.run("ADD", &w.conf(CniVersion::V1_1_0, fields))
        .assert_ok();
    let name = format!("tunnet+{}+eth0.json", w.container_id);
    assert_eq!(w.backups(), std::slice::from_ref(&name));
    let path = w.data.0.join(&name);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&w.data.0).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let backup: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    insta::assert_json_snapshot!("backup_file", backup, {
        ".containerID" => "[container]",
        ".netns" => "[netns]",
        ".link.mac" => "[original mac]",
    });
}

#[test]
fn failed_add_at_the_mtu_step_rolls_everything_back() {
    if !privileged("failed_add_at_the_mtu_step_rolls_everything_back") {
        return;
    }
    for &v in CniVersion::SINCE_0_3_0 {
        let w = World::new();
        let before = w.link();
        let (arp0, somax0) = (
            w.sysctl("net/ipv4/conf/eth0/arp_filter"),
            w.sysctl("net/core/somaxconn"),
        );
        let conf = w.conf(
            v,
            json!({
                "sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1", "net.core.somaxconn": "1234"},
                "mac": MAC, "promisc": true, "mtu": 70000, "txQLen": 5
            }),
        );
        let run = w.run("ADD", &conf);
        assert_fails(&run, 999, "MTU 70000 on eth0");
        assert_fails(&run, 999, "rolled back");
        assert_eq!(w.link(), before, "{v}");
        assert_eq!(w.sysctl("net/ipv4/conf/eth0/arp_filter"), arp0);
        assert_eq!(w.sysctl("net/core/somaxconn"), somax0);
        assert!(w.backups().is_empty(), "{v}: {:?}", w.backups());
        // DEL after the failed ADD (the runtime always sends one) is fine.
        w.run("DEL", &conf).assert_ok();
    }
}

#[test]
fn failed_sysctl_write_rolls_back_earlier_sysctls() {
    if !privileged("failed_sysctl_write_rolls_back_earlier_sysctls") {
        return;
    }
    let w = World::new();
    let somax0 = w.sysctl("net/core/somaxconn");
    let conf = w.conf(
        CniVersion::V1_1_0,
        json!({"sysctl": {"net.core.somaxconn": "2000", "net.ipv4.conf.IFNAME.arp_filter": "abc"}}),
    );
    let run = w.run("ADD", &conf);
    assert_fails(&run, 999, "writing sysctl net.ipv4.conf.IFNAME.arp_filter");
    assert_eq!(w.sysctl("net/core/somaxconn"), somax0);
    assert!(w.backups().is_empty());
}

#[test]
fn a_missing_sysctl_key_fails_before_any_change() {
    if !privileged("a_missing_sysctl_key_fails_before_any_change") {
        return;
    }
    let w = World::new();
    let before = w.link();
    let somax0 = w.sysctl("net/core/somaxconn");
    let conf = w.conf(
        CniVersion::V1_1_0,
        json!({"sysctl": {"net.core.somaxconn": "2000", "net.ipv4.conf.IFNAME.no_such_key": "1"}, "mtu": 1300}),
    );
    let run = w.run("ADD", &conf);
    assert_fails(&run, 999, "/proc/sys/net/ipv4/conf/eth0/no_such_key");
    assert_eq!(w.sysctl("net/core/somaxconn"), somax0);
    assert_eq!(w.link(), before);
    assert!(w.backups().is_empty());
}

#[test]
fn check_passes_after_add_and_names_the_first_manual_change() {
    if !privileged("check_passes_after_add_and_names_the_first_manual_change") {
        return;
    }
    for &v in &[CniVersion::V0_4_0, CniVersion::V1_0_0, CniVersion::V1_1_0] {
        let w = World::new();
        let conf = w.conf(
            v,
            json!({"sysctl": {"net.core.somaxconn": "1234"}, "mac": MAC, "promisc": true, "mtu": 1300}),
        );
        w.run("ADD", &conf).assert_ok();
        w.run("CHECK", &conf).assert_ok();

        w.ctr.exec(&["ip", "link", "set", "eth0", "mtu", "1400"]);
        assert_fails(
            &w.run("CHECK", &conf),
            999,
            "configured MTU of eth0 is 1300, current value is 1400",
        );
        w.ctr.exec(&["ip", "link", "set", "eth0", "mtu", "1300"]);
        w.ctr.exec(&["ip", "link", "set", "eth0", "promisc", "off"]);
        assert_fails(
            &w.run("CHECK", &conf),
            999,
            "configured promisc of eth0 is on, current value is off",
        );
        w.ctr.exec(&["ip", "link", "set", "eth0", "promisc", "on"]);
        w.ctr
            .exec(&["ip", "link", "set", "eth0", "address", "02:00:00:00:00:aa"]);
        assert_fails(
            &w.run("CHECK", &conf),
            999,
            &format!("configured MAC of eth0 is {MAC}, current value is 02:00:00:00:00:aa"),
        );
        w.set_sysctl("net/core/somaxconn", "700");
        assert_fails(
            &w.run("CHECK", &conf),
            999,
            "configured sysctl net.core.somaxconn (/proc/sys/net/core/somaxconn) is 1234, current value is 700",
        );
        w.run("DEL", &conf).assert_ok();
    }
}

#[test]
fn check_writes_nothing_even_when_values_differ() {
    if !privileged("check_writes_nothing_even_when_values_differ") {
        return;
    }
    for &v in &[CniVersion::V0_4_0, CniVersion::V1_0_0, CniVersion::V1_1_0] {
        let w = World::new();
        let conf = w.conf(
            v,
            json!({"sysctl": {"net.core.somaxconn": "1234"}, "mac": MAC, "promisc": true,
                   "allmulti": true, "txQLen": 77, "mtu": 1300}),
        );
        let (link0, somax0) = (w.link(), w.sysctl("net/core/somaxconn"));
        // Nothing applied yet: CHECK reports the first difference, and neither
        // the netns nor the data dir changes (the dir is not even created).
        assert_fails(
            &w.run("CHECK", &conf),
            999,
            "configured sysctl net.core.somaxconn (/proc/sys/net/core/somaxconn) is 1234",
        );
        assert_eq!((w.link(), w.sysctl("net/core/somaxconn")), (link0, somax0));
        assert!(!w.data.0.exists(), "{v}: CHECK created the data dir");

        // After ADD, CHECK leaves the backup byte for byte and its mtime alone.
        w.run("ADD", &conf).assert_ok();
        let path = w.data.0.join(&w.backups()[0]);
        let (text, mtime) = (
            std::fs::read(&path).unwrap(),
            std::fs::metadata(&path).unwrap().modified().unwrap(),
        );
        let (link1, somax1) = (w.link(), w.sysctl("net/core/somaxconn"));
        w.set_sysctl("net/core/somaxconn", "700");
        assert_fails(&w.run("CHECK", &conf), 999, "current value is 700");
        assert_eq!(w.sysctl("net/core/somaxconn"), "700", "{v}: CHECK repaired");
        w.set_sysctl("net/core/somaxconn", &somax1);
        w.run("CHECK", &conf).assert_ok();
        assert_eq!(w.link(), link1);
        assert_eq!(w.backups().len(), 1);
        assert_eq!(std::fs::read(&path).unwrap(), text);
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
        w.run("DEL", &conf).assert_ok();
    }
}

#[test]
fn del_after_the_netns_is_deleted_succeeds_and_drops_the_backup() {
    if !privileged("del_after_the_netns_is_deleted_succeeds_and_drops_the_backup") {
        return;
    }
    let w = World::new();
    let conf = w.conf(
        CniVersion::V1_1_0,
        json!({"sysctl": {"net.core.somaxconn": "1234"}, "mtu": 1300}),
    );
    w.run("ADD", &conf).assert_ok();
    assert_eq!(w.backups().len(), 1);
    cni::testing::sh(&["ip", "netns", "del", &w.ctr.name]);
    w.run("DEL", &conf).assert_ok();
    assert!(w.backups().is_empty());
    w.run("DEL", &conf).assert_ok();
}

#[test]
fn del_without_cni_netns_drops_the_backup() {
    if !privileged("del_without_cni_netns_drops_the_backup") {
        return;
    }
    let w = World::new();
    let conf = w.conf(CniVersion::V1_1_0, json!({"mtu": 1300}));
    w.run("ADD", &conf).assert_ok();
    let mut inv = w.invocation("DEL");
    inv.netns = String::new();
    inv.run(std::path::Path::new(PLUGIN), &conf).assert_ok();
    assert!(w.backups().is_empty());
}

#[test]
fn del_after_the_link_is_gone_still_restores_netns_sysctls() {
    if !privileged("del_after_the_link_is_gone_still_restores_netns_sysctls") {
        return;
    }
    let w = World::new();
    let somax0 = w.sysctl("net/core/somaxconn");
    let conf = w.conf(
        CniVersion::V1_1_0,
        json!({"sysctl": {"net.core.somaxconn": "1234", "net.ipv4.conf.IFNAME.arp_filter": "1"}, "mtu": 1300}),
    );
    w.run("ADD", &conf).assert_ok();
    w.ctr.exec(&["ip", "link", "del", "eth0"]);
    w.run("DEL", &conf).assert_ok();
    assert_eq!(w.sysctl("net/core/somaxconn"), somax0);
    assert!(w.backups().is_empty());
}

#[test]
fn del_reports_a_failed_restore_and_keeps_only_that_value() {
    if !privileged("del_reports_a_failed_restore_and_keeps_only_that_value") {
        return;
    }
    let w = World::new();
    let conf = w.conf(
        CniVersion::V1_1_0,
        json!({"sysctl": {"net.core.somaxconn": "1234", "net.ipv4.conf.IFNAME.arp_filter": "1"}, "mtu": 1300}),
    );
    w.run("ADD", &conf).assert_ok();
    let path = w.data.0.join(&w.backups()[0]);
    let tampered = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"value\": \"0\"", "\"value\": \"abc\"");
    std::fs::write(&path, tampered).unwrap();

    let run = w.run("DEL", &conf);
    assert_fails(&run, 999, "writing sysctl net.ipv4.conf.IFNAME.arp_filter");
    // Everything else was restored; only the failed value stays backed up.
    assert_eq!(w.sysctl("net/core/somaxconn"), "4096");
    assert_eq!(w.link().mtu, 1500);
    let left: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(left["sysctls"].as_array().unwrap().len(), 1);
    assert!(left.get("link").is_none(), "{left}");

    let fixed = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"abc\"", "\"0\"");
    std::fs::write(&path, fixed).unwrap();
    w.run("DEL", &conf).assert_ok();
    assert_eq!(w.sysctl("net/ipv4/conf/eth0/arp_filter"), "0");
    assert!(w.backups().is_empty());
}

#[test]
fn a_second_add_keeps_the_first_originals() {
    if !privileged("a_second_add_keeps_the_first_originals") {
        return;
    }
    let w = World::new();
    w.run("ADD", &w.conf(CniVersion::V1_1_0, json!({"mtu": 1300})))
        .assert_ok();
    let conf = w.conf(CniVersion::V1_1_0, json!({"mtu": 1200, "promisc": true}));
    w.run("ADD", &conf).assert_ok();
    assert_eq!(w.link().mtu, 1200);
    w.run("DEL", &conf).assert_ok();
    let l = w.link();
    assert_eq!((l.mtu, l.promisc), (1500, false));
}

#[test]
fn add_fails_cleanly_without_the_link_or_prev_result() {
    if !privileged("add_fails_cleanly_without_the_link_or_prev_result") {
        return;
    }
    let w = World::new();
    let conf = w.conf(CniVersion::V1_1_0, json!({"mtu": 1300}));
    let mut inv = w.invocation("ADD");
    inv.ifname = "eth9".into();
    let run = inv.run(std::path::Path::new(PLUGIN), &conf);
    assert_fails(&run, 999, "link \"eth9\" not found");
    assert!(w.backups().is_empty());

    let conf = w.conf(CniVersion::V1_1_0, json!({"mtu": 1300, "prevResult": null}));
    assert_fails(&w.run("ADD", &conf), 7, "prevResult");
    let conf = w.conf(CniVersion::V1_1_0, json!({"mac": "zz"}));
    assert_fails(&w.run("ADD", &conf), 7, "mac");
    let conf = w.conf(
        CniVersion::V1_1_0,
        json!({"sysctl": {"kernel.hostname": "x"}}),
    );
    assert_fails(&w.run("ADD", &conf), 7, "kernel.hostname");
    assert_eq!(w.link().mtu, 1500);
}

#[test]
fn allowlist_file_and_fail_closed_mode() {
    if !privileged("allowlist_file_and_fail_closed_mode") {
        return;
    }
    let w = World::new();
    let list = temp_dir("al");
    let list_path = list.path().join("allowlist.conf");
    std::fs::write(&list_path, "^net\\.core\\.somaxconn$\n").unwrap();
    let with_env = |command: &str, conf: &str, file: &std::path::Path, required: bool| {
        let mut inv = w.invocation(command);
        inv.extra_env
            .insert("TUNING_ALLOWLIST_FILE".into(), file.display().to_string());
        if required {
            inv.extra_env
                .insert("TUNING_ALLOWLIST_REQUIRED".into(), "1".into());
        }
        inv.run(std::path::Path::new(PLUGIN), conf)
    };
    let denied = w.conf(
        CniVersion::V1_1_0,
        json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1"}}),
    );
    assert_fails(
        &with_env("ADD", &denied, &list_path, false),
        7,
        "is not allowed",
    );
    assert_eq!(w.sysctl("net/ipv4/conf/eth0/arp_filter"), "0");
    let allowed = w.conf(
        CniVersion::V1_1_0,
        json!({"sysctl": {"net.core.somaxconn": "999"}}),
    );
    with_env("ADD", &allowed, &list_path, false).assert_ok();
    assert_eq!(w.sysctl("net/core/somaxconn"), "999");
    with_env("DEL", &allowed, &list_path, false).assert_ok();

    let absent = list.path().join("absent.conf");
    // Missing file: open by default, closed when the host requires it...
    with_env("ADD", &allowed, &absent, false).assert_ok();
    with_env("DEL", &allowed, &absent, false).assert_ok();
    assert_fails(
        &with_env("ADD", &allowed, &absent, true),
        7,
        "required but missing",
    );
    // ...or when the network config does.
    let required = w.conf(
        CniVersion::V1_1_0,
        json!({"sysctl": {"net.core.somaxconn": "999"}, "sysctlAllowlist": {"required": true}}),
    );
    assert_fails(
        &with_env("ADD", &required, &absent, false),
        7,
        "required but missing",
    );
    assert_eq!(w.sysctl("net/core/somaxconn"), "4096");
}

#[test]
fn gc_removes_backups_of_stale_attachments_of_this_network_only() {
    if !privileged("gc_removes_backups_of_stale_attachments_of_this_network_only") {
        return;
    }
    let w = World::new();
    let add = |network: &str, container: &str, sysctl: &str| {
        let mut conf: Value =
            serde_json::from_str(&w.conf(CniVersion::V1_1_0, json!({"sysctl": {sysctl: "1"}})))
                .unwrap();
        conf["name"] = network.into();
        let mut inv = w.invocation("ADD");
        inv.container_id = container.into();
        inv.run(std::path::Path::new(PLUGIN), &conf.to_string())
            .assert_ok();
    };
    add("tunnet", "keep", "net.core.somaxconn");
    add("tunnet", "stale", "net.ipv4.conf.IFNAME.arp_filter");
    add("othernet", "other", "net.ipv4.conf.IFNAME.arp_ignore");
    std::fs::write(w.data.0.join("stale_eth0.json"), r#"{"mtu": 1500}"#).unwrap();
    assert_eq!(w.backups().len(), 4);

    let gc = json!({
        "cniVersion": "1.1.0", "name": "tunnet", "type": "tuning", "dataDir": w.data_dir(),
        "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]
    })
    .to_string();
    w.invocation("GC")
        .run(std::path::Path::new(PLUGIN), &gc)
        .assert_ok();
    assert_eq!(
        w.backups(),
        [
            "othernet+other+eth0.json",
            "stale_eth0.json",
            "tunnet+keep+eth0.json"
        ]
    );
    let status = json!({"cniVersion": "1.1.0", "name": "tunnet", "type": "tuning"}).to_string();
    w.invocation("STATUS")
        .run(std::path::Path::new(PLUGIN), &status)
        .assert_ok();
}
