//! Privileged end-to-end tests: real pods (Debian ptp + host-local) behind a
//! throwaway "host" netns, our portmap binary run inside it, and real TCP/UDP
//! traffic from a remote netns, another pod, the host (node IP and
//! 127.0.0.1) and the pod itself (hairpin); plus conflicts, conntrack after
//! pod replacement, DEL without config, CHECK content and GC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

fn tcp_udp(hp_tcp: u16, hp_udp: u16) -> serde_json::Value {
    json!([
        {"hostPort": hp_tcp, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": hp_udp, "containerPort": 81, "protocol": "udp"}
    ])
}

#[test]
fn tcp_and_udp_reach_the_pod_from_everywhere_and_stop_after_del() {
    if !cni::testing::privileged("tcp_and_udp_reach_the_pod_from_everywhere_and_stop_after_del") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    let _srv = serve(&a.ns, "A", 80, 81);
    let conf = portmap_conf("1.0.0", Some(&a.prev), tcp_udp(8080, 8081));
    let netns = a.ns.path().display().to_string();
    let out = w.portmap("ADD", &a.id, &netns, &conf);
    out.assert_ok();
    assert_eq!(
        out.json()["ips"],
        a.prev["ips"],
        "prevResult passes through"
    );

    let ext = w.ext.path();
    let host = w.host.path();
    for (who, ns, ip) in [
        ("remote", ext.clone(), NODE4),
        ("other pod", b.ns.path(), NODE4),
        ("host by node IP", host.clone(), NODE4),
        ("host by 127.0.0.1", host.clone(), "127.0.0.1"),
        ("hairpin", a.ns.path(), NODE4),
    ] {
        assert_eq!(tcp_get(&ns, addr(ip, 8080)), Ok("A".into()), "tcp {who}");
        assert_eq!(
            udp_get(&ns, addr(ip, 8081), None),
            Ok("A".into()),
            "udp {who}"
        );
    }
    // route_localnet went only on the host-side veth of the pod.
    let link = host_exec(&w, &["ip", "-o", "route", "get", &a.ip4()]);
    let dev = link
        .split_whitespace()
        .skip_while(|t| *t != "dev")
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(
        host_exec(
            &w,
            &[
                "sysctl",
                "-n",
                &format!("net.ipv4.conf.{dev}.route_localnet")
            ]
        )
        .trim(),
        "1"
    );
    assert_eq!(
        host_exec(&w, &["sysctl", "-n", "net.ipv4.conf.up0.route_localnet"]).trim(),
        "0"
    );

    w.portmap("CHECK", &a.id, &netns, &conf).assert_ok();
    w.portmap("DEL", &a.id, &netns, &conf).assert_ok();
    assert!(tcp_get(&ext, addr(NODE4, 8080)).is_err(), "tcp after DEL");
    assert!(
        udp_get(&ext, addr(NODE4, 8081), None).is_err(),
        "udp after DEL"
    );
    assert!(!w.nft_ruleset().contains("ctrA"), "{}", w.nft_ruleset());
    w.portmap("DEL", &a.id, &netns, &conf).assert_ok();
}

#[test]
fn ipv6_hostports_work_from_remote_host_other_pod_and_hairpin() {
    if !cni::testing::privileged("ipv6_hostports_work_from_remote_host_other_pod_and_hairpin") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    let _srv = serve(&a.ns, "A6", 80, 81);
    let conf = portmap_conf("1.1.0", Some(&a.prev), tcp_udp(8080, 8081));
    w.portmap("ADD", &a.id, &a.ns.path().display().to_string(), &conf)
        .assert_ok();
    for (who, ns) in [
        ("remote", w.ext.path()),
        ("other pod", b.ns.path()),
        ("host", w.host.path()),
        ("hairpin", a.ns.path()),
    ] {
        assert_eq!(
            tcp_get(&ns, addr(NODE6, 8080)),
            Ok("A6".into()),
            "tcp {who}"
        );
        assert_eq!(
            udp_get(&ns, addr(NODE6, 8081), None),
            Ok("A6".into()),
            "udp {who}"
        );
    }
    // ::1 cannot be forwarded (no route_localnet for IPv6): documented.
    assert!(tcp_get(&w.host.path(), addr("::1", 8080)).is_err());
}

#[test]
fn host_ip_mapping_answers_only_on_that_address() {
    if !cni::testing::privileged("host_ip_mapping_answers_only_on_that_address") {
        return;
    }
    let w = World::new();
    w.host
        .exec(&["ip", "addr", "add", "198.18.0.3/24", "dev", "up0"]);
    let a = w.pod("ctrA");
    let _srv = serve(&a.ns, "A", 80, 81);
    let conf = portmap_conf(
        "1.0.0",
        Some(&a.prev),
        json!([{"hostPort": 8090, "containerPort": 80, "protocol": "tcp", "hostIP": NODE4}]),
    );
    w.portmap("ADD", &a.id, &a.ns.path().display().to_string(), &conf)
        .assert_ok();
    assert_eq!(tcp_get(&w.ext.path(), addr(NODE4, 8090)), Ok("A".into()));
    assert!(tcp_get(&w.ext.path(), addr("198.18.0.3", 8090)).is_err());
    assert!(tcp_get(&w.ext.path(), addr(NODE6, 8090)).is_err());
}

#[test]
fn udp_keeps_working_when_the_pod_is_replaced() {
    if !cni::testing::privileged("udp_keeps_working_when_the_pod_is_replaced") {
        return;
    }
    let w = World::new();
    let src = Some(addr(EXT4, 40000));
    let mappings = json!([{"hostPort": 9000, "containerPort": 81, "protocol": "udp"}]);
    let a = w.pod("ctrA");
    {
        let _srv = serve(&a.ns, "A", 80, 81);
        let conf = portmap_conf("1.0.0", Some(&a.prev), mappings.clone());
        w.portmap("ADD", &a.id, &a.ns.path().display().to_string(), &conf)
            .assert_ok();
        assert_eq!(
            udp_get(&w.ext.path(), addr(NODE4, 9000), src),
            Ok("A".into())
        );
        w.portmap("DEL", &a.id, &a.ns.path().display().to_string(), &conf)
            .assert_ok();
        w.remove_pod(&a);
    }
    let b = w.pod("ctrB");
    assert_ne!(a.ip4(), b.ip4());
    let _srv = serve(&b.ns, "B", 80, 81);
    let conf = portmap_conf("1.0.0", Some(&b.prev), mappings);
    w.portmap("ADD", &b.id, &b.ns.path().display().to_string(), &conf)
        .assert_ok();
    assert_eq!(
        udp_get(&w.ext.path(), addr(NODE4, 9000), src),
        Ok("B".into())
    );
}

#[test]
fn a_hostport_owned_by_another_attachment_is_refused() {
    if !cni::testing::privileged("a_hostport_owned_by_another_attachment_is_refused") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    let _srv = serve(&a.ns, "A", 80, 81);
    let conf_a = portmap_conf("1.0.0", Some(&a.prev), tcp_udp(8080, 8081));
    let ns_a = a.ns.path().display().to_string();
    w.portmap("ADD", &a.id, &ns_a, &conf_a).assert_ok();
    let conf_b = portmap_conf(
        "1.0.0",
        Some(&b.prev),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
    );
    let out = w.portmap("ADD", &b.id, &b.ns.path().display().to_string(), &conf_b);
    assert_ne!(out.code, 0);
    let msg = out.json()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.contains("0.0.0.0:8080/tcp is already mapped by pmnet/ctrA/eth0"),
        "{msg}"
    );
    assert!(
        !w.nft_ruleset().contains("ctrB"),
        "a refused ADD leaves nothing"
    );
    assert_eq!(
        tcp_get(&w.ext.path(), addr(NODE4, 8080)),
        Ok("A".into()),
        "no hijack"
    );
    // Same port, other protocol: allowed.
    let conf_b_udp = portmap_conf(
        "1.0.0",
        Some(&b.prev),
        json!([{"hostPort": 8080, "containerPort": 81, "protocol": "udp"}]),
    );
    w.portmap(
        "ADD",
        &b.id,
        &b.ns.path().display().to_string(),
        &conf_b_udp,
    )
    .assert_ok();
    // Re-ADD by the same owner is idempotent, also with changed mappings.
    w.portmap("ADD", &a.id, &ns_a, &conf_a).assert_ok();
    w.portmap("CHECK", &a.id, &ns_a, &conf_a).assert_ok();
    let conf_a2 = portmap_conf(
        "1.0.0",
        Some(&a.prev),
        json!([{"hostPort": 8088, "containerPort": 80, "protocol": "tcp"}]),
    );
    w.portmap("ADD", &a.id, &ns_a, &conf_a2).assert_ok();
    w.portmap("CHECK", &a.id, &ns_a, &conf_a2).assert_ok();
    assert_eq!(tcp_get(&w.ext.path(), addr(NODE4, 8088)), Ok("A".into()));
    assert!(tcp_get(&w.ext.path(), addr(NODE4, 8080)).is_err());
}

