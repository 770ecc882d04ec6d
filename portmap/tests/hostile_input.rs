//! portmap against hostile and bad input (issue #15 §4): the common table of
//! `cni::testing::hostile` plus portmap's own rows (ports, protocols,
//! hostIPs, conditions, backends, sizes). Every row runs the real binary in
//! a throwaway host netns and must change nothing (nft ruleset, sysctls such
//! as route_localnet, `/run/cni-portmap` state); the control ADD at the end
//! shows the snapshot sees portmap's work.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cni::testing::hostile::{err, Row, Stdin, World, COMMON_ROWS};
use cni::testing::privileged;

/// `runtimeConfig.portMappings` with one mapping made of `$m`.
macro_rules! mapping {
    ($m:literal) => {
        Stdin::Fields(concat!(
            r#""capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":["#,
            $m,
            "]}"
        ))
    };
}

/// 100,000 good mappings, then one with hostPort 0.
fn many_mappings_last_bad() -> String {
    let good = r#"{"hostPort":8080,"containerPort":80,"protocol":"tcp"},"#.repeat(100_000);
    format!(
        r#"{{"cniVersion":"1.1.0","name":"hostile","type":"portmap","prevResult":@PREV@,"runtimeConfig":{{"portMappings":[{good}{{"hostPort":0,"containerPort":80}}]}}}}"#
    )
}

/// A 1 MB condition string whose last address is invalid.
fn huge_condition() -> String {
    format!(
        r#"{{"cniVersion":"1.1.0","name":"hostile","type":"portmap","prevResult":@PREV@,"conditionsV4":["ip saddr {{ {}10.0.0.300 }}"]}}"#,
        "10.0.0.1, ".repeat(100_000)
    )
}

