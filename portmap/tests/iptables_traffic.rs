//! Privileged end-to-end tests of the iptables backend, once per iptables
//! flavour (iptables-nft, and iptables-legacy chosen because its
//! `CNI-HOSTPORT-DNAT` exists first): real pods (Debian ptp + host-local)
//! behind a throwaway host netns, real TCP/UDP from a remote netns, another
//! pod, the host (node IP and 127.0.0.1) and the pod itself; CHECK by
//! content, conflicts under the Kubernetes rule, `externalSetMarkChain`,
//! iptables-syntax conditions, UDP conntrack (gone within a second of ADD
//! and of DEL), GC, and teardown in both
//! directions with Debian's reference portmap; the raw table's drop of
//! 127.0.0.0/8 from outside (CVE-2020-8558); the undo of a failed first ADD.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use cni::testing::Invocation;
use common::*;
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Nft,
    Legacy,
}

const KINDS: [Kind; 2] = [Kind::Nft, Kind::Legacy];

impl Kind {
    fn tool(self, v6: bool, what: &str) -> String {
        let k = match self {
            Kind::Nft => "nft",
            Kind::Legacy => "legacy",
        };
        format!("{}tables-{k}{what}", if v6 { "ip6" } else { "ip" })
    }
}

/// A host netns whose iptables rules go to `kind`.
fn world(kind: Kind) -> World {
    let w = World::new();
    if kind == Kind::Legacy {
        for v6 in [false, true] {
            host_exec(
                &w,
                &[&kind.tool(v6, ""), "-t", "nat", "-N", "CNI-HOSTPORT-DNAT"],
            );
        }
    }
    w
}

/// Both families' saved `nat` tables of both flavours.
fn saved(w: &World) -> String {
    let mut out = String::new();
    for kind in KINDS {
        for v6 in [false, true] {
            out += &host_exec(w, &[&kind.tool(v6, "-save"), "-t", "nat"]);
        }
    }
    out
}

