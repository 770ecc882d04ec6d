//! Snapshot tests of the conflist editing on real-world conflists (each
//! before → after, the changes recorded, and the undo), plus the refusals.
//! Pure: bytes in, bytes out; no file is written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use installer::cli::{Cli, Cmd};
use installer::conflist::{chain, primary_file, unchain, ChainSpec, Chained};
use installer::json::{GoObject, Json, JsonExt};

use clap::Parser;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn spec(args: &[&str]) -> ChainSpec {
    let mut argv = vec!["cni-install", "once"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).unwrap().command {
        Cmd::Once(s) => s.chain_spec().unwrap(),
        other => panic!("parsed {other:?}"),
    }
}

fn parsed(bytes: &[u8]) -> Json {
    serde_json::from_slice(bytes).unwrap()
}

/// Chains `name` with `spec`, checks idempotency and that unchain gives back
/// the original meaning, and returns the snapshot text.
fn edit(name: &str, spec: &ChainSpec) -> String {
    let before = fixture(name);
    let after = chain(name, &before, spec).unwrap();
    assert!(!after.is_unchanged(), "{name}: nothing to chain");
    // Idempotent: chaining the result again changes nothing.
    let again = chain(&after.file, &after.bytes, spec).unwrap();
    assert!(
        again.is_unchanged(),
        "{name}: second chain changed {:?}",
        again.changes
    );
    assert_eq!(again.bytes, after.bytes);
    // Undo restores the original document (for a converted file: its only
    // plugin, the original conf, is what is left).
    let undone = unchain(&after.file, &after.bytes, &after.changes)
        .unwrap()
        .unwrap_or(after.bytes.clone());
    match &after.converted_from {
        None => assert_eq!(parsed(&undone), parsed(&before), "{name}: unchain"),
        Some(_) => {
            let doc = parsed(&undone);
            let plugins = doc.as_object().unwrap().get_map_key("plugins").unwrap();
            assert_eq!(
                plugins,
                &Json::Array(vec![parsed(&before)]),
                "{name}: unchain"
            );
        }
    }
    render(name, &after)
}

fn render(name: &str, after: &Chained) -> String {
    let changes: Vec<String> = after.changes.iter().map(|c| format!("{c:?}")).collect();
    format!(
        "input: {name}\noutput: {}\nconverted_from: {:?}\nchanges:\n  {}\n---\n{}",
        after.file,
        after.converted_from,
        changes.join("\n  "),
        String::from_utf8_lossy(&after.bytes)
    )
}

#[test]
fn containerd_default_keeps_its_portmap_and_gets_bandwidth() {
    insta::assert_snapshot!(edit("10-containerd-net.conflist", &spec(&[])));
}

#[test]
fn crio_bridge_gets_portmap_and_bandwidth_appended() {
    insta::assert_snapshot!(edit("11-crio-ipv4-bridge.conflist", &spec(&[])));
}

#[test]
fn podman4_keeps_its_tuning_and_unknown_top_level_args() {
    let spec = spec(&[
        "--chain",
        "portmap,bandwidth,tuning",
        "--tuning-config",
        r#"{"sysctl":{"net.ipv4.conf.IFNAME.arp_filter":"1"}}"#,
    ]);
    insta::assert_snapshot!(edit("87-podman.conflist", &spec));
}

#[test]
fn calico_upstream_bandwidth_keeps_its_place_and_gets_max_burst() {
    insta::assert_snapshot!(edit("10-calico.conflist", &spec(&[])));
}

#[test]
fn flannel_gets_bandwidth_after_its_portmap() {
    insta::assert_snapshot!(edit("10-flannel.conflist", &spec(&[])));
}

#[test]
fn cilium_aws_chaining_gets_bandwidth_after_cilium_cni() {
    insta::assert_snapshot!(edit("05-cilium-aws-chaining.conflist", &spec(&[])));
}

#[test]
fn multus_master_is_chained_inside_its_cluster_network_delegate() {
    insta::assert_snapshot!(edit("00-multus.conf", &spec(&[])));
}

#[test]
fn single_plugin_conf_becomes_a_conflist_like_libcni_builds_it() {
    insta::assert_snapshot!(edit("05-cilium.conf", &spec(&[])));
}

#[test]
fn go_spellings_are_matched_as_libcni_reads_them() {
    // `Type`/`Capabilities` are the portmap entry (Go struct fields fold
    // case); `MaxBurst: null` is absent; the top-level cniVersion is the last
    // one (a Go map), 1.1.0.
    insta::assert_snapshot!(edit("10-go-spelling.conflist", &spec(&[])));
}

#[test]
fn an_empty_chain_changes_nothing() {
    let before = fixture("05-cilium.conf");
    let after = chain("05-cilium.conf", &before, &spec(&["--chain", ""])).unwrap();
    assert!(after.is_unchanged());
    assert_eq!(after.bytes, before);
}

#[test]
fn unchain_keeps_what_others_changed_since() {
    let name = "11-crio-ipv4-bridge.conflist";
    let after = chain(name, &fixture(name), &spec(&[])).unwrap();
    // Someone edits our bandwidth entry: it is theirs now, and stays.
    let edited = String::from_utf8(after.bytes.clone())
        .unwrap()
        .replace("1000000", "2000000");
    let undone = unchain(name, edited.as_bytes(), &after.changes)
        .unwrap()
        .unwrap();
    let doc = parsed(&undone);
    let types: Vec<&str> = match doc.as_object().unwrap().get_map_key("plugins").unwrap() {
        Json::Array(p) => p
            .iter()
            .map(|p| {
                p.as_object()
                    .unwrap()
                    .get_struct_field("type")
                    .unwrap()
                    .as_str()
                    .unwrap()
            })
            .collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(types, ["bridge", "bandwidth"]);
}

#[test]
fn refusals_name_the_file_and_the_reason() {
    let refuse = |name: &str| {
        chain(name, &fixture(name), &spec(&[]))
            .unwrap_err()
            .to_string()
    };
    insta::assert_snapshot!([
        refuse("10-truncated.conflist"),
        refuse("10-old.conflist"),
        refuse("10-noversion.conflist"),
        refuse("10-future.conflist"),
        refuse("00-multus-thick.conf"),
        chain(
            "99-list.conf",
            br#"{"cniVersion":"1.0.0","name":"x","plugins":[]}"#,
            &spec(&[])
        )
        .unwrap_err()
        .to_string(),
        chain(
            "99-bad.conflist",
            br#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"ptp"},7]}"#,
            &spec(&[])
        )
        .unwrap_err()
        .to_string(),
        chain("99-array.conflist", b"[]", &spec(&[]))
            .unwrap_err()
            .to_string(),
    ]
    .join("\n"));
}

#[test]
fn primary_is_the_bytewise_first_conf_name() {
    let names: Vec<String> = [
        "20-b.conflist",
        "10-a.conf.bak",
        "Z.json",
        "10-a.conf",
        "05-x.txt",
        "10-a.conflist",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(primary_file(&names), Some("10-a.conf"));
    let upper: Vec<String> = vec!["a.conflist".into(), "Z.json".into()];
    assert_eq!(primary_file(&upper), Some("Z.json"));
    assert_eq!(primary_file(&["README".to_string()]), None);
}
