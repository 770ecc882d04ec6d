//! Issue #15 §5, against the real kernel: a `hostIP` that is not a local
//! address of the host netns is refused at ADD before any change; with the
//! drop of new connections to 127.0.0.0/8 from any interface but `lo` in
//! the real ruleset (CVE-2020-8558), 127.0.0.1:<hostPort> from the host
//! itself still works, and a packet from another netns to 127.0.0.1 through
//! the node's veth (the martian `route_localnet` would let through the DNAT)
//! is dropped; without the rule the same packet reaches the pod.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

#[test]
fn a_host_ip_that_is_not_local_is_refused_before_any_change() {
    if !cni::testing::privileged("a_host_ip_that_is_not_local_is_refused_before_any_change") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let netns = a.ns.path().display().to_string();
    let before = w.nft_ruleset();
    for ip in ["198.18.0.99", "fd00:200::99", "192.0.2.1"] {
        let conf = portmap_conf(
            "1.1.0",
            Some(&a.prev),
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ip}]),
        );
        let out = w.portmap("ADD", &a.id, &netns, &conf);
        assert_eq!(out.code, 1, "{ip}: {}", out.stdout);
        let err = out.json();
        assert_eq!(err["code"], 7, "{err}");
        let msg = err["msg"].as_str().unwrap();
        assert!(
            msg.contains(&format!("hostIP {ip} is not a local address")),
            "{msg}"
        );
        assert_eq!(w.nft_ruleset(), before, "{ip}: the ruleset changed");
        assert!(
            !index_path(&w, &a.id).exists(),
            "{ip}: an index was written"
        );
    }
    // A local one (the node's address, or 127.0.0.1) is taken.
    for ip in [NODE4, "127.0.0.1"] {
        let conf = portmap_conf(
            "1.1.0",
            Some(&a.prev),
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ip}]),
        );
        w.portmap("ADD", &a.id, &netns, &conf).assert_ok();
        w.portmap("DEL", &a.id, &netns, &conf).assert_ok();
    }
}

#[test]
fn localhost_hostports_are_not_reachable_from_outside() {
    if !cni::testing::privileged("localhost_hostports_are_not_reachable_from_outside") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let _srv = serve(&a.ns, "A", 80, 81);
    let conf = portmap_conf(
        "1.1.0",
        Some(&a.prev),
        json!([
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 8091, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"},
            {"hostPort": 8081, "containerPort": 81, "protocol": "udp"},
            {"hostPort": 8092, "containerPort": 81, "protocol": "udp", "hostIP": "127.0.0.1"}
        ]),
    );
    w.portmap("ADD", &a.id, &a.ns.path().display().to_string(), &conf)
        .assert_ok();
    // The host itself reaches both by 127.0.0.1 (route_localnet on the pod's veth).
    for port in [8080, 8091] {
        assert_eq!(
            tcp_get(&w.host.path(), addr("127.0.0.1", port)),
            Ok("A".into()),
            "host by 127.0.0.1:{port}"
        );
    }
    for port in [8081, 8092] {
        assert_eq!(
            udp_get(&w.host.path(), addr("127.0.0.1", port), None),
            Ok("A".into()),
            "host by 127.0.0.1:{port}/udp"
        );
    }
    // The remote client sends to 127.0.0.1 through the node's uplink, as a
    // neighbour on the node's L2 segment can (its own 127.0.0.0/8 gone).
    ext_sends_to_loopback_via_node(&w);
    // A probe of the test's own, before any NAT: the packets do arrive.
    for cmd in [
        &["nft", "add", "table", "ip", "cnt_probe"][..],
        &[
            "nft",
            "add",
            "chain",
            "ip",
            "cnt_probe",
            "pre",
            "{ type filter hook prerouting priority -400; }",
        ],
        &[
            "nft",
            "add",
            "rule",
            "ip",
            "cnt_probe",
            "pre",
            "iifname",
            "up0",
            "ip",
            "daddr",
            "127.0.0.1",
            "counter",
        ],
    ] {
        w.host.exec(cmd);
    }
    // From the client's own address (a socket to 127.0.0.1 would pick a
    // loopback source, which the client's kernel refuses to send out).
    let ext = w.ext.path();
    let outside =
        |port: u16, from: u16| udp_get(&ext, addr("127.0.0.1", port), Some(addr(EXT4, from)));
    for (port, from) in [(8081, 40001), (8092, 40002)] {
        assert!(
            outside(port, from).is_err(),
            "127.0.0.1:{port}/udp answered from outside"
        );
    }
    let probe = w.host.exec(&["nft", "list", "table", "ip", "cnt_probe"]);
    let arrived: u64 = probe
        .split("packets ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        arrived >= 2,
        "nothing to 127.0.0.1 arrived on up0:\n{probe}"
    );
    assert_eq!(tcp_get(&ext, addr(NODE4, 8080)), Ok("A".into()), "node IP");
    // Control: without the drop rule the same packets reach the pod (the
    // exposure is real, and the rule is what closes it).
    let listing = w.host.exec(&[
        "nft",
        "-a",
        "list",
        "chain",
        "inet",
        "cni_portmap",
        "prerouting",
    ]);
    let handle = listing
        .lines()
        .find(|l| l.contains("127.0.0.0/8") && l.contains("drop"))
        .and_then(|l| l.rsplit_once("# handle "))
        .map(|(_, h)| h.trim().to_string())
        .unwrap_or_else(|| panic!("no drop rule in:\n{listing}"));
    w.host.exec(&[
        "nft",
        "delete",
        "rule",
        "inet",
        "cni_portmap",
        "prerouting",
        "handle",
        &handle,
    ]);
    assert_eq!(
        outside(8092, 40003),
        Ok("A".into()),
        "without the rule, from outside"
    );
}