/// [`saved`] without its comments (they carry the time) and counters.
fn layout(w: &World) -> String {
    saved(w)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.split_once(" [") {
            Some((head, _)) if l.starts_with(':') => head.to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn saved_of(w: &World, kind: Kind) -> String {
    host_exec(w, &[&kind.tool(false, "-save"), "-t", "nat"])
        + &host_exec(w, &[&kind.tool(true, "-save"), "-t", "nat"])
}

fn conf(prev: &Pod, extra: serde_json::Value, mappings: serde_json::Value) -> serde_json::Value {
    let mut c = portmap_conf("1.0.0", Some(&prev.prev), mappings);
    c["backend"] = "iptables".into();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn tcp_udp(tcp: u16, udp: u16) -> serde_json::Value {
    json!([
        {"hostPort": tcp, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": udp, "containerPort": 81, "protocol": "udp"}
    ])
}

fn netns(p: &Pod) -> String {
    p.ns.path().display().to_string()
}

#[test]
fn traffic_from_everywhere_check_by_content_and_del() {
    if !cni::testing::privileged("traffic_from_everywhere_check_by_content_and_del") {
        return;
    }
    for kind in KINDS {
        let w = world(kind);
        let a = w.pod("ctrA");
        let b = w.pod("ctrB");
        let _srv = serve(&a.ns, "A", 80, 81);
        let c = conf(&a, json!({}), tcp_udp(8080, 8081));
        let out = w.portmap("ADD", &a.id, &netns(&a), &c);
        out.assert_ok();
        assert_eq!(
            out.json()["ips"],
            a.prev["ips"],
            "prevResult passes through"
        );
        let chain = portmap::upstream::iptables::dn_chain("pmnet", "ctrA");
        let mine = saved_of(&w, kind);
        assert!(mine.matches(&chain).count() >= 4, "{kind:?}: {mine}");
        let other = if kind == Kind::Nft {
            Kind::Legacy
        } else {
            Kind::Nft
        };
        assert!(
            !saved_of(&w, other).contains(&chain),
            "{kind:?}: rules went to {other:?}"
        );

        let (ext, host) = (w.ext.path(), w.host.path());
        for (who, ns, ip) in [
            ("remote", ext.clone(), NODE4),
            ("other pod", b.ns.path(), NODE4),
            ("host by node IP", host.clone(), NODE4),
            ("host by 127.0.0.1", host.clone(), "127.0.0.1"),
            ("hairpin", a.ns.path(), NODE4),
            ("remote v6", ext.clone(), NODE6),
            ("other pod v6", b.ns.path(), NODE6),
            ("host v6", host.clone(), NODE6),
            ("hairpin v6", a.ns.path(), NODE6),
        ] {
            assert_eq!(
                tcp_get(&ns, addr(ip, 8080)),
                Ok("A".into()),
                "{kind:?} tcp {who}"
            );
            assert_eq!(
                udp_get(&ns, addr(ip, 8081), None),
                Ok("A".into()),
                "{kind:?} udp {who}"
            );
        }
        // DNAT is for local destinations only: traffic through the host to
        // another address on port 8080 is not rewritten.
        assert!(
            !mine.contains("-A PREROUTING -j CNI-HOSTPORT-DNAT"),
            "{mine}"
        );

        w.portmap("CHECK", &a.id, &netns(&a), &c).assert_ok();
        // One rule gone: CHECK names it; a second ADD restores it.
        let dnat = format!(
            "-p udp -m udp --dport 8081 -j DNAT --to-destination {}:81",
            a.ip4()
        );
        let mut del = vec![
            kind.tool(false, ""),
            "-t".into(),
            "nat".into(),
            "-D".into(),
            chain.clone(),
        ];
        del.extend(dnat.split(' ').map(String::from));
        host_exec(&w, &del.iter().map(String::as_str).collect::<Vec<_>>());
        let out = w.portmap("CHECK", &a.id, &netns(&a), &c);
        assert_ne!(out.code, 0);
        let msg = out.json()["msg"].as_str().unwrap().to_string();
        assert!(
            msg.contains(&format!("rule -A {chain} {dnat} is missing")),
            "{msg}"
        );
        w.portmap("ADD", &a.id, &netns(&a), &c).assert_ok();
        w.portmap("CHECK", &a.id, &netns(&a), &c).assert_ok();
        assert_eq!(
            udp_get(&ext, addr(NODE4, 8081), None),
            Ok("A".into()),
            "{kind:?} after re-ADD"
        );

        // DEL without runtimeConfig or prevResult removes everything.
        let bare = json!({"cniVersion": "1.0.0", "name": "pmnet", "type": "portmap", "backend": "iptables"});
        w.portmap("DEL", &a.id, "", &bare).assert_ok();
        assert!(
            tcp_get(&ext, addr(NODE4, 8080)).is_err(),
            "{kind:?} tcp after DEL"
        );
        assert!(
            udp_get(&ext, addr(NODE6, 8081), None).is_err(),
            "{kind:?} udp after DEL"
        );
        let s = saved(&w);
        assert!(
            !s.contains("CNI-"),
            "{kind:?}: last pod gone ⇒ nothing left: {s}"
        );
        w.portmap("DEL", &a.id, &netns(&a), &c).assert_ok();
    }
}

#[test]
fn conflicts_follow_the_kubernetes_rule() {
    if !cni::testing::privileged("conflicts_follow_the_kubernetes_rule") {
        return;
    }
    for kind in KINDS {
        let w = world(kind);
        let a = w.pod("ctrA");
        let b = w.pod("ctrB");
        let _sa = serve(&a.ns, "A", 80, 81);
        let _sb = serve(&b.ns, "B", 80, 81);
        let one = |ip: &str, proto: &str| json!([{"hostPort": 8080, "containerPort": 80, "protocol": proto, "hostIP": ip}]);
        // 127.0.0.1 and the node IP on one port: both start, each answers.
        w.portmap(
            "ADD",
            &a.id,
            &netns(&a),
            &conf(&a, json!({}), one("127.0.0.1", "tcp")),
        )
        .assert_ok();
        w.portmap(
            "ADD",
            &b.id,
            &netns(&b),
            &conf(&b, json!({}), one(NODE4, "tcp")),
        )
        .assert_ok();
        assert_eq!(
            tcp_get(&w.host.path(), addr("127.0.0.1", 8080)),
            Ok("A".into()),
            "{kind:?}"
        );
        assert_eq!(
            tcp_get(&w.ext.path(), addr(NODE4, 8080)),
            Ok("B".into()),
            "{kind:?}"
        );
        // A wildcard on that port overlaps both: refused, naming the owner.
        let c = w.pod("ctrC");
        let out = w.portmap(
            "ADD",
            &c.id,
            &netns(&c),
            &conf(&c, json!({}), one("", "tcp")),
        );
        assert_ne!(out.code, 0, "{kind:?}");
        let msg = out.json()["msg"].as_str().unwrap().to_string();
        assert!(
            msg.contains(
                "0.0.0.0:8080/tcp overlaps 127.0.0.1:8080/tcp mapped by network \"pmnet\" container \"ctrA\""
            ),
            "{msg}"
        );
        assert!(msg.contains("container \"ctrB\""), "{msg}");
        assert!(!saved(&w).contains("ctrC"), "a refused ADD leaves nothing");
        // Same port, udp: allowed.
        w.portmap(
            "ADD",
            &c.id,
            &netns(&c),
            &conf(&c, json!({}), one("", "udp")),
        )
        .assert_ok();
        assert_eq!(
            tcp_get(&w.ext.path(), addr(NODE4, 8080)),
            Ok("B".into()),
            "no hijack"
        );
    }
}

#[test]
fn external_set_mark_chain_and_iptables_conditions() {
    if !cni::testing::privileged("external_set_mark_chain_and_iptables_conditions") {
        return;
    }
    for kind in KINDS {
        let w = world(kind);
        // kube-proxy's mark chain and masquerade, as kube-proxy installs them.
        for v6 in [false, true] {
            let t = kind.tool(v6, "");
            for args in [
                vec!["-N", "KUBE-MARK-MASQ"],
                vec!["-A", "KUBE-MARK-MASQ", "-j", "MARK", "--or-mark", "0x4000"],
                vec![
                    "-A",
                    "POSTROUTING",
                    "-m",
                    "mark",
                    "--mark",
                    "0x4000/0x4000",
                    "-j",
                    "MASQUERADE",
                ],
            ] {
                let mut full = vec![t.as_str(), "-t", "nat"];
                full.extend(args);
                host_exec(&w, &full);
            }
        }
        let a = w.pod("ctrA");
        let b = w.pod("ctrB");
        let _srv = serve(&a.ns, "A", 80, 81);
        // No backend key: externalSetMarkChain selects iptables.
        let mut c = portmap_conf("1.0.0", Some(&a.prev), tcp_udp(8080, 8081));
        c["externalSetMarkChain"] = "KUBE-MARK-MASQ".into();
        c["conditionsV4"] = json!(["!", "-s", EXT4]);
        w.portmap("ADD", &a.id, &netns(&a), &c).assert_ok();
        let s = saved_of(&w, kind);
        assert!(
            s.contains("-j KUBE-MARK-MASQ") && !s.contains("CNI-HOSTPORT-SETMARK"),
            "{s}"
        );
        // Hairpin and localhost work through kube-proxy's chain.
        assert_eq!(
            tcp_get(&a.ns.path(), addr(NODE4, 8080)),
            Ok("A".into()),
            "{kind:?} hairpin"
        );
        assert_eq!(
            tcp_get(&w.host.path(), addr("127.0.0.1", 8080)),
            Ok("A".into()),
            "{kind:?} localhost"
        );
        // The condition keeps the remote client out, not the other pod.
        assert!(
            tcp_get(&w.ext.path(), addr(NODE4, 8080)).is_err(),
            "{kind:?} condition"
        );
        assert_eq!(
            tcp_get(&b.ns.path(), addr(NODE4, 8080)),
            Ok("A".into()),
            "{kind:?} other pod"
        );
        // v6 has no condition: the remote client gets in there.
        assert_eq!(
            tcp_get(&w.ext.path(), addr(NODE6, 8080)),
            Ok("A".into()),
            "{kind:?} v6"
        );
        w.portmap("CHECK", &a.id, &netns(&a), &c).assert_ok();
        w.portmap("DEL", &a.id, &netns(&a), &c).assert_ok();
        let s = saved(&w);
        assert!(!s.contains("CNI-") && s.contains("KUBE-MARK-MASQ"), "{s}");
    }
}

#[test]
fn udp_conntrack_is_flushed_and_gc_removes_only_stale_pods() {
    if !cni::testing::privileged("udp_conntrack_is_flushed_and_gc_removes_only_stale_pods") {
        return;
    }
    for kind in KINDS {
        let w = world(kind);
        let src = Some(addr(EXT4, 40000));
        let udp = json!([{"hostPort": 9000, "containerPort": 81, "protocol": "udp"}]);
        let a = w.pod("ctrA");
        {
            let _srv = serve(&a.ns, "A", 80, 81);
            w.portmap("ADD", &a.id, &netns(&a), &conf(&a, json!({}), udp.clone()))
                .assert_ok();
            assert_eq!(
                udp_get(&w.ext.path(), addr(NODE4, 9000), src),
                Ok("A".into())
            );
            // GC with A not valid removes it (and its conntrack entry).
            let gc = json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap", "backend": "iptables",
                "cni.dev/valid-attachments": [{"containerID": "ctrB", "ifname": "eth0"}]});
            w.portmap("GC", "", "", &gc).assert_ok();
            assert!(!saved(&w).contains("ctrA"), "{kind:?}");
            w.remove_pod(&a);
        }
        let b = w.pod("ctrB");
        let _srv = serve(&b.ns, "B", 80, 81);
        w.portmap("ADD", &b.id, &netns(&b), &conf(&b, json!({}), udp.clone()))
            .assert_ok();
        assert_eq!(
            udp_get(&w.ext.path(), addr(NODE4, 9000), src),
            Ok("B".into()),
            "{kind:?}: same source port reaches the new pod"
        );
        // Another network's GC leaves B alone.
        let gc = json!({"cniVersion": "1.1.0", "name": "othernet", "type": "portmap", "backend": "iptables",
            "cni.dev/valid-attachments": []});
        w.portmap("GC", "", "", &gc).assert_ok();
        assert_eq!(
            udp_get(&w.ext.path(), addr(NODE4, 9000), None),
            Ok("B".into()),
            "{kind:?}"
        );
        let raws = raw_saved(&w, Kind::Nft) + &raw_saved(&w, Kind::Legacy);
        assert_eq!(
            raws.matches("-A PREROUTING -j CNI-HOSTPORT-LOCALNET")
                .count(),
            1,
            "{kind:?}: {raws}"
        );
        // The localnet drop exists once (in the flavour B went to: with the
        // legacy CNI-HOSTPORT-DNAT gone by the GC, the system's). GC of pmnet
        // with nothing valid: B goes, and with the last attachment the
        // shared chains and the raw table's localnet drop.
        let gc = json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap", "backend": "iptables",
            "cni.dev/valid-attachments": []});
        w.portmap("GC", "", "", &gc).assert_ok();
        let s = saved(&w) + &raw_saved(&w, Kind::Nft) + &raw_saved(&w, Kind::Legacy);
        assert!(!s.contains("CNI-HOSTPORT"), "{kind:?}: {s}");
    }
}