#[test]
fn check_sees_a_deleted_element_and_del_needs_no_config() {
    if !cni::testing::privileged("check_sees_a_deleted_element_and_del_needs_no_config") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let ns_a = a.ns.path().display().to_string();
    let conf = portmap_conf("1.0.0", Some(&a.prev), tcp_udp(8080, 8081));
    w.portmap("ADD", &a.id, &ns_a, &conf).assert_ok();
    let element = |verb: &str, map: &str, elem: &str| {
        w.host
            .exec(&["nft", verb, "element", "inet", "cni_portmap", map, elem]);
    };
    element("delete", "ports_v4", "{ udp . 8081 }");
    let out = w.portmap("CHECK", &a.id, &ns_a, &conf);
    assert_ne!(out.code, 0);
    let msg = out.json()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.contains("missing map element ports_v4 udp . 8081"),
        "{msg}"
    );
    // A value changed by hand (same key, same owner) is named twice: the
    // wanted element missing, the installed one unexpected (CHECK reads
    // them over netlink, no `nft`).
    element("delete", "ports_v4_port", "{ tcp . 8080 }");
    let wrong = format!("{{ tcp . 8080 comment \"pmnet/{}/eth0\" : 99 }}", a.id);
    element("add", "ports_v4_port", &wrong);
    let out = w.portmap("CHECK", &a.id, &ns_a, &conf);
    let msg = out.json()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.contains("missing map element ports_v4_port tcp . 8080 : 80;")
            && msg.contains("unexpected element ports_v4_port tcp . 8080 : 99"),
        "{msg}"
    );
    // A rule changed by hand is a content difference too.
    let bare = json!({"cniVersion": "1.0.0", "name": "pmnet", "type": "portmap"});
    w.portmap("DEL", &a.id, "", &bare).assert_ok();
    w.portmap("DEL", &a.id, "", &bare).assert_ok();
    let rules = w.nft_ruleset();
    assert!(
        !rules.contains("ctrA") && !rules.contains(&a.ip4()),
        "{rules}"
    );
}

