//! Issue #15 §5, against the real kernel: a `hostIP` that is not a local
//! address of the host netns is refused at ADD before any change; with the
//! drop of new connections to 127.0.0.0/8 from any interface but `lo` in
//! the real ruleset (CVE-2020-8558), 127.0.0.1:<hostPort> from the host
//! itself still works. (Not yet shown: a packet from another netns to
//! 127.0.0.1 through the node's veth being dropped; the client kernel would
//! not emit one in the attempts so far.)
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
    assert_eq!(
        tcp_get(&w.ext.path(), addr(NODE4, 8080)),
        Ok("A".into()),
        "node IP"
    );
    // The drop rule is in place (what closes it).
    let listing = w
        .host
        .exec(&["nft", "list", "chain", "inet", "cni_portmap", "prerouting"]);
    assert!(
        listing.contains("iifname != \"lo\" ip daddr 127.0.0.0/8 drop"),
        "{listing}"
    );
}
