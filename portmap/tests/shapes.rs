//! Snapshot tests of the generated nft JSON for every rule shape, and the
//! same shapes applied once to a real nft in a private netns and listed back
//! (the schema is not validation, P11).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use cni::args::Owner;
use cni::testing::{privileged, TestNetns};
use portmap::config::{self, ContainerIps};
use portmap::installed::Listing;
use portmap::plan::{self, PodPlan};

fn owner() -> Owner {
    Owner::new("pmnet", "ctr1", "eth0")
}

fn ips(v4: bool, v6: bool) -> ContainerIps {
    ContainerIps {
        v4: v4.then(|| "10.22.0.5".parse().unwrap()),
        v6: v6.then(|| "fd00:22::5".parse().unwrap()),
    }
}

fn plan_of(extra: &str, mappings: &str, ips: ContainerIps) -> PodPlan {
    let conf = format!(
        r#"{{"cniVersion":"1.0.0","name":"pmnet","type":"portmap"{extra},
            "runtimeConfig":{{"portMappings":{mappings}}}}}"#
    );
    let cfg = config::parse(conf.as_bytes()).unwrap();
    plan::pod_plan(&cfg, &owner(), ips)
}

const TCP: &str = r#"[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]"#;

/// Every shape the plugin generates: (name, plan).
fn shapes() -> Vec<(&'static str, PodPlan)> {
    vec![
        ("v4", plan_of("", TCP, ips(true, false))),
        ("v6", plan_of("", TCP, ips(false, true))),
        (
            "dual_stack",
            plan_of(
                "",
                r#"[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},
                    {"hostPort":8081,"containerPort":81,"protocol":"udp"}]"#,
                ips(true, true),
            ),
        ),
        (
            "host_ip",
            plan_of(
                "",
                r#"[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"192.0.2.1"},
                    {"hostPort":8083,"containerPort":83,"protocol":"tcp","hostIP":"2001:db8::1"},
                    {"hostPort":8084,"containerPort":84,"protocol":"tcp","hostIP":"::"}]"#,
                ips(true, true),
            ),
        ),
        (
            "snat_off",
            plan_of(r#","snat":false"#, TCP, ips(true, true)),
        ),
        (
            "masq_all",
            plan_of(r#","masqAll":true"#, TCP, ips(true, true)),
        ),
        (
            "conditions",
            plan_of(
                r#","conditionsV4":["ip","saddr","!=","203.0.113.0/24"],
                   "conditionsV6":["iifname { eth0, eth1 }","ip6 daddr != fd00::/8"],
                   "markMasqBit":5"#,
                TCP,
                ips(true, true),
            ),
        ),
        (
            "protocols",
            plan_of(
                "",
                r#"[{"hostPort":8080,"containerPort":80,"protocol":"TCP"},
                    {"hostPort":8080,"containerPort":80,"protocol":"udp"},
                    {"hostPort":8080,"containerPort":80,"protocol":"sctp"}]"#,
                ips(true, false),
            ),
        ),
    ]
}

#[test]
fn snapshots_of_every_shape() {
    for (name, p) in shapes() {
        insta::assert_json_snapshot!(format!("add_{name}"), p.add_batch());
    }
    insta::assert_json_snapshot!("skeleton", plan::skeleton_batch(13, false));
    let (_, p) = &shapes()[2];
    insta::assert_json_snapshot!(
        "delete",
        plan::delete_batch(&p.keys(), &[p.chain.clone()].into())
    );
}

#[test]
fn chain_names_and_comments() {
    assert_eq!(plan::chain_name(&owner()).len(), 20);
    assert_ne!(
        plan::chain_name(&owner()),
        plan::chain_name(&Owner::new("pmnet", "ctr1", "eth1"))
    );
    assert_eq!(plan::comment(&owner()), "pmnet/ctr1/eth0");
    let long = Owner::new(&"n".repeat(80), &"c".repeat(64), "eth0");
    let c = plan::comment(&long);
    assert!(
        c.len() <= 127 && c.ends_with(&plan::chain_name(&long)),
        "{c}"
    );
}

fn nft_in(ns: &TestNetns, batch: &serde_json::Value) -> String {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft", "-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(batch.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft rejected {batch}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_shape_applies_to_real_nft_and_lists_back() {
    if !privileged("every_shape_applies_to_real_nft_and_lists_back") {
        return;
    }
    for (name, p) in shapes() {
        let ns = TestNetns::new("sh");
        nft_in(&ns, &plan::skeleton_batch(p.mark_bit, false));
        // The skeleton is idempotent (flush + re-add of static rules).
        nft_in(&ns, &plan::skeleton_batch(p.mark_bit, true));
        nft_in(&ns, &p.add_batch());
        let listing = Listing::parse(&nft_in(
            &ns,
            &serde_json::json!({"nftables": [{"list": {"table": {"family": "inet", "name": plan::TABLE}}}]}),
        ));
        let mut installed: Vec<_> = listing.rules_of(&p.chain).filter_map(|r| r.dnat).collect();
        let mut expected = p.dnats.clone();
        installed.sort();
        expected.sort();
        assert_eq!(installed, expected, "{name}: dnat rules read back");
        assert_eq!(
            listing.elements_of(&p.chain, &p.comment),
            p.keys(),
            "{name}: map elements read back"
        );
        assert!(listing
            .rules_of(&p.chain)
            .all(|r| r.comment.as_deref() == Some("pmnet/ctr1/eth0")));
        // Re-ADD of the same owner and DEL also apply.
        nft_in(&ns, &p.replace_batch(&p.keys(), true));
        nft_in(
            &ns,
            &plan::delete_batch(&p.keys(), &[p.chain.clone()].into()),
        );
        let after = Listing::parse(&nft_in(
            &ns,
            &serde_json::json!({"nftables": [{"list": {"table": {"family": "inet", "name": plan::TABLE}}}]}),
        ));
        assert!(
            after.elements.is_empty() && after.rules.is_empty(),
            "{name}: {after:?}"
        );
    }
}
