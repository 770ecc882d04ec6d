//! loopback against hostile and bad input (issue #15 §4): the common table
//! of `cni::testing::hostile` plus loopback's own rows (netns paths that
//! cannot be used, DEL that must succeed). Every row runs the real binary in
//! a throwaway host netns and must change nothing; the control ADD at the
//! end shows the snapshot sees loopback's work.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cni::testing::hostile::{err, ok, Row, Stdin, World, COMMON_ROWS};
use cni::testing::privileged;

const ROWS: &[Row] = &[
    // A netns that does not exist or cannot be entered is 999 (README).
    err("netns-nonexistent", "ADD", Stdin::Fields(""), 999)
        .env(&[("CNI_NETNS", Some("/run/netns/cnt-hostile-does-not-exist"))]),
    err("netns-nonexistent-check", "CHECK", Stdin::Fields(""), 999)
        .env(&[("CNI_NETNS", Some("/run/netns/cnt-hostile-does-not-exist"))]),
    err("netns-relative-garbage", "ADD", Stdin::Fields(""), 999)
        .env(&[("CNI_NETNS", Some("garbage;$(reboot)"))]),
    err("netns-procfs-not-ns", "ADD", Stdin::Fields(""), 999)
        .env(&[("CNI_NETNS", Some("/proc/self/status"))]),
    err("netns-other-ns-type", "ADD", Stdin::Fields(""), 999)
        .env(&[("CNI_NETNS", Some("/proc/self/ns/uts"))]),
    // CHECK of a lo that is down is a failed check (999), not a change.
    err("check-lo-down", "CHECK", Stdin::Fields(""), 999),
    // DEL: no netns, a gone one or a non-namespace is done; lo stays down.
    ok("del-netns-fifo", "DEL", Stdin::Fields("")).env(&[("CNI_NETNS", Some("@FIFO@"))]),
    ok("del-netns-file", "DEL", Stdin::Fields("")).env(&[("CNI_NETNS", Some("@FILE@"))]),
    ok("del-netns-nonexistent", "DEL", Stdin::Fields(""))
        .env(&[("CNI_NETNS", Some("/run/netns/cnt-hostile-does-not-exist"))]),
    ok("del-netns-empty", "DEL", Stdin::Fields("")).env(&[("CNI_NETNS", Some(""))]),
    ok(
        "del-bad-prev-result",
        "DEL",
        Stdin::NoPrev(r#""prevResult":"garbage""#),
    ),
    err(
        "del-malformed-json",
        "DEL",
        Stdin::Raw(b"{\"cniVersion\""),
        6,
    ),
    err(
        "del-bad-version",
        "DEL",
        Stdin::Text(r#"{"cniVersion":"2.0.0","name":"hostile","type":"loopback"}"#),
        1,
    ),
];

#[test]
fn hostile_input_changes_nothing() {
    if !privileged("hostile_input_changes_nothing") {
        return;
    }
    let world = World::new("loopback", Path::new(env!("CARGO_BIN_EXE_loopback")));
    let n = world.run_rows(COMMON_ROWS) + world.run_rows(ROWS);
    assert!(n >= 40, "only {n} rows");
    eprintln!("loopback: {n} hostile rows");
    world.control("ADD", Stdin::Fields(""), true);
}