/// As with nftables: the conntrack cleanup runs after the plugin replied
/// (in a detached child, once the family threads are done) and still
/// happens, per flavour: the pod's UDP entry is gone within a second of
/// DEL, and an entry a datagram made while its port was not mapped is
/// gone within a second of ADD, while the entry of a datagram the new
/// mapping forwarded before the flush ran stays.
#[test]
fn stale_udp_conntrack_goes_within_a_second_of_add_and_of_del() {
    if !cni::testing::privileged("stale_udp_conntrack_goes_within_a_second_of_add_and_of_del") {
        return;
    }
    for kind in KINDS {
        let w = world(kind);
        let src = Some(addr(EXT4, 40003));
        // Another attachment keeps the layout (DEL takes its common path,
        // and the NAT rules that make the kernel track connections stay).
        let b = w.pod("ctrB");
        w.portmap(
            "ADD",
            &b.id,
            &netns(&b),
            &conf(&b, json!({}), tcp_udp(8084, 9004)),
        )
        .assert_ok();
        let a = w.pod("ctrA");
        let _srv = serve(&a.ns, "A", 80, 81);
        let c = conf(&a, json!({}), tcp_udp(8083, 9003));
        let (made, after) = add_holding_the_flush(&w, &a.id, &netns(&a), &c, 9003, || {
            assert_eq!(
                udp_get(&w.ext.path(), addr(NODE4, 9003), src),
                Ok("A".into()),
                "{kind:?}"
            );
        });
        assert!(made != (0, 0), "{kind:?}: the pod's traffic made an entry");
        assert_eq!(
            after, made,
            "{kind:?}: ADD's flush keeps the entries its own mapping made"
        );
        w.portmap("DEL", &a.id, &netns(&a), &c).assert_ok();
        assert_flushed_within_a_second(&w, 9003, &format!("{kind:?} DEL"));
        // DEL next to B (on iptables-nft: over nfnetlink, no process)
        // removed A's entry rules and chain, and nothing of B's.
        let left = saved(&w);
        let a_chain = portmap::upstream::iptables::dn_chain("pmnet", &a.id);
        assert!(
            !left.contains("ctrA") && !left.contains(&a_chain) && left.contains("ctrB"),
            "{kind:?}: {left}"
        );
        assert!(
            udp_get(&w.ext.path(), addr(NODE4, 9003), src).is_err(),
            "{kind:?}: nothing is mapped"
        );
        assert!(
            udp_entries(&w, 9003) != (0, 0),
            "{kind:?}: the datagram to the unmapped port made an entry"
        );
        w.portmap("ADD", &a.id, &netns(&a), &c).assert_ok();
        assert_flushed_within_a_second(&w, 9003, &format!("{kind:?} ADD"));
        assert_eq!(
            udp_get(&w.ext.path(), addr(NODE4, 9003), src),
            Ok("A".into()),
            "{kind:?}"
        );
        let holder = saved_of(&w, kind);
        assert!(
            holder.contains("ctrA") && holder.contains("ctrB"),
            "{kind:?} holds the rules: {holder}"
        );
    }
}

