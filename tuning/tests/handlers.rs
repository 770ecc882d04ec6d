//! Unprivileged, in-process tests of the handlers through `cni::skel::run_with`:
//! what must be rejected before any kernel access (code 7), and the verbs that
//! only touch the data dir (DEL without a backup, GC, STATUS).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use serde_json::{json, Value};
use tuning::allowlist::AllowlistSource;
use tuning::backup::{self, Backup};

fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tuning-handlers-{tag}-"))
        .tempdir()
        .unwrap()
}

fn plugin(dir: &std::path::Path) -> tuning::Plugin {
    tuning::Plugin {
        allowlist: AllowlistSource {
            path: dir.join("absent-allowlist.conf"),
            required: false,
        },
    }
}

fn run(p: &tuning::Plugin, command: &str, netns: &str, stdin: &Value) -> (i32, Value) {
    let env: HashMap<String, String> = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "ctr1"),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cni::skel::run_with(p, &env, stdin.to_string().as_bytes(), &mut out, &mut err);
    let v = if out.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&out).unwrap()
    };
    (code, v)
}

fn conf(dir: &std::path::Path, fields: Value) -> Value {
    let mut c = json!({
        "cniVersion": "1.1.0", "name": "net", "type": "tuning",
        "dataDir": dir.display().to_string(),
        "prevResult": {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}],
                       "ips": [{"address": "10.0.0.2/24", "interface": 0}]}
    });
    for (k, v) in fields.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[test]
fn invalid_configs_are_rejected_with_code_7_before_touching_the_netns() {
    let tmp = temp_dir("invalid");
    let dir = tmp.path().to_path_buf();
    let p = plugin(&dir);
    // The netns does not exist: reaching it would be a different error.
    for fields in [
        json!({"mac": "nope"}),
        json!({"mtu": -5}),
        json!({"sysctl": {"kernel.hostname": "x"}}),
        json!({"sysctl": {"net/../../kernel/hostname": "x"}}),
        json!({"dataDir": "relative"}),
        json!({"args": {"cni": {"txQLen": "long"}}}),
        json!({"prevResult": null}),
    ] {
        let (code, v) = run(
            &p,
            "ADD",
            "/run/netns/does-not-exist",
            &conf(&dir, fields.clone()),
        );
        assert_eq!(code, 1, "{fields}");
        assert_eq!(v["code"], 7, "{fields}: {v}");
    }
    // Duplicate keys survive only in the raw bytes, so build them by hand.
    let raw = r#"{"cniVersion":"1.1.0","name":"net","type":"tuning","sysctl":{"net.core.somaxconn":"1","net.core.somaxconn":"2"}}"#;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let env: HashMap<String, String> = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "ctr1"),
        ("CNI_NETNS", "/run/netns/does-not-exist"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        cni::skel::run_with(&p, &env, raw.as_bytes(), &mut out, &mut err),
        1
    );
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["code"], 7);
    assert!(v["msg"].as_str().unwrap().contains("duplicated"), "{v}");
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
}

#[test]
fn del_without_a_backup_succeeds_twice_even_with_a_bad_config() {
    let tmp = temp_dir("del");
    let dir = tmp.path().to_path_buf();
    let p = plugin(&dir);
    let c = conf(&dir, json!({"mac": "nope", "prevResult": null}));
    for _ in 0..2 {
        let (code, v) = run(&p, "DEL", "/run/netns/does-not-exist", &c);
        assert_eq!((code, v), (0, Value::Null));
    }
}

#[test]
fn del_with_the_netns_gone_drops_the_backup() {
    let tmp = temp_dir("gone");
    let dir = tmp.path().to_path_buf();
    let p = plugin(&dir);
    let owner = cni::args::Owner::new("net", "ctr1", "eth0");
    let mut b = Backup::new(&owner, None);
    b.link.mtu = Some(1500);
    backup::store(&dir, &b).unwrap();
    let (code, _) = run(
        &p,
        "DEL",
        "/run/netns/does-not-exist",
        &conf(&dir, json!({})),
    );
    assert_eq!(code, 0);
    assert_eq!(backup::load(&dir, &owner).unwrap(), None);
}

