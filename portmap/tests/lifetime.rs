//! Privileged tests that portmap's state under `/run/cni-portmap` never
//! outlives the host netns it describes: GC removes the directory and lock
//! file of a namespace that is gone, and a directory whose recorded netns
//! identity (cookie) is not the current namespace's — what a new namespace
//! that reuses a dead one's inode finds — is emptied before it is read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use common::*;
use serde_json::json;

fn state_dir(ino: u64) -> PathBuf {
    PathBuf::from(format!("/run/cni-portmap/netns-{ino}"))
}

fn lock_file(ino: u64) -> PathBuf {
    PathBuf::from(format!("/run/cni-portmap/netns-{ino}.lock"))
}

/// A pod `id` with portmap ADDed for `host_port` (returns the pod and conf).
fn add_pod(w: &World, id: &str, host_port: u16) -> (Pod, serde_json::Value) {
    let p = w.pod(id);
    let conf = portmap_conf(
        "1.1.0",
        Some(&p.prev),
        json!([{"hostPort": host_port, "containerPort": 80}]),
    );
    w.portmap("ADD", &p.id, &p.ns.path().display().to_string(), &conf)
        .assert_ok();
    (p, conf)
}

#[test]
fn gc_removes_the_state_of_a_deleted_netns() {
    if !cni::testing::privileged("gc_removes_the_state_of_a_deleted_netns") {
        return;
    }
    let gone_ino = {
        let w = World::new();
        let _p = add_pod(&w, "life1", 7300);
        let ino = std::fs::metadata(w.host.path()).unwrap().ino();
        assert!(index_path(&w, "life1").exists(), "ADD wrote no index");
        assert!(lock_file(ino).exists(), "ADD took no lock file");
        ino
        // The world (host netns, pod) is deleted here without a DEL.
    };
    let w2 = World::new();
    let gc = json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap",
        "cni.dev/valid-attachments": []});
    w2.portmap("GC", "", "", &gc).assert_ok();
    let w2_ino = std::fs::metadata(w2.host.path()).unwrap().ino();
    let live = portmap::netns_state::live_netns_inodes();
    if gone_ino == w2_ino {
        // The new host netns reused the inode: its GC adopted the directory
        // and must have dropped the dead namespace's index.
        let left: Vec<_> = std::fs::read_dir(state_dir(gone_ino))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "identity")
            .collect();
        assert!(left.is_empty(), "inherited state: {left:?}");
    } else if live.contains(&gone_ino) {
        println!("inode {gone_ino} already reused by another namespace; kept, as it must be");
    } else {
        assert!(
            !state_dir(gone_ino).exists(),
            "state dir of a deleted netns kept"
        );
        assert!(
            !lock_file(gone_ino).exists(),
            "lock file of a deleted netns kept"
        );
    }
}

#[test]
fn a_state_dir_of_another_netns_with_the_same_inode_is_not_trusted() {
    if !cni::testing::privileged("a_state_dir_of_another_netns_with_the_same_inode_is_not_trusted")
    {
        return;
    }
    let Some(_) = portmap::netns_state::netns_cookie() else {
        println!("skipped: this kernel has no SO_NETNS_COOKIE (Linux < 5.14)");
        assert!(std::env::var_os("CI").is_none(), "CI kernels must have it");
        return;
    };
    let w = World::new();
    let ino = std::fs::metadata(w.host.path()).unwrap().ino();
    let dir = state_dir(ino);
    // What a dead namespace with this inode would have left: its identity
    // and an index claiming attachment life2.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("identity"), "1").unwrap();
    let stale = index_path(&w, "life2");
    std::fs::write(&stale, br#"{"stale":true}"#).unwrap();
    let (p, conf) = add_pod(&w, "life3", 7301);
    assert!(!stale.exists(), "a stale index of another netns was kept");
    assert!(index_path(&w, "life3").exists(), "own index missing");
    let identity = std::fs::read_to_string(dir.join("identity")).unwrap();
    assert_ne!(identity.trim(), "1", "identity not rewritten");
    w.portmap("DEL", &p.id, &p.ns.path().display().to_string(), &conf)
        .assert_ok();
    assert!(!index_path(&w, "life3").exists(), "DEL left its index");
}