fn reference(w: &World, command: &str, pod: &Pod, mappings: serde_json::Value) {
    let mut inv = Invocation::new(command);
    inv.container_id = pod.id.clone();
    inv.netns = pod.ns.path().display().to_string();
    inv.host_netns = Some(w.host.name.clone());
    let conf = portmap_conf("1.0.0", Some(&pod.prev), mappings);
    inv.run(Path::new("/usr/lib/cni/portmap"), &conf.to_string())
        .assert_ok();
}

#[test]
fn teardown_works_both_ways_with_the_reference_plugin() {
    if !cni::testing::privileged("teardown_works_both_ways_with_the_reference_plugin") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    let _sa = serve(&a.ns, "A", 80, 81);
    let _sb = serve(&b.ns, "B", 80, 81);
    // Reference ADDs A, ours ADDs B next to it: both answer.
    reference(&w, "ADD", &a, tcp_udp(8080, 8081));
    w.portmap(
        "ADD",
        &b.id,
        &netns(&b),
        &conf(&b, json!({}), tcp_udp(9080, 9081)),
    )
    .assert_ok();
    assert_eq!(tcp_get(&w.ext.path(), addr(NODE4, 8080)), Ok("A".into()));
    assert_eq!(tcp_get(&w.ext.path(), addr(NODE6, 9080)), Ok("B".into()));
    // Ours refuses A's port for another container.
    let c = w.pod("ctrC");
    let out = w.portmap(
        "ADD",
        &c.id,
        &netns(&c),
        &conf(&c, json!({}), tcp_udp(8080, 7001)),
    );
    assert_ne!(out.code, 0);
    // Reference DELs our B: nothing of B is left in any table.
    reference(&w, "DEL", &b, tcp_udp(9080, 9081));
    let s = saved(&w);
    let chain_b = portmap::upstream::iptables::dn_chain("pmnet", "ctrB");
    assert!(!s.contains(&chain_b) && !s.contains("ctrB"), "{s}");
    assert!(tcp_get(&w.ext.path(), addr(NODE4, 9080)).is_err());
    assert_eq!(tcp_get(&w.ext.path(), addr(NODE4, 8080)), Ok("A".into()));
    // Ours DELs the reference's A: nothing at all is left.
    w.portmap(
        "DEL",
        &a.id,
        &netns(&a),
        &conf(&a, json!({}), tcp_udp(8080, 8081)),
    )
    .assert_ok();
    assert!(tcp_get(&w.ext.path(), addr(NODE4, 8080)).is_err());
    let s = saved(&w);
    assert!(!s.contains("CNI-"), "{s}");
}

