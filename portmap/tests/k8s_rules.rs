//! Kubernetes' hostPort rule against the real kernel: a hostIP overlaps
//! the wildcard of its family (refused, naming the other attachment, in
//! either order), while distinct host addresses on one port and tcp vs udp
//! on one port all start and each answers on its own address — from a
//! remote host and from the host itself with any source address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

fn map(host_ip: &str, host_port: u16, container_port: u16, protocol: &str) -> serde_json::Value {
    json!({"hostPort": host_port, "containerPort": container_port, "protocol": protocol, "hostIP": host_ip})
}

fn add(w: &World, pod: &Pod, mappings: serde_json::Value) -> cni::testing::PluginRun {
    let conf = portmap_conf("1.0.0", Some(&pod.prev), mappings);
    w.portmap("ADD", &pod.id, &pod.ns.path().display().to_string(), &conf)
}

fn assert_refused(run: &cni::testing::PluginRun, other: &str, what: &str) {
    assert_ne!(run.code, 0, "{what}: ADD must fail: {}", run.stdout);
    let msg = run.json()["msg"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains(&format!("pmnet/{other}/eth0")),
        "{what}: the error names the other attachment: {msg}"
    );
}

/// A world with pods A and B, each serving its name on tcp/80 and udp/81.
fn two_serving_pods() -> (World, Pod, Pod, [Servers; 2]) {
    let w = World::new();
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    let servers = [serve(&a.ns, "A", 80, 81), serve(&b.ns, "B", 80, 81)];
    (w, a, b, servers)
}

#[test]
fn a_host_ip_and_the_wildcard_on_one_port_conflict_in_either_order() {
    if !cni::testing::privileged("a_host_ip_and_the_wildcard_on_one_port_conflict_in_either_order")
    {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    let _srv = serve(&a.ns, "A", 80, 81);
    add(
        &w,
        &a,
        json!([map("", 8080, 80, "tcp"), map(NODE4, 9090, 80, "tcp")]),
    )
    .assert_ok();

    let r = add(&w, &b, json!([map(NODE4, 8080, 80, "tcp")]));
    assert_refused(&r, "ctrA", "node IP after the wildcard");
    let r = add(&w, &b, json!([map("0.0.0.0", 9090, 80, "tcp")]));
    assert_refused(&r, "ctrA", "0.0.0.0 after a node IP");
    let r = add(&w, &b, json!([map("", 9090, 80, "tcp")]));
    assert_refused(&r, "ctrA", "the wildcard after a node IP");
    let r = add(&w, &b, json!([map(NODE6, 8080, 80, "tcp")]));
    assert_refused(&r, "ctrA", "an IPv6 hostIP after the dual-stack wildcard");

    // The refused ADDs left nothing behind; A still answers on both.
    assert!(!w.nft_ruleset().contains("ctrB"), "{}", w.nft_ruleset());
    assert_eq!(tcp_get(&w.ext.path(), addr(NODE4, 8080)), Ok("A".into()));
    assert_eq!(tcp_get(&w.ext.path(), addr(NODE4, 9090)), Ok("A".into()));
    // A port A does not claim is free for B.
    add(&w, &b, json!([map(NODE4, 9091, 80, "tcp")])).assert_ok();
}

#[test]
fn loopback_and_node_ip_on_one_port_both_start_and_answer_on_their_own_address() {
    if !cni::testing::privileged(
        "loopback_and_node_ip_on_one_port_both_start_and_answer_on_their_own_address",
    ) {
        return;
    }
    let (w, a, b, _servers) = two_serving_pods();
    add(
        &w,
        &a,
        json!([
            map("127.0.0.1", 8080, 80, "tcp"),
            map("127.0.0.1", 8081, 81, "udp")
        ]),
    )
    .assert_ok();
    add(
        &w,
        &b,
        json!([map(NODE4, 8080, 80, "tcp"), map(NODE4, 8081, 81, "udp")]),
    )
    .assert_ok();

    let host = w.host.path();
    assert_eq!(tcp_get(&host, addr("127.0.0.1", 8080)), Ok("A".into()));
    assert_eq!(tcp_get(&host, addr(NODE4, 8080)), Ok("B".into()));
    assert_eq!(tcp_get(&w.ext.path(), addr(NODE4, 8080)), Ok("B".into()));
    assert!(tcp_get(&w.ext.path(), addr("127.0.0.1", 8080)).is_err());
    // From the host with any source address.
    for (to, from, want) in [
        ("127.0.0.1", "127.0.0.1", "A"),
        ("127.0.0.1", NODE4, "A"),
        (NODE4, NODE4, "B"),
        (NODE4, "127.0.0.1", "B"),
    ] {
        assert_eq!(
            udp_get(&host, addr(to, 8081), Some(addr(from, 0))),
            Ok(want.into()),
            "udp to {to} from {from}"
        );
    }
    assert_eq!(
        udp_get(&w.ext.path(), addr(NODE4, 8081), None),
        Ok("B".into())
    );
}

#[test]
fn tcp_and_udp_on_one_port_both_start() {
    if !cni::testing::privileged("tcp_and_udp_on_one_port_both_start") {
        return;
    }
    let (w, a, b, _servers) = two_serving_pods();
    add(&w, &a, json!([map("", 8080, 80, "tcp")])).assert_ok();
    add(&w, &b, json!([map("", 8080, 81, "udp")])).assert_ok();
    for ns in [w.ext.path(), w.host.path()] {
        assert_eq!(tcp_get(&ns, addr(NODE4, 8080)), Ok("A".into()));
        assert_eq!(udp_get(&ns, addr(NODE4, 8080), None), Ok("B".into()));
    }
}