const ROWS: &[Row] = &[
    err(
        "host-port-0",
        "ADD",
        mapping!(r#"{"hostPort":0,"containerPort":80,"protocol":"tcp"}"#),
        7,
    ),
    err(
        "host-port-65536",
        "ADD",
        mapping!(r#"{"hostPort":65536,"containerPort":80}"#),
        7,
    ),
    err(
        "host-port-negative",
        "ADD",
        mapping!(r#"{"hostPort":-80,"containerPort":80}"#),
        7,
    ),
    err(
        "host-port-fractional",
        "ADD",
        mapping!(r#"{"hostPort":80.5,"containerPort":80}"#),
        7,
    ),
    err(
        "host-port-string",
        "ADD",
        mapping!(r#"{"hostPort":"8080","containerPort":80}"#),
        7,
    ),
    err(
        "host-port-huge",
        "ADD",
        mapping!(r#"{"hostPort":1e300,"containerPort":80}"#),
        7,
    ),
    err(
        "host-port-u64-overflow",
        "ADD",
        mapping!(r#"{"hostPort":18446744073709551616,"containerPort":80}"#),
        7,
    ),
    err(
        "host-port-missing",
        "ADD",
        mapping!(r#"{"containerPort":80}"#),
        7,
    ),
    err(
        "host-port-0-check",
        "CHECK",
        mapping!(r#"{"hostPort":0,"containerPort":80}"#),
        7,
    ),
    err(
        "container-port-0",
        "ADD",
        mapping!(r#"{"hostPort":8080,"containerPort":0}"#),
        7,
    ),
    err(
        "container-port-65536",
        "ADD",
        mapping!(r#"{"hostPort":8080,"containerPort":65536}"#),
        7,
    ),
    err(
        "container-port-null",
        "ADD",
        mapping!(r#"{"hostPort":8080,"containerPort":null}"#),
        7,
    ),
    err(
        "protocol-icmp",
        "ADD",
        mapping!(r#"{"hostPort":8080,"containerPort":80,"protocol":"icmp"}"#),
        7,
    ),
    err(
        "protocol-number",
        "ADD",
        mapping!(r#"{"hostPort":8080,"containerPort":80,"protocol":6}"#),
        7,
    ),
    err(
        "protocol-nul",
        "ADD",
        mapping!(r#"{"hostPort":8080,"containerPort":80,"protocol":"tcp\u0000"}"#),
        7,
    ),
    err(
        "protocol-list",
        "ADD",
        mapping!(r#"{"hostPort":8080,"containerPort":80,"protocol":"tcp,udp"}"#),
        7,
    ),
    err(
        "host-ip-octet-300",
        "ADD",
        mapping!(r#"{"hostPort":8080,"containerPort":80,"hostIP":"10.0.0.300"}"#),
        7,
    ),
    err(
        "host-ip-cidr",
        "ADD",
        mapping!(r#"{"hostPort":8080,"containerPort":80,"hostIP":"10.0.0.1/24"}"#),
        7,
    ),
    err(
        "host-ip-garbage-v6",
        "ADD",
        mapping!(r#"{"hostPort":8080,"containerPort":80,"hostIP":"::ffff:zz"}"#),
        7,
    ),
    err(
        "host-ip-number",
        "ADD",
        mapping!(r#"{"hostPort":8080,"containerPort":80,"hostIP":167772161}"#),
        7,
    ),
    err(
        "host-ip-zone",
        "ADD",
        mapping!(r#"{"hostPort":8080,"containerPort":80,"hostIP":"fe80::1%eth0"}"#),
        7,
    ),
    err("mapping-null", "ADD", mapping!("null"), 7),
    err("mapping-string", "ADD", mapping!(r#""8080:80""#), 7),
    err(
        "port-mappings-object",
        "ADD",
        Stdin::Fields(r#""runtimeConfig":{"portMappings":{"hostPort":8080}}"#),
        7,
    ),
    err(
        "runtime-config-string",
        "ADD",
        Stdin::Fields(r#""runtimeConfig":"portMappings""#),
        7,
    ),
    err("snat-string", "ADD", Stdin::Fields(r#""snat":"yes""#), 7),
    err("masq-all-number", "ADD", Stdin::Fields(r#""masqAll":1"#), 7),
    err(
        "mark-masq-bit-32",
        "ADD",
        Stdin::Fields(r#""markMasqBit":32"#),
        7,
    ),
    err(
        "mark-masq-bit-negative",
        "ADD",
        Stdin::Fields(r#""markMasqBit":-1"#),
        7,
    ),
    err(
        "mark-masq-bit-fractional",
        "ADD",
        Stdin::Fields(r#""markMasqBit":1.5"#),
        7,
    ),
    err(
        "external-set-mark-chain-with-nftables",
        "ADD",
        Stdin::Fields(r#""backend":"nftables","externalSetMarkChain":"KUBE-MARK-MASQ""#),
        7,
    ),
    err(
        "external-set-mark-chain-restore-injection",
        "ADD",
        Stdin::Fields(r#""externalSetMarkChain":"KUBE-MARK-MASQ\nCOMMIT\n*filter""#),
        7,
    ),
    err(
        "backend-iptables-nft-conditions",
        "ADD",
        Stdin::Fields(r#""backend":"iptables","conditionsV4":["ip saddr 198.18.0.1"]"#),
        7,
    ),
    err(
        "backend-unknown",
        "ADD",
        Stdin::Fields(r#""backend":"ebpf""#),
        7,
    ),
    err(
        "conditions-iptables-syntax-with-nftables",
        "ADD",
        Stdin::Fields(r#""backend":"nftables","conditionsV4":["-s 198.18.0.1"]"#),
        7,
    ),
    err(
        "conditions-iptables-restore-injection",
        "ADD",
        Stdin::Fields(r#""conditionsV4":["-s","198.18.0.1\nCOMMIT\n*filter\n-F"]"#),
        7,
    ),
    err(
        "conditions-iptables-quote-injection",
        "ADD",
        Stdin::Fields(r#""conditionsV4":["-m","comment","--comment","x\" -j ACCEPT"]"#),
        7,
    ),
    err(
        "conditions-nft-injection",
        "ADD",
        Stdin::Fields(r#""conditionsV4":["ip saddr 198.18.0.1 accept; flush ruleset"]"#),
        7,
    ),
    err(
        "conditions-newline-injection",
        "ADD",
        Stdin::Fields(r#""conditionsV4":["ip saddr 198.18.0.1\nflush ruleset"]"#),
        7,
    ),
    err(
        "conditions-not-list",
        "ADD",
        Stdin::Fields(r#""conditionsV4":"ip saddr 198.18.0.1""#),
        7,
    ),
    err(
        "conditions-v6-bad-address",
        "ADD",
        Stdin::Fields(r#""conditionsV6":["ip6 saddr 10.0.0.1"]"#),
        7,
    ),
    err(
        "conditions-check",
        "CHECK",
        Stdin::Fields(r#""conditionsV4":["jump KUBE-SERVICES"]"#),
        7,
    ),
    err("conditions-1mb", "ADD", Stdin::Gen(huge_condition), 7),
    err(
        "100k-mappings-last-bad",
        "ADD",
        Stdin::Gen(many_mappings_last_bad),
        7,
    ),
    err("prev-result-missing", "ADD", Stdin::NoPrev(""), 7),
    err("prev-result-missing-check", "CHECK", Stdin::NoPrev(""), 7),
    // Config errors fail DEL too (as upstream), before anything is touched.
    err(
        "del-malformed-json",
        "DEL",
        Stdin::Raw(b"{\"cniVersion\":"),
        6,
    ),
];

#[test]
fn hostile_input_changes_nothing() {
    if !privileged("hostile_input_changes_nothing") {
        return;
    }
    let world = World::new("portmap", Path::new(env!("CARGO_BIN_EXE_portmap")));
    let n = world.run_rows(COMMON_ROWS) + world.run_rows(ROWS);
    assert!(n >= 40, "only {n} rows");
    eprintln!("portmap: {n} hostile rows");
    world.control(
        "ADD",
        mapping!(r#"{"hostPort":8080,"containerPort":80,"protocol":"tcp"}"#),
        true,
    );
    // Issue #15 §5: the state the control ADD wrote is 0600 in 0700 dirs.
    let ino = std::fs::metadata(world.host.path()).unwrap().ino();
    let dir = format!("/run/cni-portmap/netns-{ino}");
    let modes = private_modes(&[
        Path::new("/run/cni-portmap"),
        Path::new(&dir),
        Path::new(&format!("{dir}.lock")),
    ]);
    assert!(
        modes.len() >= 4,
        "expected the dir, lock and an index: {modes:?}"
    );
}

/// (path, mode) of every path given and, for directories, everything in
/// them (non-recursive for the shared /run/cni-portmap); asserts 0700 dirs
/// and 0600 files.
fn private_modes(paths: &[&Path]) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let mut all = vec![p.to_path_buf()];
        if i > 0 && p.is_dir() {
            all.extend(std::fs::read_dir(p).unwrap().flatten().map(|e| e.path()));
        }
        for q in all {
            let m = std::fs::metadata(&q).unwrap();
            let mode = m.permissions().mode() & 0o777;
            let want = if m.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode, want, "{} is {mode:o}", q.display());
            out.push((q.display().to_string(), mode));
        }
    }
    out
}