fn flush_everything(w: &World, kind: Kind) {
    for v6 in [false, true] {
        for op in ["-F", "-X"] {
            host_exec(w, &[&kind.tool(v6, ""), "-t", "nat", op]);
        }
    }
}

#[test]
fn a_flushed_nat_table_is_rebuilt_by_status_or_the_next_add() {
    if !cni::testing::privileged("a_flushed_nat_table_is_rebuilt_by_status_or_the_next_add") {
        return;
    }
    for kind in KINDS {
        let w = world(kind);
        let a = w.pod("ctrA");
        let b = w.pod("ctrB");
        let c = w.pod("ctrC");
        let _sa = serve(&a.ns, "A", 80, 81);
        let _sb = serve(&b.ns, "B", 80, 81);
        let ca = conf(&a, json!({}), tcp_udp(8080, 8081));
        let cb = conf(&b, json!({}), tcp_udp(9080, 9081));
        w.portmap("ADD", &a.id, &netns(&a), &ca).assert_ok();
        w.portmap("ADD", &b.id, &netns(&b), &cb).assert_ok();
        let ext = w.ext.path();
        let answers = |port: u16| {
            [
                tcp_get(&ext, addr(NODE4, port)).ok(),
                udp_get(&ext, addr(NODE4, port + 1), None).ok(),
                tcp_get(&ext, addr(NODE6, port)).ok(),
            ]
        };
        let a_ok = [Some("A".to_string()), Some("A".into()), Some("A".into())];
        let b_ok = [Some("B".to_string()), Some("B".into()), Some("B".into())];

        flush_everything(&w, kind);
        assert_eq!(
            answers(8080),
            [None, None, None],
            "{kind:?}: the flush broke A"
        );
        let status = json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap", "backend": "iptables"});
        w.portmap("STATUS", "", "", &status).assert_ok();
        assert_eq!(answers(8080), a_ok, "{kind:?}: STATUS rebuilt A");
        assert_eq!(answers(9080), b_ok, "{kind:?}: STATUS rebuilt B");
        w.portmap("CHECK", &a.id, &netns(&a), &ca).assert_ok();
        // STATUS of an intact layout changes nothing (on iptables-nft it
        // decides so from one GETRULE dump of PREROUTING).
        let before = layout(&w);
        w.portmap("STATUS", "", "", &status).assert_ok();
        assert_eq!(
            layout(&w),
            before,
            "{kind:?}: STATUS changed an intact layout"
        );
        // Only PREROUTING flushed (its jump to CNI-HOSTPORT-DNAT gone, the
        // chains kept): traffic from outside breaks, and STATUS puts the
        // jump back.
        // (In both flavours: after the full flush above, the legacy world's
        // layout was rebuilt in the system's flavour.)
        for k in KINDS {
            for v6 in [false, true] {
                host_exec(&w, &[&k.tool(v6, ""), "-t", "nat", "-F", "PREROUTING"]);
            }
        }
        assert_eq!(
            answers(8080),
            [None, None, None],
            "{kind:?}: the PREROUTING flush broke A"
        );
        w.portmap("STATUS", "", "", &status).assert_ok();
        assert_eq!(
            answers(8080),
            a_ok,
            "{kind:?}: STATUS put PREROUTING back for A"
        );
        assert_eq!(
            answers(9080),
            b_ok,
            "{kind:?}: STATUS put PREROUTING back for B"
        );
        // The same rules; healing re-adds attachments one by one, so the
        // entry rules' order may differ (they match distinct ports).
        let sorted = |s: String| {
            let mut l: Vec<String> = s.lines().map(String::from).collect();
            l.sort();
            l
        };
        assert_eq!(
            sorted(layout(&w)),
            sorted(before.clone()),
            "{kind:?}: the rebuilt layout has the same rules"
        );

        // Flushed again: the next ADD (another pod) rebuilds A and B.
        flush_everything(&w, kind);
        let cc = conf(&c, json!({}), tcp_udp(7080, 7081));
        w.portmap("ADD", &c.id, &netns(&c), &cc).assert_ok();
        assert_eq!(answers(8080), a_ok, "{kind:?}: ADD rebuilt A");
        assert_eq!(answers(9080), b_ok, "{kind:?}: ADD rebuilt B");
        w.portmap("CHECK", &b.id, &netns(&b), &cb).assert_ok();

        // What DEL removed is not resurrected; GC drops stale indexes.
        w.portmap("DEL", &a.id, &netns(&a), &ca).assert_ok();
        let gc = json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap", "backend": "iptables",
            "cni.dev/valid-attachments": [{"containerID": "ctrB", "ifname": "eth0"}]});
        w.portmap("GC", "", "", &gc).assert_ok();
        flush_everything(&w, kind);
        w.portmap("STATUS", "", "", &status).assert_ok();
        assert_eq!(
            answers(8080),
            [None, None, None],
            "{kind:?}: DEL'd A stays gone"
        );
        assert_eq!(answers(9080), b_ok, "{kind:?}: B rebuilt");
        let s = saved(&w);
        assert!(
            !s.contains("ctrA") && !s.contains("ctrC"),
            "{kind:?}: GC'd C stays gone: {s}"
        );
    }
}