#[test]
fn gc_removes_only_stale_attachments_of_this_network() {
    if !cni::testing::privileged("gc_removes_only_stale_attachments_of_this_network") {
        return;
    }
    let w = World::new();
    let pods: Vec<Pod> = ["c1", "c2"].iter().map(|id| w.pod(id)).collect();
    for (i, p) in pods.iter().enumerate() {
        let conf = portmap_conf(
            "1.1.0",
            Some(&p.prev),
            json!([{"hostPort": 7000 + i, "containerPort": 80}]),
        );
        w.portmap("ADD", &p.id, &p.ns.path().display().to_string(), &conf)
            .assert_ok();
    }
    // Another network's attachment must survive GC of pmnet.
    let mut other = portmap_conf(
        "1.1.0",
        Some(&pods[0].prev),
        json!([{"hostPort": 7100, "containerPort": 80}]),
    );
    other["name"] = "othernet".into();
    w.portmap(
        "ADD",
        "c9",
        &pods[0].ns.path().display().to_string(),
        &other,
    )
    .assert_ok();
    let gc = json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap",
        "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]});
    w.portmap("GC", "", "", &gc).assert_ok();
    let rules = w.nft_ruleset();
    assert!(rules.contains("pmnet/c1/eth0"), "{rules}");
    assert!(!rules.contains("pmnet/c2/eth0"), "{rules}");
    assert!(rules.contains("othernet/c9/eth0"), "{rules}");
}

