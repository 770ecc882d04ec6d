//! bandwidth against hostile and bad input (issue #15 §4): the common table
//! of `cni::testing::hostile` plus bandwidth's own rows (rates, bursts,
//! latency, subnets, versions). Every row runs the real binary in a
//! throwaway host netns and must change nothing (no qdisc, filter or IFB);
//! DEL ignores config errors and succeeds. The control ADD at the end shows
//! the snapshot sees bandwidth's work.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cni::testing::hostile::Stdin::Fields as F;
use cni::testing::hostile::{err, ok, Row, Stdin, World, COMMON_ROWS};
use cni::testing::privileged;

const ROWS: &[Row] = &[
    err(
        "ingress-rate-without-burst",
        "ADD",
        F(r#""ingressRate":1000000"#),
        7,
    ),
    err(
        "ingress-burst-without-rate",
        "ADD",
        F(r#""ingressBurst":1000000"#),
        7,
    ),
    err(
        "egress-rate-without-burst",
        "ADD",
        F(r#""egressRate":1000000"#),
        7,
    ),
    err(
        "ingress-rate-negative",
        "ADD",
        F(r#""ingressRate":-1000000,"ingressBurst":100000"#),
        7,
    ),
    err(
        "ingress-rate-fractional",
        "ADD",
        F(r#""ingressRate":1000000.5,"ingressBurst":100000"#),
        7,
    ),
    err(
        "ingress-rate-string",
        "ADD",
        F(r#""ingressRate":"1M","ingressBurst":100000"#),
        7,
    ),
    err(
        "ingress-rate-1e30",
        "ADD",
        F(r#""ingressRate":1e30,"ingressBurst":100000"#),
        7,
    ),
    err(
        "ingress-rate-u64-overflow",
        "ADD",
        F(r#""ingressRate":18446744073709551616,"ingressBurst":100000"#),
        7,
    ),
    err(
        "ingress-rate-below-8",
        "ADD",
        F(r#""ingressRate":7,"ingressBurst":100000"#),
        7,
    ),
    err(
        "ingress-rate-bool",
        "ADD",
        F(r#""ingressRate":true,"ingressBurst":100000"#),
        7,
    ),
    err(
        "ingress-burst-4gib",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":34359738368"#),
        7,
    ),
    err(
        "ingress-burst-negative",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":-1"#),
        7,
    ),
    err(
        "egress-burst-fractional",
        "ADD",
        F(r#""egressRate":1000000,"egressBurst":0.5"#),
        7,
    ),
    err(
        "egress-rate-null-burst-set",
        "ADD",
        F(r#""egressRate":null,"egressBurst":100000"#),
        7,
    ),
    err(
        "burst-shorter-than-a-tick",
        "ADD",
        F(r#""ingressRate":100000000000,"ingressBurst":8"#),
        7,
    ),
    err(
        "latency-0",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":100000,"latencyMs":0"#),
        7,
    ),
    err(
        "latency-10001",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":100000,"latencyMs":10001"#),
        7,
    ),
    err(
        "latency-negative",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":100000,"latencyMs":-25"#),
        7,
    ),
    err(
        "latency-string",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":100000,"latencyMs":"25ms""#),
        7,
    ),
    err(
        "max-burst-7",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":100000,"maxBurst":7"#),
        7,
    ),
    err(
        "max-burst-negative",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":100000,"maxBurst":-1"#),
        7,
    ),
    err(
        "shaped-subnet-prefix-33",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":100000,"shapedSubnets":["10.0.0.0/33"]"#),
        7,
    ),
    err(
        "shaped-subnet-garbage",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":100000,"shapedSubnets":["ten.zero/8"]"#),
        7,
    ),
    err(
        "unshaped-subnet-v6-garbage",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":100000,"unshapedSubnets":["fd00::/129"]"#),
        7,
    ),
    err(
        "shaped-and-unshaped",
        "ADD",
        F(
            r#""ingressRate":1000000,"ingressBurst":100000,"shapedSubnets":["10.0.0.0/8"],"unshapedSubnets":["10.1.0.0/16"]"#,
        ),
        7,
    ),
    err(
        "shaped-subnets-string",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":100000,"shapedSubnets":"10.0.0.0/8""#),
        7,
    ),
    err(
        "shaped-subnets-number",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":100000,"shapedSubnets":[10]"#),
        7,
    ),
    err(
        "runtime-bandwidth-string",
        "ADD",
        F(r#""runtimeConfig":{"bandwidth":"fast"}"#),
        7,
    ),
    err(
        "runtime-rate-negative",
        "ADD",
        F(r#""runtimeConfig":{"bandwidth":{"ingressRate":-1,"ingressBurst":1000}}"#),
        7,
    ),
    err(
        "runtime-rate-without-burst",
        "ADD",
        F(r#""runtimeConfig":{"bandwidth":{"egressRate":1000000}}"#),
        7,
    ),
    err(
        "check-rate-without-burst",
        "CHECK",
        F(r#""ingressRate":1000000"#),
        7,
    ),
    err(
        "check-latency-0",
        "CHECK",
        F(r#""egressRate":1000000,"egressBurst":100000,"latencyMs":0"#),
        7,
    ),
    err(
        "prev-result-missing",
        "ADD",
        Stdin::NoPrev(r#""ingressRate":1000000,"ingressBurst":100000"#),
        7,
    ),
    err(
        "version-0.2.0",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"0.2.0","name":"hostile","type":"bandwidth"}"#),
        1,
    ),
    err(
        "version-0.1.0",
        "CHECK",
        Stdin::Text(r#"{"cniVersion":"0.1.0","name":"hostile","type":"bandwidth"}"#),
        1,
    ),
    err(
        "version-empty-is-0.1.0",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"","name":"hostile","type":"bandwidth"}"#),
        1,
    ),
    // A netns that does not exist: the host veth cannot be found (999).
    err(
        "netns-nonexistent",
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":100000"#),
        999,
    )
    .env(&[("CNI_NETNS", Some("/run/netns/cnt-hostile-does-not-exist"))]),
    // DEL ignores config errors and finds nothing of this attachment.
    ok(
        "del-rate-without-burst",
        "DEL",
        F(r#""ingressRate":1000000"#),
    ),
    ok(
        "del-latency-garbage",
        "DEL",
        F(r#""latencyMs":"x","shapedSubnets":["x"]"#),
    ),
    ok("del-netns-fifo", "DEL", F("")).env(&[("CNI_NETNS", Some("@FIFO@"))]),
    ok("del-netns-nonexistent", "DEL", F(""))
        .env(&[("CNI_NETNS", Some("/run/netns/cnt-hostile-does-not-exist"))]),
];

#[test]
fn hostile_input_changes_nothing() {
    if !privileged("hostile_input_changes_nothing") {
        return;
    }
    let world = World::new("bandwidth", Path::new(env!("CARGO_BIN_EXE_bandwidth")));
    let n = world.run_rows(COMMON_ROWS) + world.run_rows(ROWS);
    assert!(n >= 40, "only {n} rows");
    eprintln!("bandwidth: {n} hostile rows");
    world.control(
        "ADD",
        F(r#""ingressRate":1000000,"ingressBurst":100000"#),
        true,
    );
}