#[test]
fn parallel_first_adds_and_dels_keep_every_pod() {
    if !cni::testing::privileged("parallel_first_adds_and_dels_keep_every_pod") {
        return;
    }
    let w = World::new();
    let pods: Vec<Pod> = (0..8).map(|i| w.pod(&format!("ctr{i}"))).collect();
    let confs: Vec<serde_json::Value> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            conf(
                p,
                json!({}),
                tcp_udp(8000 + 2 * i as u16, 8001 + 2 * i as u16),
            )
        })
        .collect();
    std::thread::scope(|s| {
        for (p, c) in pods.iter().zip(&confs) {
            let w = &w;
            s.spawn(move || {
                w.portmap("ADD", &p.id, &netns(p), c).assert_ok();
            });
        }
    });
    let table = saved_of(&w, Kind::Nft);
    for (i, p) in pods.iter().enumerate() {
        let _srv = serve(&p.ns, &p.id, 80, 81);
        let port = 8000 + 2 * i as u16;
        assert_eq!(
            tcp_get(&w.ext.path(), addr(NODE4, port)),
            Ok(p.id.clone()),
            "{table}"
        );
        assert_eq!(
            tcp_get(&w.ext.path(), addr(NODE6, port)),
            Ok(p.id.clone()),
            "{table}"
        );
        w.portmap("CHECK", &p.id, &netns(p), &confs[i]).assert_ok();
    }
    std::thread::scope(|s| {
        for (p, c) in pods.iter().zip(&confs) {
            let w = &w;
            s.spawn(move || {
                w.portmap("DEL", &p.id, &netns(p), c).assert_ok();
            });
        }
    });
    let s = saved(&w);
    assert!(!s.contains("CNI-"), "{s}");
}

fn raw_saved(w: &World, kind: Kind) -> String {
    host_exec(w, &[&kind.tool(false, "-save"), "-t", "raw"])
}