#[test]
fn every_version_adds_checks_and_deletes() {
    if !cni::testing::privileged("every_version_adds_checks_and_deletes") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let _srv = serve(&a.ns, "A", 80, 81);
    let ns_a = a.ns.path().display().to_string();
    for v in cni::CniVersion::ALL {
        let prev = a.prev_at(*v);
        let conf = portmap_conf(v.as_str(), Some(&prev), tcp_udp(8080, 8081));
        let out = w.portmap("ADD", &a.id, &ns_a, &conf);
        out.assert_ok();
        assert_eq!(out.json()["cniVersion"], v.as_str(), "{v}");
        assert_eq!(
            tcp_get(&w.ext.path(), addr(NODE4, 8080)),
            Ok("A".into()),
            "{v}"
        );
        if v.allows_check() {
            w.portmap("CHECK", &a.id, &ns_a, &conf).assert_ok();
        }
        w.portmap("DEL", &a.id, &ns_a, &conf).assert_ok();
        assert!(!w.nft_ruleset().contains("ctrA"), "{v}");
    }
}

#[test]
fn status_reports_whether_nftables_is_usable() {
    if !cni::testing::privileged("status_reports_whether_nftables_is_usable") {
        return;
    }
    let w = World::new();
    let conf = json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap"});
    w.portmap("STATUS", "", "", &conf).assert_ok();
    // No nft on PATH: nothing can run. Spawned from the world's host netns
    // all the same (`ip netns exec` is not on that PATH either): the
    // iptables backend's STATUS takes the netns lock, which creates that
    // netns's state directory under /run/cni-portmap.
    let mut inv = cni::testing::Invocation::new("STATUS");
    inv.extra_env.insert("PATH".into(), "/nonexistent".into());
    let in_world = |conf: &serde_json::Value| {
        cni::netns::run_in(&w.host.path(), || {
            inv.run(&portmap_bin(), &conf.to_string())
        })
        .unwrap()
    };
    let out = in_world(&conf);
    assert_eq!(out.json()["code"], 50, "{}", out.stdout);
    assert!(out.json()["msg"]
        .as_str()
        .unwrap()
        .contains("nftables is not usable"));
    // The iptables backend answers for its own tools.
    let ipt =
        json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap", "backend": "iptables"});
    w.portmap("STATUS", "", "", &ipt).assert_ok();
    let out = in_world(&ipt);
    assert_eq!(out.json()["code"], 50, "{}", out.stdout);
    assert!(out.json()["msg"]
        .as_str()
        .unwrap()
        .contains("iptables is not usable"));
}

