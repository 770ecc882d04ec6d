//! tuning against hostile and bad input (issue #15 §4): the common table of
//! `cni::testing::hostile` plus tuning's own rows (sysctl keys that escape
//! `/proc/sys/net`, values, MACs, link attributes, CNI_ARGS, dataDir). Every
//! row runs the real binary in a throwaway host netns and must change
//! nothing: no sysctl, no link attribute, no backup file. The control ADD at
//! the end shows the snapshot sees tuning's work.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cni::testing::hostile::{err, ok, Row, Stdin, World, COMMON_ROWS};
use cni::testing::privileged;

/// Fields with the world's own dataDir, so nothing lands in /run/cni/tuning.
macro_rules! f {
    () => {
        Stdin::Fields(r#""dataDir":"@DATADIR@""#)
    };
    ($f:literal) => {
        Stdin::Fields(concat!(r#""dataDir":"@DATADIR@","#, $f))
    };
}

const GARBAGE_ARGS: &[(&str, Option<&str>)] = &[("CNI_ARGS", Some("garbage"))];

const ROWS: &[Row] = &[
    err(
        "sysctl-kernel",
        "ADD",
        f!(r#""sysctl":{"kernel.hostname":"pwned"}"#),
        7,
    ),
    err(
        "sysctl-dotdot",
        "ADD",
        f!(r#""sysctl":{"net/../kernel/hostname":"pwned"}"#),
        7,
    ),
    err(
        "sysctl-dotdot-dotted",
        "ADD",
        f!(r#""sysctl":{"net.ipv4.conf.eth0/../../../../kernel/hostname":"pwned"}"#),
        7,
    ),
    err(
        "sysctl-absolute",
        "ADD",
        f!(r#""sysctl":{"/proc/sys/kernel/hostname":"pwned"}"#),
        7,
    ),
    err(
        "sysctl-absolute-net",
        "ADD",
        f!(r#""sysctl":{"/proc/sys/net/core/somaxconn":"1"}"#),
        7,
    ),
    err("sysctl-empty-key", "ADD", f!(r#""sysctl":{"":"1"}"#), 7),
    err("sysctl-net-alone", "ADD", f!(r#""sysctl":{"net":"1"}"#), 7),
    err(
        "sysctl-nul-in-key",
        "ADD",
        f!(r#""sysctl":{"net.core.somaxconn\u0000":"1"}"#),
        7,
    ),
    err(
        "sysctl-nonexistent-key",
        "ADD",
        f!(r#""sysctl":{"net.core.does_not_exist":"1"}"#),
        999,
    ),
    err(
        "sysctl-duplicate-key",
        "ADD",
        f!(r#""sysctl":{"net.core.somaxconn":"1","net.core.somaxconn":"2"}"#),
        7,
    ),
    err(
        "sysctl-two-spellings",
        "ADD",
        f!(r#""sysctl":{"net.core.somaxconn":"1","net/core/somaxconn":"2"}"#),
        7,
    ),
    err(
        "sysctl-value-object",
        "ADD",
        f!(r#""sysctl":{"net.core.somaxconn":{"v":1}}"#),
        7,
    ),
    err(
        "sysctl-value-bool",
        "ADD",
        f!(r#""sysctl":{"net.core.somaxconn":true}"#),
        7,
    ),
    err(
        "sysctl-value-fractional",
        "ADD",
        f!(r#""sysctl":{"net.core.somaxconn":1.5}"#),
        7,
    ),
    err(
        "sysctl-not-object",
        "ADD",
        f!(r#""sysctl":["net.core.somaxconn"]"#),
        7,
    ),
    err(
        "sysctl-args-cni-kernel",
        "ADD",
        f!(r#""args":{"cni":{"sysctl":{"kernel.hostname":"pwned"}}}"#),
        7,
    ),
    err(
        "sysctl-check-kernel",
        "CHECK",
        f!(r#""sysctl":{"kernel.hostname":"pwned"}"#),
        7,
    ),
    err("mac-garbage", "ADD", f!(r#""mac":"zz:zz:zz:zz:zz:zz""#), 7),
    err("mac-short", "ADD", f!(r#""mac":"02:00:00:00:01""#), 7),
    err(
        "mac-multicast",
        "ADD",
        f!(r#""mac":"01:00:5e:00:00:01""#),
        7,
    ),
    err("mac-number", "ADD", f!(r#""mac":42"#), 7),
    err(
        "mac-runtime-config",
        "ADD",
        f!(r#""runtimeConfig":{"mac":"not-a-mac"}"#),
        7,
    ),
    err(
        "mac-args-cni",
        "ADD",
        f!(r#""args":{"cni":{"mac":"02:00:00:00:00:0g"}}"#),
        7,
    ),
    err("mac-cni-args", "ADD", f!(), 7).env(&[("CNI_ARGS", Some("MAC=02-00-zz"))]),
    err("mtu-negative", "ADD", f!(r#""mtu":-5"#), 7),
    err("mtu-fractional", "ADD", f!(r#""mtu":1500.5"#), 7),
    err("mtu-string", "ADD", f!(r#""mtu":"1500""#), 7),
    err("mtu-u32-overflow", "ADD", f!(r#""mtu":4294967296"#), 7),
    err("txqlen-negative", "ADD", f!(r#""txQLen":-1"#), 7),
    err("promisc-string", "ADD", f!(r#""promisc":"yes""#), 7),
    err("allmulti-number", "ADD", f!(r#""allmulti":1"#), 7),
    err(
        "args-cni-mtu-string",
        "ADD",
        f!(r#""args":{"cni":{"mtu":"big"}}"#),
        7,
    ),
    err("args-not-object", "ADD", f!(r#""args":"cni""#), 7),
    err(
        "data-dir-relative",
        "ADD",
        Stdin::Fields(r#""dataDir":"../../etc""#),
        7,
    ),
    err("data-dir-number", "ADD", Stdin::Fields(r#""dataDir":5"#), 7),
    err(
        "allowlist-string",
        "ADD",
        f!(r#""sysctlAllowlist":"yes""#),
        7,
    ),
    err(
        "allowlist-unknown-key",
        "ADD",
        f!(r#""sysctlAllowlist":{"required":true,"path":"/etc/shadow"}"#),
        7,
    ),
    err("cni-args-garbage", "ADD", f!(r#""mtu":1400"#), 4).env(GARBAGE_ARGS),
    err("cni-args-double-equals", "ADD", f!(r#""mtu":1400"#), 4)
        .env(&[("CNI_ARGS", Some("MAC=a=b"))]),
    err("cni-args-empty-key", "CHECK", f!(r#""mtu":1400"#), 4).env(&[("CNI_ARGS", Some("=x"))]),
    err("cni-args-unknown-key", "ADD", f!(r#""mtu":1400"#), 4)
        .env(&[("CNI_ARGS", Some("FOO=bar"))]),
    err(
        "prev-result-missing",
        "ADD",
        Stdin::NoPrev(r#""dataDir":"@DATADIR@","mtu":1400"#),
        7,
    ),
    // Valid config, unusable netns: nothing applied, no backup left.
    err(
        "netns-nonexistent",
        "ADD",
        f!(r#""mtu":1400,"sysctl":{"net.core.somaxconn":"1"}"#),
        999,
    )
    .env(&[("CNI_NETNS", Some("/run/netns/cnt-hostile-does-not-exist"))]),
    // The kernel refuses the MTU: everything applied before it is undone.
    err(
        "mtu-kernel-refuses",
        "ADD",
        f!(r#""sysctl":{"net.core.somaxconn":"77"},"promisc":true,"mtu":70000"#),
        999,
    ),
    // DEL without a backup restores nothing and succeeds.
    ok("del-never-added", "DEL", f!()),
    ok("del-netns-fifo", "DEL", f!()).env(&[("CNI_NETNS", Some("@FIFO@"))]),
];

#[test]
fn hostile_input_changes_nothing() {
    if !privileged("hostile_input_changes_nothing") {
        return;
    }
    let world = World::new("tuning", Path::new(env!("CARGO_BIN_EXE_tuning")));
    let n = world.run_rows(COMMON_ROWS) + world.run_rows(ROWS);
    assert!(n >= 40, "only {n} rows");
    eprintln!("tuning: {n} hostile rows");
    world.control("ADD", f!(r#""mtu":1400"#), true);
}