/// CVE-2020-8558: with the iptables backend, a packet from another netns to
/// 127.0.0.1 through the node's uplink (the martian `route_localnet` lets
/// through the DNAT) is dropped by the raw table's `CNI-HOSTPORT-LOCALNET`,
/// while the host itself still reaches 127.0.0.1:<hostPort>; without the
/// jump the same packet reaches the pod. The chain comes with the first
/// attachment (once), goes with the last, and CHECK and ADD notice and
/// restore a missing one.
#[test]
fn localhost_hostports_are_not_reachable_from_outside() {
    if !cni::testing::privileged("localhost_hostports_are_not_reachable_from_outside") {
        return;
    }
    let jump = "-A PREROUTING -j CNI-HOSTPORT-LOCALNET";
    let drop = "-A CNI-HOSTPORT-LOCALNET -d 127.0.0.0/8 ! -i lo -j DROP";
    for kind in KINDS {
        let w = world(kind);
        let a = w.pod("ctrA");
        let b = w.pod("ctrB");
        let _srv = serve(&a.ns, "A", 80, 81);
        let ca = conf(
            &a,
            json!({}),
            json!([
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 8092, "containerPort": 81, "protocol": "udp", "hostIP": "127.0.0.1"}
            ]),
        );
        let cb = conf(&b, json!({}), tcp_udp(9080, 9081));
        w.portmap("ADD", &a.id, &netns(&a), &ca).assert_ok();
        w.portmap("ADD", &b.id, &netns(&b), &cb).assert_ok();
        let raw = raw_saved(&w, kind);
        assert_eq!(raw.matches(jump).count(), 1, "{kind:?}: {raw}");
        assert_eq!(raw.matches(drop).count(), 1, "{kind:?}: {raw}");
        assert_eq!(
            udp_get(&w.host.path(), addr("127.0.0.1", 8092), None),
            Ok("A".into()),
            "{kind:?}: host by 127.0.0.1:8092/udp"
        );
        ext_sends_to_loopback_via_node(&w);
        let ext = w.ext.path();
        let outside = |from: u16| udp_get(&ext, addr("127.0.0.1", 8092), Some(addr(EXT4, from)));
        assert!(outside(40001).is_err(), "{kind:?}: answered from outside");
        assert_eq!(
            tcp_get(&ext, addr(NODE4, 8080)),
            Ok("A".into()),
            "{kind:?}: node IP"
        );
        w.portmap("CHECK", &a.id, &netns(&a), &ca).assert_ok();

        // Control: without the jump the same packet reaches the pod.
        host_exec(
            &w,
            &[
                &kind.tool(false, ""),
                "-t",
                "raw",
                "-D",
                "PREROUTING",
                "-j",
                "CNI-HOSTPORT-LOCALNET",
            ],
        );
        assert_eq!(outside(40002), Ok("A".into()), "{kind:?}: without the rule");
        let out = w.portmap("CHECK", &a.id, &netns(&a), &ca);
        assert!(
            out.stdout.contains("CNI-HOSTPORT-LOCALNET"),
            "{kind:?}: {}",
            out.stdout
        );
        // A repeated ADD puts it back (once).
        w.portmap("ADD", &a.id, &netns(&a), &ca).assert_ok();
        let raw = raw_saved(&w, kind);
        assert_eq!(raw.matches(jump).count(), 1, "{kind:?}: {raw}");

        // Stays while one attachment is left (and drops again); goes with
        // the last.
        w.portmap("DEL", &b.id, &netns(&b), &cb).assert_ok();
        assert!(outside(40004).is_err(), "{kind:?}: after B's DEL");
        let bare = json!({"cniVersion": "1.0.0", "name": "pmnet", "type": "portmap", "backend": "iptables"});
        w.portmap("DEL", &a.id, "", &bare).assert_ok();
        let raw = raw_saved(&w, kind);
        assert!(
            !raw.contains("CNI-"),
            "{kind:?}: last attachment gone: {raw}"
        );
    }
}

/// An ADD that fails after its restore (here: `route_localnet` cannot
/// find the pod's route) removes what it wrote, also on a host netns
/// whose `nat` table did not exist when the verb began.
#[test]
fn a_failed_first_add_leaves_no_rule_behind() {
    if !cni::testing::privileged("a_failed_first_add_leaves_no_rule_behind") {
        return;
    }
    let w = World::new();
    let pod = w.pod("ctr-unrouted");
    let mut c = conf(&pod, json!({}), tcp_udp(8100, 8101));
    let ips = c["prevResult"]["ips"].as_array_mut().unwrap();
    ips.retain(|ip| ip["address"].as_str().unwrap().contains('.'));
    ips[0]["address"] = "10.251.0.2/24".into();
    let add = w.portmap("ADD", &pod.id, &netns(&pod), &c);
    assert_ne!(add.code, 0, "an unrouted pod IP must fail ADD: {add:?}");
    assert!(add.stdout.contains("route_localnet"), "{add:?}");
    let s = saved(&w);
    assert!(!s.contains("CNI-"), "{s}");
}

/// `CNI-HOSTPORT-DNAT` as iptables-nft's verbs will read it next: the
/// cache file's rules when its generation is current (None: stale or
/// absent), and a dump.
fn cached_and_dumped(
    w: &World,
    v6: bool,
) -> (
    Option<Vec<portmap::iptables::dnat_cache::DnatRule>>,
    Option<Vec<portmap::iptables::dnat_cache::DnatRule>>,
) {
    use portmap::iptables::dnat_cache::{current, Tracker};
    cni::netns::run_in(&w.host.path(), || {
        let sock = cni::netlink::netfilter::Nfnl::open().unwrap();
        let dumped = Tracker::default().rules(&sock, v6).map(<[_]>::to_vec);
        (current(&sock, v6), dumped)
    })
    .unwrap()
}

