//! Real TCP traffic through the shaping the real binary installs: the rate
//! the TBF qdiscs release, counted by the kernel, within ±10% of the
//! configured rate in each direction at two rates, an unshaped pod much
//! faster, and `unshapedSubnets` traffic bypassing the shaper while other
//! traffic stays shaped. Each measurement is a 1.5 s window after a 0.3 s
//! warm-up; `conformance::throughput` says why the bounds hold on a loaded
//! machine (and re-measures only a too-slow result, printing why).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use conformance::throughput::{
    measure_in_process, measure_within, shaped_bounds, CountAt, Counter, Rates,
};
use serde_json::json;

const WARMUP: Duration = Duration::from_millis(300);
const WINDOW: Duration = Duration::from_millis(1500);
/// An unshaped flow only has to beat a lower bound by far; a short window
/// spares the CPU a multi-Gbit/s transfer.
const UNSHAPED_WINDOW: Duration = Duration::from_millis(500);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The rates of TCP over pod `n`'s 10.<net>.n.0/24 pair, to the pod or
/// from it, counted at `at` in the host netns over `window`.
fn rates(
    w: &World,
    (n, net, to_pod): (usize, u8, bool),
    at: &CountAt,
    window: Duration,
) -> Result<Rates, String> {
    let pod = w.pod(n);
    let host_ip = ip(&format!("10.{net}.{}.1", pod.n));
    let pod_ip = ip(&format!("10.{net}.{}.2", pod.n));
    let (host, ns) = (w.host.path(), pod.ns.path());
    let counter = Counter::open(&host, at.clone()).map_err(|e| e.to_string())?;
    let t = if to_pod {
        measure_in_process(
            &host,
            &ns,
            SocketAddr::new(pod_ip, 0),
            &counter,
            WARMUP,
            window,
        )
    } else {
        measure_in_process(
            &ns,
            &host,
            SocketAddr::new(host_ip, 0),
            &counter,
            WARMUP,
            window,
        )
    };
    t.map(|t| t.rates()).map_err(|e| e.to_string())
}

/// Asserts the flow's rate at `at` is within `[low, high]`, printing every
/// attempt (and why one was repeated).
fn assert_rate(what: &str, low: f64, high: f64, measure: impl FnMut() -> Result<Rates, String>) {
    match measure_within(low, high, measure) {
        Ok(text) => eprintln!("{what}: {text}"),
        Err(e) => panic!("{what}: {e}"),
    }
}

fn assert_shaped(w: &World, n: usize, net: u8, to_pod: bool, at: CountAt, rate: u64, what: &str) {
    let (low, high) = shaped_bounds(rate as f64);
    assert_rate(&format!("{what} ({at})"), low, high, || {
        rates(w, (n, net, to_pod), &at, WINDOW)
    });
}

/// Asserts the flow is far faster than any shaping in the test could let it be.
fn assert_unshaped(
    w: &World,
    n: usize,
    net: u8,
    to_pod: bool,
    at: CountAt,
    above: f64,
    what: &str,
) {
    assert_rate(&format!("{what} ({at})"), above, f64::INFINITY, || {
        rates(w, (n, net, to_pod), &at, UNSHAPED_WINDOW)
    });
}

#[test]
fn shaped_rates_hold_in_both_directions_at_two_rates() {
    if !cni::testing::privileged("shaped_rates_hold_in_both_directions_at_two_rates") {
        return;
    }
    let w = World::new(2);
    let pod = w.pod(0);
    for mbit in [10u64, 50] {
        let rate = mbit * 1_000_000;
        // A burst of 1 ms at the rate (but at least 2 full frames) so it does not dominate.
        let burst = (rate / 1000).max(8 * 3000);
        let conf = w.conf(
            pod,
            "1.1.0",
            json!({"ingressRate": rate, "ingressBurst": burst, "egressRate": rate, "egressBurst": burst}),
        );
        let added = w.run(pod, "ADD", &conf);
        added.assert_ok();
        let ifb = ifb_of(&added.json());
        let veth = CountAt::Tbf(pod.host_veth.clone());
        assert_shaped(
            &w,
            0,
            77,
            true,
            veth,
            rate,
            &format!("{mbit} Mbit/s to pod"),
        );
        let ifb = CountAt::Tbf(ifb);
        assert_shaped(
            &w,
            0,
            77,
            false,
            ifb,
            rate,
            &format!("{mbit} Mbit/s from pod"),
        );
        w.run(pod, "DEL", &conf).assert_ok();
    }
    // The unshaped pod on the same host: far above the highest rate shaped
    // above (50 Mbit/s), both ways.
    let veth1 = w.pod(1).host_veth.clone();
    assert_unshaped(
        &w,
        1,
        77,
        true,
        CountAt::LinkTx(veth1.clone()),
        100e6,
        "unshaped to pod",
    );
    assert_unshaped(
        &w,
        1,
        77,
        false,
        CountAt::LinkRx(veth1),
        100e6,
        "unshaped from pod",
    );
}

#[test]
fn unshaped_subnets_bypass_the_shaper() {
    if !cni::testing::privileged("unshaped_subnets_bypass_the_shaper") {
        return;
    }
    let w = World::new(1);
    let pod = w.pod(0);
    let veth = pod.host_veth.clone();
    let rate = 10_000_000u64;
    let conf = w.conf(
        pod,
        "1.1.0",
        json!({"ingressRate": rate, "ingressBurst": 24_000, "egressRate": rate, "egressBurst": 24_000,
               "unshapedSubnets": ["10.78.0.0/16"]}),
    );
    let added = w.run(pod, "ADD", &conf);
    added.assert_ok();
    let ifb = ifb_of(&added.json());
    // 10.77.x: shaped both ways (destination of egress, source of ingress).
    let to_tbf = CountAt::Tbf(veth.clone());
    assert_shaped(&w, 0, 77, true, to_tbf, rate, "shaped subnet to pod");
    let from_tbf = CountAt::Tbf(ifb.clone());
    assert_shaped(&w, 0, 77, false, from_tbf, rate, "shaped subnet from pod");
    // 10.78.x: bypasses; far above the 10 Mbit/s shaping.
    let above = 10.0 * rate as f64;
    let to = CountAt::LinkTx(veth.clone());
    assert_unshaped(&w, 0, 78, true, to, above, "unshaped subnet to pod");
    let from = CountAt::LinkTx(ifb);
    assert_unshaped(&w, 0, 78, false, from, above, "unshaped subnet from pod");
    w.run(pod, "DEL", &conf).assert_ok();

    // shapedSubnets: the reverse.
    let conf = w.conf(
        pod,
        "1.1.0",
        json!({"egressRate": rate, "egressBurst": 24_000, "shapedSubnets": ["10.78.0.0/16"]}),
    );
    let added = w.run(pod, "ADD", &conf);
    added.assert_ok();
    let ifb = ifb_of(&added.json());
    let shaped = CountAt::Tbf(ifb.clone());
    assert_shaped(&w, 0, 78, false, shaped, rate, "shapedSubnets from pod");
    let free = CountAt::LinkTx(ifb);
    assert_unshaped(
        &w,
        0,
        77,
        false,
        free,
        above,
        "outside shapedSubnets from pod",
    );
    w.run(pod, "DEL", &conf).assert_ok();
}
