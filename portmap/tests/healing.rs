//! Healing after a firewall flush, against the real kernel with real
//! traffic, each test in its own host netns: `nft flush ruleset` then one
//! STATUS brings every live hostPort back (wildcard, hostIP, a pod with
//! conditions) and not the ones DEL removed; `nft delete table` then the
//! next ADD; a flush of one map only; flushes racing ADDs; GC forgets stale
//! attachments so that healing does not resurrect them; and STATUS answers
//! code 50 with the reason when nf_tables is not usable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use serde_json::json;

fn status(w: &World) -> cni::testing::PluginRun {
    let conf = json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap"});
    w.portmap("STATUS", "", "", &conf)
}

fn add(w: &World, pod: &Pod, mappings: serde_json::Value) -> serde_json::Value {
    let conf = portmap_conf("1.1.0", Some(&pod.prev), mappings);
    w.portmap("ADD", &pod.id, &pod.ns.path().display().to_string(), &conf)
        .assert_ok();
    conf
}

fn tcp(port: u16) -> serde_json::Value {
    json!([{"hostPort": port, "containerPort": 80, "protocol": "tcp"}])
}

fn answers(w: &World, port: u16) -> Option<String> {
    tcp_get(&w.ext.path(), addr(NODE4, port)).ok()
}

/// Pods A and B serving their names, mapped on tcp 8080 and 8090.
fn a_on_8080_b_on_8090() -> (World, [Pod; 2], [Servers; 2]) {
    let w = World::new();
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    let servers = [serve(&a.ns, "A", 80, 81), serve(&b.ns, "B", 80, 81)];
    add(&w, &a, tcp(8080));
    add(&w, &b, tcp(8090));
    (w, [a, b], servers)
}

#[test]
fn flush_ruleset_then_one_status_restores_every_live_hostport() {
    if !cni::testing::privileged("flush_ruleset_then_one_status_restores_every_live_hostport") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    let c = w.pod("ctrC");
    let d = w.pod("ctrD");
    let _s = [
        serve(&a.ns, "A", 80, 81),
        serve(&b.ns, "B", 80, 81),
        serve(&c.ns, "C", 80, 81),
        serve(&d.ns, "D", 80, 81),
    ];
    add(
        &w,
        &a,
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
               {"hostPort": 8081, "containerPort": 81, "protocol": "udp"}]),
    );
    add(
        &w,
        &b,
        json!([{"hostPort": 9090, "containerPort": 80, "hostIP": NODE4}]),
    );
    let mut cond = portmap_conf("1.1.0", Some(&c.prev), tcp(7070));
    cond["conditionsV4"] = json!(["ip", "saddr", EXT4]);
    w.portmap("ADD", &c.id, &c.ns.path().display().to_string(), &cond)
        .assert_ok();
    let conf_d = add(&w, &d, tcp(6060));
    w.portmap("DEL", &d.id, &d.ns.path().display().to_string(), &conf_d)
        .assert_ok();
    status(&w).assert_ok();
    let before = [answers(&w, 8080), answers(&w, 9090), answers(&w, 7070)];
    assert_eq!(
        before,
        [Some("A".into()), Some("B".into()), Some("C".into())]
    );

    w.host.exec(&["nft", "flush", "ruleset"]);
    assert_eq!(answers(&w, 8080), None, "the flush removed the mapping");

    status(&w).assert_ok();
    assert_eq!(answers(&w, 8080), Some("A".into()));
    assert_eq!(
        udp_get(&w.ext.path(), addr(NODE4, 8081), None),
        Ok("A".into())
    );
    assert_eq!(answers(&w, 9090), Some("B".into()));
    assert_eq!(answers(&w, 7070), Some("C".into()));
    assert_eq!(
        tcp_get(&b.ns.path(), addr(NODE4, 7070)).ok(),
        None,
        "C's conditions came back too"
    );
    assert_eq!(answers(&w, 6060), None, "DEL'd attachments stay gone");
    // CHECK agrees that everything is back.
    let check = portmap_conf(
        "1.1.0",
        Some(&a.prev),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
               {"hostPort": 8081, "containerPort": 81, "protocol": "udp"}]),
    );
    w.portmap("CHECK", &a.id, &a.ns.path().display().to_string(), &check)
        .assert_ok();

    // `nft delete table`, then the next ADD (of another pod) heals too.
    w.host
        .exec(&["nft", "delete", "table", "inet", "cni_portmap"]);
    assert_eq!(answers(&w, 8080), None);
    add(&w, &d, tcp(6061));
    assert_eq!(answers(&w, 8080), Some("A".into()));
    assert_eq!(answers(&w, 9090), Some("B".into()));
    assert_eq!(answers(&w, 6061), Some("D".into()));
}

