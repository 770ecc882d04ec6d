//! noop against hostile and bad input (issue #15 §4): the common table of
//! `cni::testing::hostile` plus noop's own rows (its fields, CNI_ARGS, debug
//! files that are not regular files). Every row runs the real binary in a
//! throwaway host netns and must change nothing, and must not hang on a
//! FIFO or read a device forever.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cni::testing::hostile::Stdin::Fields as F;
use cni::testing::hostile::{err, Row, World, COMMON_ROWS};
use cni::testing::privileged;

const ROWS: &[Row] = &[
    // Debug files and command logs are read only when they are regular
    // files: a FIFO or a device is code 5 (I/O), never a hang.
    err(
        "bridge-nf-string",
        "ADD",
        F(r#""bridgeNfCallIptables":"yes""#),
        7,
    ),
    err(
        "bridge-nf-number",
        "ADD",
        F(r#""bridgeNfCallIptables":1"#),
        7,
    ),
    err(
        "bridge-nf-check",
        "CHECK",
        F(r#""bridgeNfCallIptables":[]"#),
        7,
    ),
    err("debug-file-number", "ADD", F(r#""debugFile":5"#), 7),
    err("command-log-list", "ADD", F(r#""commandLog":["a"]"#), 7),
    err("cni-args-garbage", "ADD", F(""), 4).env(&[("CNI_ARGS", Some("garbage"))]),
    err("cni-args-double-equals", "ADD", F(""), 4).env(&[("CNI_ARGS", Some("DEBUG=a=b"))]),
    err("cni-args-debug-empty", "ADD", F(""), 4).env(&[("CNI_ARGS", Some("DEBUG="))]),
    err("cni-args-garbage-del", "DEL", F(""), 4).env(&[("CNI_ARGS", Some(";;=;"))]),
    err(
        "debug-file-missing",
        "ADD",
        F(r#""debugFile":"@DIR@/missing.json""#),
        5,
    ),
    err("debug-file-fifo", "ADD", F(r#""debugFile":"@FIFO@""#), 5),
    err(
        "debug-file-directory",
        "ADD",
        F(r#""debugFile":"@DIR@""#),
        5,
    ),
    err(
        "debug-file-dev-zero",
        "ADD",
        F(r#""debugFile":"/dev/zero""#),
        5,
    ),
    err(
        "debug-file-not-json",
        "ADD",
        F(r#""debugFile":"@FILE@""#),
        6,
    ),
    err("debug-via-args-fifo", "CHECK", F(""), 5).env(&[("CNI_ARGS", Some("DEBUG=@FIFO@"))]),
];

#[test]
fn hostile_input_changes_nothing() {
    if !privileged("hostile_input_changes_nothing") {
        return;
    }
    let world = World::new("noop", Path::new(env!("CARGO_BIN_EXE_noop")));
    let n = world.run_rows(COMMON_ROWS) + world.run_rows(ROWS);
    assert!(n >= 40, "only {n} rows");
    eprintln!("noop: {n} hostile rows");
    // noop changes nothing even when it succeeds.
    world.control("ADD", F(""), false);
}