#[test]
fn conditions_restrict_sources_and_del_removes_the_pod_chain() {
    if !cni::testing::privileged("conditions_restrict_sources_and_del_removes_the_pod_chain") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    let _srv_a = serve(&a.ns, "A", 80, 81);
    let _srv_b = serve(&b.ns, "B", 80, 81);
    let mut conf_a = portmap_conf("1.0.0", Some(&a.prev), tcp_udp(8080, 8081));
    conf_a["conditionsV4"] = json!(["ip", "saddr", EXT4]);
    let ns_a = a.ns.path().display().to_string();
    w.portmap("ADD", &a.id, &ns_a, &conf_a).assert_ok();
    // A pod without conditions next to it, on another port.
    let conf_b = portmap_conf(
        "1.0.0",
        Some(&b.prev),
        json!([{"hostPort": 9090, "containerPort": 80}]),
    );
    let ns_b = b.ns.path().display().to_string();
    w.portmap("ADD", &b.id, &ns_b, &conf_b).assert_ok();
    assert_eq!(tcp_get(&w.ext.path(), addr(NODE4, 8080)), Ok("A".into()));
    assert_eq!(
        udp_get(&w.ext.path(), addr(NODE4, 8081), None),
        Ok("A".into())
    );
    assert!(
        tcp_get(&b.ns.path(), addr(NODE4, 8080)).is_err(),
        "a source outside conditionsV4 is not forwarded"
    );
    assert_eq!(tcp_get(&w.ext.path(), addr(NODE4, 9090)), Ok("B".into()));
    assert_eq!(tcp_get(&a.ns.path(), addr(NODE4, 9090)), Ok("B".into()));
    // The conditional pod still claims its hostPort.
    let clash = portmap_conf(
        "1.0.0",
        Some(&b.prev),
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    let out = w.portmap("ADD", "ctrC", &ns_b, &clash);
    assert_ne!(out.code, 0, "{}", out.stdout);
    w.portmap("CHECK", &a.id, &ns_a, &conf_a).assert_ok();
    let chain = portmap::plan::chain_name(&cni::args::Owner::new("pmnet", "ctrA", "eth0"));
    assert!(w.nft_ruleset().contains(&chain));
    let bare = json!({"cniVersion": "1.0.0", "name": "pmnet", "type": "portmap"});
    w.portmap("DEL", &a.id, "", &bare).assert_ok();
    let rules = w.nft_ruleset();
    assert!(
        !rules.contains(&chain) && !rules.contains("ctrA"),
        "{rules}"
    );
    assert!(tcp_get(&w.ext.path(), addr(NODE4, 8080)).is_err());
    assert_eq!(tcp_get(&w.ext.path(), addr(NODE4, 9090)), Ok("B".into()));
}

#[test]
fn del_without_index_lists_and_a_stale_index_deletes_nothing_foreign() {
    if !cni::testing::privileged(
        "del_without_index_lists_and_a_stale_index_deletes_nothing_foreign",
    ) {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    let _srv = serve(&b.ns, "B", 80, 81);
    let bare = json!({"cniVersion": "1.0.0", "name": "pmnet", "type": "portmap"});
    let conf_a = portmap_conf("1.0.0", Some(&a.prev), tcp_udp(8080, 8081));
    let ns_a = a.ns.path().display().to_string();
    // No index (lost): DEL finds the elements by their owner comment.
    w.portmap("ADD", &a.id, &ns_a, &conf_a).assert_ok();
    let index = index_path(&w, &a.id);
    let saved = std::fs::read(&index).unwrap();
    std::fs::remove_file(&index).unwrap();
    w.portmap("DEL", &a.id, "", &bare).assert_ok();
    assert!(!w.nft_ruleset().contains("ctrA"), "{}", w.nft_ruleset());
    // A stale index of A naming keys that B now owns deletes none of them.
    let conf_b = portmap_conf("1.0.0", Some(&b.prev), tcp_udp(8080, 8081));
    w.portmap("ADD", &b.id, &b.ns.path().display().to_string(), &conf_b)
        .assert_ok();
    std::fs::write(&index, saved).unwrap();
    w.portmap("DEL", &a.id, "", &bare).assert_ok();
    assert!(!index.exists(), "DEL removes the index");
    assert_eq!(tcp_get(&w.ext.path(), addr(NODE4, 8080)), Ok("B".into()));
    assert_eq!(
        udp_get(&w.ext.path(), addr(NODE4, 8081), None),
        Ok("B".into())
    );
    w.portmap("CHECK", &b.id, &b.ns.path().display().to_string(), &conf_b)
        .assert_ok();
}

/// The conntrack cleanup runs after the plugin replied (in a detached
/// child) and still happens, in both families of a dual-stack pod (one dump
/// of the table for both): real entries from real datagrams are gone within
/// a second of DEL (the pod's DNAT binding) and of ADD (an entry a datagram
/// made while nothing was mapped, which would send the new mapping's traffic
/// from that source to the host for 30 s). ADD's cleanup spares what its
/// own mapping already forwarded: the child is held until the pod's first
/// datagrams went through, and their entries are still there after it.
#[test]
fn stale_udp_conntrack_goes_within_a_second_of_add_and_of_del() {
    if !cni::testing::privileged("stale_udp_conntrack_goes_within_a_second_of_add_and_of_del") {
        return;
    }
    let w = World::new();
    let (src4, src6) = (Some(addr(EXT4, 40002)), Some(addr(EXT6, 40002)));
    let a = w.pod("ctrA");
    let _srv = serve(&a.ns, "A", 80, 81);
    let conf = portmap_conf("1.0.0", Some(&a.prev), tcp_udp(8082, 9002));
    let netns = a.ns.path().display().to_string();
    let answers = || {
        (
            udp_get(&w.ext.path(), addr(NODE4, 9002), src4),
            udp_get(&w.ext.path(), addr(NODE6, 9002), src6),
        )
    };
    let (made, after) = add_holding_the_flush(&w, &a.id, &netns, &conf, 9002, || {
        assert_eq!(answers(), (Ok("A".into()), Ok("A".into())));
    });
    assert!(
        made.0 > 0 && made.1 > 0,
        "the pod's traffic made entries: {made:?}"
    );
    assert_eq!(
        after, made,
        "ADD's flush keeps the entries its own mapping made"
    );
    w.portmap("DEL", &a.id, &netns, &conf).assert_ok();
    assert_flushed_within_a_second(&w, 9002, "DEL");
    // Nothing mapped: the host answers port unreachable, conntrack keeps
    // the (unNATed) entries.
    let (r4, r6) = answers();
    assert!(r4.is_err() && r6.is_err(), "{r4:?} {r6:?}");
    let (v4, v6) = udp_entries(&w, 9002);
    assert!(
        v4 > 0 && v6 > 0,
        "the unmapped datagrams made entries: {v4}, {v6}"
    );
    w.portmap("ADD", &a.id, &netns, &conf).assert_ok();
    assert_flushed_within_a_second(&w, 9002, "ADD");
    assert_eq!(answers(), (Ok("A".into()), Ok("A".into())));
}

/// The flushes of verbs that end together share one dump (the netns's
/// flush queue): while the queue's lock is held, two DELs' flushes wait
/// with their requests queued and the pods' DNAT entries stay; once it is
/// released, one flusher takes both requests and both ports are clean
/// within a second, with nothing left in the queue.
#[test]
fn flushes_of_verbs_ending_together_wait_in_one_queue_and_all_happen() {
    if !cni::testing::privileged("flushes_of_verbs_ending_together_wait_in_one_queue") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let w = World::new();
    let src = Some(addr(EXT4, 40005));
    let pods: Vec<_> = [("ctrA", "A", 9005u16), ("ctrB", "B", 9006)]
        .into_iter()
        .map(|(id, ident, port)| {
            let p = w.pod(id);
            let srv = serve(&p.ns, ident, 80, 81);
            let conf = portmap_conf("1.0.0", Some(&p.prev), tcp_udp(port - 1000, port));
            let netns = p.ns.path().display().to_string();
            w.portmap("ADD", &p.id, &netns, &conf).assert_ok();
            assert_eq!(
                udp_get(&w.ext.path(), addr(NODE4, port), src),
                Ok(ident.to_string())
            );
            (p, srv, conf, netns, port)
        })
        .collect();
    let ino = std::fs::metadata(w.host.path()).unwrap().ino();
    let queue = std::path::PathBuf::from(format!("/run/cni-portmap/netns-{ino}.udp"));
    // The ADDs' flushes are done (their own entries stay), and made the queue.
    let requests = || {
        std::fs::read_dir(&queue)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "req"))
            .count()
    };
    let start = std::time::Instant::now();
    while requests() > 0 {
        assert!(start.elapsed().as_secs() < 5, "the ADDs' flushes never ran");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let lock = std::fs::File::options()
        .write(true)
        .open(queue.join("lock"))
        .unwrap();
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    for (p, _, conf, netns, _) in &pods {
        w.portmap("DEL", &p.id, netns, conf).assert_ok();
    }
    let start = std::time::Instant::now();
    while requests() < 2 {
        assert!(
            start.elapsed().as_secs() < 5,
            "{} of 2 requests queued",
            requests()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (.., port) in &pods {
        assert!(
            udp_entries(&w, *port).0 > 0,
            "port {port}: flushed while the queue was locked"
        );
    }
    drop(held);
    for (.., port) in &pods {
        assert_flushed_within_a_second(&w, *port, "DEL after the queue's release");
    }
    let start = std::time::Instant::now();
    while requests() > 0 {
        assert!(start.elapsed().as_secs() < 2, "requests left in the queue");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