#[test]
fn a_flush_of_one_map_is_noticed_and_healed() {
    if !cni::testing::privileged("a_flush_of_one_map_is_noticed_and_healed") {
        return;
    }
    let (w, _pods, _servers) = a_on_8080_b_on_8090();
    for map in ["ports_v4", "ports_v4_port"] {
        w.host
            .exec(&["nft", "flush", "map", "inet", "cni_portmap", map]);
        assert_eq!(answers(&w, 8080), None, "after flushing {map}");
        status(&w).assert_ok();
        assert_eq!(answers(&w, 8080), Some("A".into()), "{map} healed");
        assert_eq!(answers(&w, 8090), Some("B".into()), "{map} healed");
    }
    // A masquerade set: localhost needs masq_local_v4.
    w.host.exec(&[
        "nft",
        "flush",
        "set",
        "inet",
        "cni_portmap",
        "masq_local_v4",
    ]);
    status(&w).assert_ok();
    assert_eq!(
        tcp_get(&w.host.path(), addr("127.0.0.1", 8080)),
        Ok("A".into())
    );
    assert!(w.nft_ruleset().contains("cni-portmap layout sentinel"));
}

#[test]
fn flushes_racing_adds_are_healed_by_the_next_status() {
    if !cni::testing::privileged("flushes_racing_adds_are_healed_by_the_next_status") {
        return;
    }
    let w = World::new();
    let pods: Vec<Pod> = (0..6).map(|i| w.pod(&format!("race{i}"))).collect();
    let _s: Vec<Servers> = pods.iter().map(|p| serve(&p.ns, &p.id, 80, 81)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (stop, host) = (stop.clone(), w.host.name.clone());
        std::thread::spawn(move || {
            let mut flushes = 0;
            while !stop.load(Ordering::Relaxed) {
                cni::testing::sh(&["ip", "netns", "exec", &host, "nft", "flush", "ruleset"]);
                flushes += 1;
                // Spaced so that every ADD can win against some flush
                // (each flush lands at a different point of an ADD).
                std::thread::sleep(std::time::Duration::from_millis(7 * (flushes % 5 + 1)));
            }
            flushes
        })
    };
    for (i, p) in pods.iter().enumerate() {
        // An ADD may lose to a flush that lands between its checks: then
        // it reports an error or its elements vanish; either way the next
        // verb heals. It must never leave a broken layout behind.
        let conf = portmap_conf("1.1.0", Some(&p.prev), tcp(7000 + i as u16));
        let run = w.portmap("ADD", &p.id, &p.ns.path().display().to_string(), &conf);
        if run.code != 0 {
            eprintln!("ADD {i} lost to a flush: {}", run.stdout);
        }
        // The runtime retries a failed ADD; so does this test.
        let mut code = run.code;
        for _ in 0..5 {
            if code == 0 {
                break;
            }
            code = w
                .portmap("ADD", &p.id, &p.ns.path().display().to_string(), &conf)
                .code;
        }
        assert_eq!(code, 0, "ADD {i} kept losing to flushes");
    }
    stop.store(true, Ordering::Relaxed);
    let flushes = flusher.join().unwrap();
    assert!(flushes > 0);
    status(&w).assert_ok();
    for (i, p) in pods.iter().enumerate() {
        assert_eq!(
            answers(&w, 7000 + i as u16),
            Some(p.id.clone()),
            "pod {i} after {flushes} flushes"
        );
    }
}

#[test]
fn gc_forgets_stale_attachments_so_healing_does_not_resurrect_them() {
    if !cni::testing::privileged("gc_forgets_stale_attachments_so_healing_does_not_resurrect_them")
    {
        return;
    }
    let (w, _pods, _servers) = a_on_8080_b_on_8090();
    w.host.exec(&["nft", "flush", "ruleset"]);
    let gc = json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap",
        "cni.dev/valid-attachments": [{"containerID": "ctrA", "ifname": "eth0"}]});
    w.portmap("GC", "", "", &gc).assert_ok();
    assert!(!index_path(&w, "ctrB").exists(), "GC removed B's state");
    assert!(index_path(&w, "ctrA").exists());
    status(&w).assert_ok();
    assert_eq!(answers(&w, 8080), Some("A".into()), "GC healed A");
    assert_eq!(answers(&w, 8090), None, "B stays gone");
}

#[test]
fn status_answers_50_with_the_reason_when_nftables_is_not_usable() {
    if !cni::testing::privileged("status_answers_50_with_the_reason_when_nftables_is_not_usable") {
        return;
    }
    let w = World::new();
    status(&w).assert_ok();
    // In a user namespace without CAP_NET_ADMIN over the host netns the
    // kernel refuses the dry-run batch.
    let bin = portmap_bin().display().to_string();
    let (ok, stdout, _) = w.host.try_exec(&[
        "unshare",
        "-U",
        "env",
        "CNI_COMMAND=STATUS",
        "sh",
        "-c",
        &format!(
            "echo '{{\"cniVersion\":\"1.1.0\",\"name\":\"pmnet\",\"type\":\"portmap\"}}' | {bin}"
        ),
    ]);
    assert!(!ok);
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["code"], 50, "{stdout}");
    assert!(
        out["msg"]
            .as_str()
            .unwrap()
            .contains("nftables is not usable: the kernel refused"),
        "{stdout}"
    );
    // Nothing of the probe's throwaway table was committed.
    assert!(!w.nft_ruleset().contains("cni_portmap_probe"));
}
