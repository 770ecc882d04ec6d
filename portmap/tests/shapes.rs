//! Snapshot tests of the generated nft JSON for every rule shape, and the
//! same shapes applied once to a real nft in a private netns and listed back
//! (the schema is not validation, P11).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use cni::args::Owner;
use cni::testing::{privileged, TestNetns};
use portmap::config::{self, ContainerIps};
use portmap::nftables::installed::Listing;
use portmap::nftables::nfnl::{ElementOp, Nfnl};
use portmap::nftables::ruleset::{self, NftPod};
use portmap::nftables::{elements, skeleton};
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
        insta::assert_json_snapshot!(format!("add_{name}"), NftPod::new(&p).add_batch());
    }
    insta::assert_json_snapshot!("skeleton", skeleton::skeleton_batch());
    let (_, p) = &shapes()[2];
    insta::assert_json_snapshot!(
        "delete",
        ruleset::delete_batch(&elements::of(p), &BTreeSet::new())
    );
    let (_, p) = &shapes()[6];
    insta::assert_json_snapshot!(
        "delete_with_chain",
        ruleset::delete_batch(&elements::of(p), &p.chain.clone().into_iter().collect())
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

fn list(ns: &TestNetns) -> Listing {
    Listing::parse(&nft_in(ns, &ruleset::list_table_batch()))
}

/// Applies the skeleton (twice: it is idempotent) in a fresh netns.
fn prepared() -> TestNetns {
    let ns = TestNetns::new("sh");
    nft_in(&ns, &skeleton::skeleton_batch());
    nft_in(&ns, &skeleton::skeleton_batch());
    ns
}

fn assert_installed(name: &str, listing: &Listing, p: &PodPlan) {
    assert_eq!(
        listing.elements_of(&p.comment),
        elements::of(p).into_iter().collect::<BTreeSet<_>>(),
        "{name}: elements read back"
    );
    if let Some(chain) = &p.chain {
        let mut installed: Vec<_> = listing.rules_of(chain).filter_map(|r| r.dnat).collect();
        installed.sort();
        let mut expected = p.effective_dnats();
        expected.sort();
        assert_eq!(installed, expected, "{name}: dnat rules read back");
        assert!(listing
            .rules_of(chain)
            .all(|r| r.comment.as_deref() == Some("pmnet/ctr1/eth0")));
    }
}

#[test]
fn every_shape_applies_to_real_nft_and_lists_back() {
    if !privileged("every_shape_applies_to_real_nft_and_lists_back") {
        return;
    }
    for (name, p) in shapes() {
        let ns = prepared();
        nft_in(&ns, &NftPod::new(&p).add_batch());
        assert_installed(name, &list(&ns), &p);
        // Re-ADD of the same owner and DEL also apply.
        let old: Vec<_> = elements::of(&p);
        let chains: BTreeSet<String> = p.chain.clone().into_iter().collect();
        nft_in(&ns, &NftPod::new(&p).replace_batch(&old, &chains));
        assert_installed(name, &list(&ns), &p);
        nft_in(&ns, &ruleset::delete_batch(&old, &chains));
        let after = list(&ns);
        assert!(
            after.elements.is_empty() && after.rules.is_empty(),
            "{name}: {after:?}"
        );
    }
}

/// The nfnetlink encoding (keys, values, comments) is what nft itself
/// writes: elements added over nfnetlink list back as the plan, their
/// comments are read back over nfnetlink, and they delete by key.
#[test]
fn nfnetlink_elements_match_what_nft_lists() {
    if !privileged("nfnetlink_elements_match_what_nft_lists") {
        return;
    }
    for (name, p) in shapes() {
        if p.chain.is_some() {
            continue;
        }
        let ns = prepared();
        let path = ns.path();
        let elements = elements::of(&p);
        let comment = p.comment.clone();
        let els = elements.clone();
        std::thread::spawn(move || {
            let _g = cni::netns::NetnsGuard::enter(&path).unwrap();
            let mut nf = Nfnl::open().unwrap();
            let ops: Vec<_> = els.iter().map(|e| ElementOp::Add(e, &comment)).collect();
            nf.transact(&ops).unwrap();
            // create semantics: the DNAT keys cannot be added twice.
            let err = nf.transact(&ops).unwrap_err();
            assert!(err.is_exists(), "{err}");
            let refs: Vec<_> = els.iter().collect();
            let comments = nf.comments(&refs).unwrap();
            assert!(comments
                .iter()
                .all(|c| c.as_deref() == Some(comment.as_str())));
        })
        .join()
        .unwrap();
        assert_installed(name, &list(&ns), &p);
        let path = ns.path();
        std::thread::spawn(move || {
            let _g = cni::netns::NetnsGuard::enter(&path).unwrap();
            let mut nf = Nfnl::open().unwrap();
            let ops: Vec<_> = elements.iter().map(ElementOp::Delete).collect();
            nf.transact(&ops).unwrap();
            let err = nf.transact(&ops).unwrap_err();
            assert!(err.is_not_found(), "{err}");
            nf.close_in_background();
        })
        .join()
        .unwrap();
        assert!(list(&ns).elements.is_empty(), "{name}");
    }
}