#[test]
fn gc_keeps_valid_and_foreign_backups_and_status_succeeds() {
    let tmp = temp_dir("gc");
    let dir = tmp.path().to_path_buf();
    let p = plugin(&dir);
    for (net, ctr) in [("net", "keep"), ("net", "stale"), ("other", "stale")] {
        let mut b = Backup::new(&cni::args::Owner::new(net, ctr, "eth0"), None);
        b.link.mtu = Some(1500);
        backup::store(&dir, &b).unwrap();
    }
    std::fs::write(dir.join("stale_eth0.json"), "{}").unwrap();
    let gc = json!({
        "cniVersion": "1.1.0", "name": "net", "type": "tuning",
        "dataDir": dir.display().to_string(),
        "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]
    });
    assert_eq!(run(&p, "GC", "", &gc).0, 0);
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "net+keep+eth0.json",
            "other+stale+eth0.json",
            "stale_eth0.json"
        ]
    );
    // GC of a data dir that does not exist is a no-op.
    let mut missing = gc.clone();
    missing["dataDir"] = dir.join("nope").display().to_string().into();
    assert_eq!(run(&p, "GC", "", &missing).0, 0);
    assert_eq!(run(&p, "STATUS", "", &gc).0, 0);
}

/// Sets a file's modification time `ago` into the past.
fn age(path: &std::path::Path, ago: std::time::Duration) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - ago).unwrap();
}

#[test]
fn gc_removes_abandoned_temp_files_of_this_network_only() {
    let tmp = temp_dir("gctmp");
    let dir = tmp.path().to_path_buf();
    let p = plugin(&dir);
    // A pid that cannot exist (above any pid_max) and one that does (init;
    // not ours: `store` below writes through `.tmp<our pid>`).
    let (dead, alive) = (999_999_999u32, 1u32);
    let min = std::time::Duration::from_secs(60);
    let cases: [(&str, u32, std::time::Duration); 8] = [
        // writer gone: removed at once
        ("net+ctr1+eth0.json", dead, std::time::Duration::ZERO),
        // writer alive but older than a minute: removed
        ("net+gone+eth0.json", alive, min * 2),
        // writer alive and fresh: an ADD may be writing it, kept
        ("net+busy+eth0.json", alive, std::time::Duration::ZERO),
        // another network's: kept
        ("other+ctr1+eth0.json", dead, min * 2),
        // a network whose name only starts like ours: kept
        ("network+ctr1+eth0.json", dead, min * 2),
        // not a temp file of ours (no pid): kept
        ("net+x+eth0.json", 0, min * 2),
        // hashed name with our network inside: removed
        ("sha256-aa.json", dead, min * 2),
        // hashed name, empty (crash right after create): unknown owner, kept
        ("sha256-bb.json", dead, min * 2),
    ];
    for (target, pid, ago) in cases {
        let name = if pid == 0 {
            format!("{target}.tmpX")
        } else {
            format!("{target}.tmp{pid}")
        };
        let path = dir.join(&name);
        let content = if target == "sha256-aa.json" {
            let b = Backup::new(&cni::args::Owner::new("net", "long", "eth0"), None);
            backup::encode(&b)
        } else {
            String::new()
        };
        std::fs::write(&path, content).unwrap();
        age(&path, ago);
    }
    // A live backup of a valid attachment is untouched.
    let mut b = Backup::new(&cni::args::Owner::new("net", "busy", "eth0"), None);
    b.link.mtu = Some(1500);
    backup::store(&dir, &b).unwrap();
    let gc = json!({
        "cniVersion": "1.1.0", "name": "net", "type": "tuning",
        "dataDir": dir.display().to_string(),
        "cni.dev/valid-attachments": [{"containerID": "busy", "ifname": "eth0"},
                                      {"containerID": "ctr1", "ifname": "eth0"}]
    });
    assert_eq!(run(&p, "GC", "", &gc), (0, Value::Null));
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "net+busy+eth0.json".to_string(),
            format!("net+busy+eth0.json.tmp{alive}"),
            "net+x+eth0.json.tmpX".to_string(),
            format!("network+ctr1+eth0.json.tmp{dead}"),
            format!("other+ctr1+eth0.json.tmp{dead}"),
            format!("sha256-bb.json.tmp{dead}"),
        ]
    );
}

#[test]
fn del_reports_a_corrupt_backup_once_and_then_succeeds() {
    let tmp = temp_dir("corrupt");
    let dir = tmp.path().to_path_buf();
    let p = plugin(&dir);
    let owner = cni::args::Owner::new("net", "ctr1", "eth0");
    std::fs::write(backup::path_for(&dir, &owner), "{ not json").unwrap();
    let c = conf(&dir, json!({}));
    let (code, v) = run(&p, "DEL", "/run/netns/does-not-exist", &c);
    assert_eq!(code, 1);
    assert!(
        v["msg"].as_str().unwrap().contains("cannot be restored"),
        "{v}"
    );
    assert_eq!(run(&p, "DEL", "/run/netns/does-not-exist", &c).0, 0);
}