/// The DNAT cache (`dnat_cache`) after real verbs, ours and others': once
/// a verb has read the chain, the file is exactly the kernel's chain in
/// both families, until anyone else commits (then it is stale, and the
/// next verb reads the chain again). Ports refused or mapped still follow
/// the kernel: a conflict is refused with the file in use.
#[test]
fn the_dnat_cache_is_the_kernels_chain_after_every_verb() {
    if !cni::testing::privileged("the_dnat_cache_is_the_kernels_chain_after_every_verb") {
        return;
    }
    let w = world(Kind::Nft);
    let pods: Vec<Pod> = ["ctrA", "ctrB", "ctrC", "ctrD", "ctrE"]
        .iter()
        .map(|id| w.pod(id))
        .collect();
    let ours = |verb: &str, p: &Pod, tcp: u16| {
        w.portmap(
            verb,
            &p.id,
            &netns(p),
            &conf(p, json!({}), tcp_udp(tcp, tcp + 1)),
        )
        .assert_ok();
    };
    let same = |what: &str| {
        for v6 in [false, true] {
            let (cached, dumped) = cached_and_dumped(&w, v6);
            assert!(cached.is_some(), "{what} v6={v6}: no current cache");
            assert_eq!(cached, dumped, "{what} v6={v6}");
        }
    };
    let stale = |what: &str| {
        for v6 in [false, true] {
            assert_eq!(cached_and_dumped(&w, v6).0, None, "{what} v6={v6}");
        }
    };
    // The first ADD creates the layout (nothing to track yet); the second
    // reads the chain and starts the file; the third reads the file.
    ours("ADD", &pods[0], 8080);
    ours("ADD", &pods[1], 8090);
    same("second ADD");
    ours("ADD", &pods[2], 8100);
    same("third ADD");
    assert_eq!(cached_and_dumped(&w, false).0.map(|r| r.len()), Some(6));
    // A conflict, refused from the file.
    let e = &pods[4];
    let out = w.portmap(
        "ADD",
        &e.id,
        &netns(e),
        &conf(e, json!({}), tcp_udp(8090, 7000)),
    );
    assert_ne!(out.code, 0, "{}", out.stdout);
    // Someone else's rule in the chain: stale, then read again.
    let foreign = ["-p", "tcp", "--dport", "9999", "-j", "RETURN"];
    for v6 in [false, true] {
        let mut args = vec![Kind::Nft.tool(v6, "")];
        args.extend(["-t", "nat", "-A", "CNI-HOSTPORT-DNAT"].map(String::from));
        args.extend(foreign.map(String::from));
        host_exec(&w, &args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    stale("a foreign rule");
    ours("ADD", &pods[3], 8110);
    same("ADD next to a foreign rule");
    ours("DEL", &pods[1], 8090);
    same("DEL");
    // The reference plugin's ADD and DEL: stale; our next verb reads again.
    reference(&w, "ADD", e, tcp_udp(8200, 8201));
    stale("reference ADD");
    ours("DEL", &pods[2], 8100);
    same("DEL after the reference's ADD");
    ours("DEL", &pods[3], 8110);
    same("DEL with the file");
    reference(&w, "DEL", e, tcp_udp(8200, 8201));
    ours("DEL", &pods[0], 8080);
    // Only the foreign rules are left: the layout stays, the file matches.
    same("the last of ours");
    assert_eq!(cached_and_dumped(&w, false).0.map(|r| r.len()), Some(1));
}

/// DEL deletes by handle, and a handle may come from the cache file: each
/// is checked against the kernel first. A file (with a current
/// generation) that names a foreign rule's handle among a pod's entry
/// rules makes DEL take the save path, which removes the pod and leaves
/// the foreign rule alone.
#[test]
fn a_cached_handle_is_checked_before_del_deletes_by_it() {
    if !cni::testing::privileged("a_cached_handle_is_checked_before_del_deletes_by_it") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let w = world(Kind::Nft);
    let (a, b) = (w.pod("ctrA"), w.pod("ctrB"));
    let ca = conf(&a, json!({}), tcp_udp(8080, 8081));
    let cb = conf(&b, json!({}), tcp_udp(8090, 8091));
    w.portmap("ADD", &a.id, &netns(&a), &ca).assert_ok();
    w.portmap("ADD", &b.id, &netns(&b), &cb).assert_ok();
    let foreign = "-p tcp -m tcp --dport 9999 -j RETURN";
    let mut args = vec!["iptables-nft", "-t", "nat", "-A", "CNI-HOSTPORT-DNAT"];
    args.extend(foreign.split(' '));
    host_exec(&w, &args);
    let (_, dumped) = cached_and_dumped(&w, false);
    let foreign_handle = dumped
        .unwrap()
        .iter()
        .find(|r| r.entry.is_none() && r.jump().is_none())
        .map(|r| r.handle)
        .unwrap();
    // The file, made current, with one more entry rule of B's: the
    // foreign rule's handle (B's real ones stay, so the transaction would
    // succeed and take the foreign rule with it).
    let ino = std::fs::metadata(w.host.path()).unwrap().ino();
    let path = format!("/run/cni-portmap/netns-{ino}/iptables-dnat.cache");
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let sock = cni::netlink::netfilter::Nfnl::open_in(&w.host.path()).unwrap();
    file["genid"] = sock.nftables_generation().unwrap().into();
    let chain_b = portmap::upstream::iptables::dn_chain("pmnet", "ctrB");
    let rules = file["v4"].as_array_mut().unwrap();
    let mut extra = rules
        .iter()
        .find(|r| r["e"]["n"] == json!(chain_b))
        .cloned()
        .unwrap();
    extra["h"] = foreign_handle.into();
    rules.push(extra);
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    assert!(
        cached_and_dumped(&w, false).0.is_some(),
        "the file is current"
    );

    w.portmap("DEL", &b.id, &netns(&b), &cb).assert_ok();
    let s = saved(&w);
    assert!(s.contains(foreign), "the foreign rule stays: {s}");
    assert!(!s.contains(&chain_b), "B is gone: {s}");
    w.portmap("DEL", &a.id, &netns(&a), &ca).assert_ok();
}
