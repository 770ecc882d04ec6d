//! Real TCP traffic through the shaping the real binary installs: achieved
//! rate within ±10% of the configured rate in each direction at two rates,
//! an unshaped pod much faster, and `unshapedSubnets` traffic bypassing the
//! shaper while other traffic stays shaped. Each transfer is ~2.5 s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;

use common::*;
use serde_json::json;

const SECS: f64 = 2.5;
/// TBF counts whole frames: with MTU 1400 and TCP timestamps a full segment
/// carries 1348 payload bytes in a 1414-byte frame. Goodput × this = wire rate.
const WIRE_PER_GOODPUT: f64 = 1414.0 / 1348.0;
const CAP: u64 = 2_000_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Goodput in bit/s for pod `n` over the 10.<net>.n.0/24 pair, to the pod
/// or from it.
fn goodput(w: &World, n: usize, net: u8, to_pod: bool) -> f64 {
    let pod = w.pod(n);
    let host_ip = ip(&format!("10.{net}.{}.1", pod.n));
    let pod_ip = ip(&format!("10.{net}.{}.2", pod.n));
    let (host, ns) = (w.host.path(), pod.ns.path());
    let bytes = if to_pod {
        tcp_rate(&host, &ns, pod_ip, Some(host_ip), SECS, CAP)
    } else {
        tcp_rate(&ns, &host, host_ip, Some(pod_ip), SECS, CAP)
    };
    bytes * 8.0
}

fn rates(w: &World, n: usize, net: u8) -> (f64, f64) {
    (goodput(w, n, net, true), goodput(w, n, net, false))
}

/// Asserts the wire rate implied by `goodput` is within 10% of `want`;
/// `again` re-measures once when the first sample is off (a loaded machine
/// can starve the sender).
fn assert_near(what: &str, goodput: f64, want: f64, again: impl FnOnce() -> f64) {
    let within = |g: f64| (0.9..=1.1).contains(&(g * WIRE_PER_GOODPUT / want));
    let goodput = if within(goodput) {
        goodput
    } else {
        eprintln!(
            "{what}: {:.2} Mbit/s goodput is off, measuring again",
            goodput / 1e6
        );
        again()
    };
    let ratio = goodput * WIRE_PER_GOODPUT / want;
    eprintln!(
        "{what}: goodput {:.2} Mbit/s, wire {:.2} Mbit/s of {:.2} configured ({:.1}%)",
        goodput / 1e6,
        goodput * WIRE_PER_GOODPUT / 1e6,
        want / 1e6,
        ratio * 100.0
    );
    assert!(
        within(goodput),
        "{what}: {goodput} bit/s goodput is not within 10% of {want} on the wire"
    );
}

#[test]
fn shaped_rates_hold_in_both_directions_at_two_rates() {
    if !cni::testing::privileged("shaped_rates_hold_in_both_directions_at_two_rates") {
        return;
    }
    let w = World::new(2);
    let (pod, free) = (w.pod(0), w.pod(1));
    for mbit in [10u64, 50] {
        let rate = mbit * 1_000_000;
        // A burst of 1 ms at the rate (but at least 2 full frames) so it does not dominate.
        let burst = (rate / 1000).max(8 * 3000);
        let conf = w.conf(
            pod,
            "1.1.0",
            json!({"ingressRate": rate, "ingressBurst": burst, "egressRate": rate, "egressBurst": burst}),
        );
        w.run(pod, "ADD", &conf).assert_ok();
        let (to_pod, from_pod) = rates(&w, 0, 77);
        let want = rate as f64;
        assert_near(&format!("{mbit} Mbit/s to pod"), to_pod, want, || {
            goodput(&w, 0, 77, true)
        });
        assert_near(&format!("{mbit} Mbit/s from pod"), from_pod, want, || {
            goodput(&w, 0, 77, false)
        });
        w.run(pod, "DEL", &conf).assert_ok();
    }
    // The unshaped pod on the same host is far faster both ways.
    let (to_free, from_free) = rates(&w, 1, 77);
    eprintln!(
        "unshaped: {:.0} / {:.0} Mbit/s",
        to_free / 1e6,
        from_free / 1e6
    );
    assert!(
        to_free > 250e6 && from_free > 250e6,
        "{to_free} {from_free}"
    );
    let _ = free;
}

#[test]
fn unshaped_subnets_bypass_the_shaper() {
    if !cni::testing::privileged("unshaped_subnets_bypass_the_shaper") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let rate = 10_000_000u64;
    let conf = w.conf(
        pod,
        "1.1.0",
        json!({"ingressRate": rate, "ingressBurst": 24_000, "egressRate": rate, "egressBurst": 24_000,
               "unshapedSubnets": ["10.78.0.0/16"]}),
    );
    w.run(pod, "ADD", &conf).assert_ok();
    // 10.77.x: shaped both ways (destination of egress, source of ingress).
    let (to_pod, from_pod) = rates(&w, 0, 77);
    assert_near("shaped subnet to pod", to_pod, rate as f64, || {
        goodput(&w, 0, 77, true)
    });
    assert_near("shaped subnet from pod", from_pod, rate as f64, || {
        goodput(&w, 0, 77, false)
    });
    // 10.78.x: bypasses.
    let (to_pod, from_pod) = rates(&w, 0, 78);
    eprintln!(
        "unshaped subnet: {:.0} / {:.0} Mbit/s",
        to_pod / 1e6,
        from_pod / 1e6
    );
    assert!(
        to_pod > 10.0 * rate as f64 && from_pod > 10.0 * rate as f64,
        "{to_pod} {from_pod}"
    );
    w.run(pod, "DEL", &conf).assert_ok();

    // shapedSubnets: the reverse.
    let conf = w.conf(
        pod,
        "1.1.0",
        json!({"egressRate": rate, "egressBurst": 24_000, "shapedSubnets": ["10.78.0.0/16"]}),
    );
    w.run(pod, "ADD", &conf).assert_ok();
    let free = goodput(&w, 0, 77, false);
    let shaped = goodput(&w, 0, 78, false);
    assert_near("shapedSubnets from pod", shaped, rate as f64, || {
        goodput(&w, 0, 78, false)
    });
    assert!(free > 10.0 * rate as f64, "{free}");
    w.run(pod, "DEL", &conf).assert_ok();
}
