//! The iptables backend's restore input for every rule shape, as insta
//! snapshots, and the same input restored into real iptables-nft and
//! iptables-legacy in a private netns and saved back: CHECK's word-for-word
//! comparison then finds nothing missing (the generated rules are in
//! iptables-save's canonical form), a second ADD replaces instead of
//! duplicating, and DEL's removal leaves an empty `nat` table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use cni::args::Owner;
use cni::netlink::netfilter::Nfnl;
use cni::testing::{privileged, TestNetns};
use portmap::config::{self, ContainerIps, Protocol};
use portmap::iptables::dnat_cache::Tracker;
use portmap::iptables::rules::{localnet_add, PodRules};
use portmap::iptables::{fresh, nfnl};
use portmap::plan::{self, Family, MapKey, PodPlan};
use portmap::upstream::iptables::{parse_save, parse_table, NatTable, DNAT};

const UPSTREAM_V4: &str = include_str!("fixtures/upstream-two-pods.v4.save");

fn ips(v4: bool, v6: bool) -> ContainerIps {
    ContainerIps {
        v4: v4.then(|| "10.22.0.5".parse().unwrap()),
        v6: v6.then(|| "fd00:22::5".parse().unwrap()),
    }
}

fn plan_as(network: &str, id: &str, extra: &str, mappings: &str, ips: ContainerIps) -> PodPlan {
    let conf = format!(
        r#"{{"cniVersion":"1.0.0","name":"{network}","type":"portmap","backend":"iptables"{extra},
            "runtimeConfig":{{"portMappings":{mappings}}}}}"#
    );
    let cfg = config::parse(conf.as_bytes()).unwrap();
    plan::pod_plan(&cfg, &Owner::new(network, id, "eth0"), ips)
}

fn plan_of(extra: &str, mappings: &str, ips: ContainerIps) -> PodPlan {
    plan_as("pmnet", "ctr1", extra, mappings, ips)
}

const TCP: &str = r#"[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]"#;

fn shapes() -> Vec<(&'static str, PodPlan)> {
    vec![
        ("v4", plan_of("", TCP, ips(true, false))),
        (
            "dual_stack",
            plan_of(
                "",
                r#"[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},
                    {"hostPort":8081,"containerPort":81,"protocol":"udp"},
                    {"hostPort":8082,"containerPort":82,"protocol":"tcp"}]"#,
                ips(true, true),
            ),
        ),
        (
            "host_ip",
            plan_of(
                "",
                r#"[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"198.18.0.1"},
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
            plan_of(r#","masqAll":true,"markMasqBit":5"#, TCP, ips(true, true)),
        ),
        (
            "external_chain",
            plan_of(
                r#","externalSetMarkChain":"KUBE-MARK-MASQ""#,
                TCP,
                ips(true, false),
            ),
        ),
        (
            "conditions",
            plan_of(
                r#","conditionsV4":["!","-s","198.19.0.0/24","-m","comment","--comment","a b"],
                   "conditionsV6":["-i","eth0"]"#,
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

fn inputs(p: &PodPlan, table: &NatTable) -> String {
    [Family::V4, Family::V6]
        .into_iter()
        .filter_map(|f| PodRules::new(p, f))
        .map(|r| format!("# {:?}\n{}", r.family, r.add_input(table)))
        .collect()
}

#[test]
fn snapshots_of_every_shape() {
    for (name, p) in shapes() {
        insta::assert_snapshot!(
            format!("iptables_add_{name}"),
            inputs(&p, &NatTable::default())
        );
    }
}

#[test]
fn adding_next_to_upstream_reuses_shared_chains_and_replaces_its_own_entries() {
    let table = parse_save(UPSTREAM_V4);
    // A new pod: no shared chain or rule declared again.
    let new = plan_as(
        "pmtest",
        "ctr3",
        "",
        r#"[{"hostPort":9090,"containerPort":90}]"#,
        ips(true, false),
    );
    insta::assert_snapshot!("iptables_add_next_to_upstream", inputs(&new, &table));
    // The same attachment upstream installed: its entry rules go first.
    let again = plan_as(
        "pmtest",
        "ctr1",
        "",
        r#"[{"hostPort":9090,"containerPort":90}]"#,
        ips(true, false),
    );
    let input = inputs(&again, &table);
    assert!(input.contains("-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"pmtest\\\" id: \\\"ctr1\\\"\" -m multiport --dports 8080 -j CNI-DN-9bad549d180e477c26aef"), "{input}");
    assert!(!input.contains(":CNI-HOSTPORT-DNAT"), "{input}");
}

fn key(ip: Option<&str>, protocol: Protocol, port: u16) -> MapKey {
    let host_ip = ip.map(|s| s.parse().unwrap());
    MapKey {
        family: host_ip.as_ref().map(Family::of).unwrap_or(Family::V4),
        host_ip,
        protocol,
        port,
    }
}

#[test]
fn kubernetes_conflict_rule() {
    use Protocol::{Tcp, Udp};
    for (a, b, conflict) in [
        (key(None, Tcp, 80), key(None, Tcp, 80), true),
        (key(None, Tcp, 80), key(Some("198.18.0.1"), Tcp, 80), true),
        (
            key(Some("0.0.0.0"), Tcp, 80),
            key(Some("198.18.0.1"), Tcp, 80),
            true,
        ),
        (
            key(Some("198.18.0.1"), Tcp, 80),
            key(Some("198.18.0.1"), Tcp, 80),
            true,
        ),
        (
            key(Some("127.0.0.1"), Tcp, 80),
            key(Some("198.18.0.1"), Tcp, 80),
            false,
        ),
        (key(None, Tcp, 80), key(None, Udp, 80), false),
        (key(None, Tcp, 80), key(None, Tcp, 81), false),
        (key(Some("fd00::1"), Tcp, 80), key(None, Tcp, 80), false),
    ] {
        assert_eq!(a.conflicts_with(&b), conflict, "{a:?} vs {b:?}");
        assert_eq!(b.conflicts_with(&a), conflict, "{b:?} vs {a:?}");
    }
}

#[test]
fn conflicts_are_read_from_the_pod_chains_with_their_host_ips() {
    let table = parse_save(UPSTREAM_V4);
    let keys = table.mapped_keys(Family::V4);
    assert_eq!(keys.len(), 4);
    let udp = plan_as(
        "pmtest",
        "ctr3",
        "",
        r#"[{"hostPort":8053,"containerPort":53,"protocol":"udp","hostIP":"198.18.0.1"}]"#,
        ips(true, false),
    );
    let rules = PodRules::new(&udp, Family::V4).unwrap();
    let found = rules.conflicts(&table, &rules.keys(&udp));
    assert_eq!(
        found,
        [
            "198.18.0.1:8053/udp overlaps 0.0.0.0:8053/udp mapped by network \"pmtest\" container \"ctr1\"",
            "198.18.0.1:8053/udp overlaps 0.0.0.0:8053/udp mapped by network \"pmtest\" container \"ctr2\""
        ]
    );
    // Its own rules never conflict; another port does not either.
    let own = plan_as(
        "pmtest",
        "ctr1",
        "",
        r#"[{"hostPort":8053,"containerPort":53,"protocol":"udp"}]"#,
        ips(true, false),
    );
    let rules = PodRules::new(&own, Family::V4).unwrap();
    let found = rules.conflicts(&table, &rules.keys(&own));
    assert_eq!(
        found,
        ["0.0.0.0:8053/udp is already mapped by network \"pmtest\" container \"ctr2\""]
    );
}

fn restore_in(ns: &TestNetns, tool: &str, input: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, tool, "-w", "5", "--noflush"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{tool}: {}\n{input}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `-save` and `-restore` tools of `family` for `kind` (nft or legacy).
fn tools(family: Family, kind: &str) -> (String, String) {
    let f = if family == Family::V4 { "ip" } else { "ip6" };
    (
        format!("{f}tables-{kind}-save"),
        format!("{f}tables-{kind}-restore"),
    )
}

fn save_in(ns: &TestNetns, tool: &str) -> NatTable {
    parse_save(&ns.exec(&[tool, "-t", "nat"]))
}

#[test]
fn every_shape_restores_into_real_iptables_and_reads_back_word_for_word() {
    if !privileged("every_shape_restores_into_real_iptables_and_reads_back_word_for_word") {
        return;
    }
    for kind in ["nft", "legacy"] {
        for (name, p) in shapes() {
            let ns = TestNetns::new("pmipt");
            // The chain an externalSetMarkChain names exists beforehand.
            for f in ["ip", "ip6"] {
                ns.exec(&[
                    &format!("{f}tables-{kind}"),
                    "-t",
                    "nat",
                    "-N",
                    "KUBE-MARK-MASQ",
                ]);
            }
            for family in [Family::V4, Family::V6] {
                let Some(rules) = PodRules::new(&p, family) else {
                    continue;
                };
                let (save, restore) = tools(family, kind);
                restore_in(&ns, &restore, &rules.add_input(&save_in(&ns, &save)));
                let table = save_in(&ns, &save);
                assert_eq!(
                    rules.differences(&table),
                    Vec::<String>::new(),
                    "{kind} {name} {family:?}"
                );
                // Again: replaced, not duplicated.
                restore_in(&ns, &restore, &rules.add_input(&table));
                let again = save_in(&ns, &save);
                assert_eq!(
                    again, table,
                    "{kind} {name} {family:?}: second ADD changed the table"
                );
                // DEL's index path (no save): the pod's entry rules and
                // chain go, the shared chains stay; ADD then restores it all.
                restore_in(&ns, &restore, &rules.removal_input());
                let indexed = save_in(&ns, &save);
                assert!(
                    !indexed.chains.contains(&rules.chain)
                        && indexed.rules.iter().all(|r| r.chain != rules.chain
                            && r.jump.as_deref() != Some(rules.chain.as_str()))
                        && indexed.chains.iter().any(|c| c == "CNI-HOSTPORT-DNAT"),
                    "{kind} {name} {family:?}: {indexed:?}"
                );
                restore_in(&ns, &restore, &rules.add_input(&indexed));
                assert_eq!(save_in(&ns, &save), again, "{kind} {name} {family:?}");
                // DEL's removal leaves only the chain we created.
                let ids = BTreeSet::from(["ctr1".to_string()]);
                restore_in(&ns, &restore, &again.removal("pmnet", &ids).unwrap());
                let left = save_in(&ns, &save);
                assert!(left.rules.is_empty(), "{kind} {name}: {:?}", left.rules);
                assert_eq!(
                    left.chains.iter().filter(|c| c.starts_with("CNI-")).count(),
                    0,
                    "{kind} {name}: {:?}",
                    left.chains
                );
            }
        }
    }
}

/// ADD's fast path on iptables-nft reads, over netlink, exactly what the
/// saved table would have told the input: for a second attachment next to
/// every shape, the restore input built from [`fresh::table_for`] equals
/// the one built from `iptables-nft-save`; a repeated ADD, a shared port,
/// and a flushed `PREROUTING` each send ADD back to the save.
#[test]
fn the_netlink_read_of_adds_fast_path_matches_the_saved_table() {
    if !privileged("the_netlink_read_of_adds_fast_path_matches_the_saved_table") {
        return;
    }
    let mut fast = 0;
    for (name, p) in shapes() {
        let (ns, sock) = kube_netns("pmfast");
        let mark = 1u32 << p.config.mark_masq_bit;
        let extra = extra_of(name);
        let other = second_of(extra);
        for family in [Family::V4, Family::V6] {
            let Some(rules) = PodRules::new(&p, family) else {
                continue;
            };
            let (save, restore) = tools(family, "nft");
            // The first attachment: no shared chains yet, the save decides.
            assert_eq!(
                read_fast(&sock, &rules, &p, mark),
                None,
                "{name} {family:?}: first pod"
            );
            restore_in(&ns, &restore, &rules.add_input(&save_in(&ns, &save)));
            assert_eq!(
                read_fast(&sock, &rules, &p, mark),
                None,
                "{name} {family:?}: repeated ADD"
            );
            let second = PodRules::new(&other, family).unwrap();
            let read = read_fast(&sock, &second, &other, mark)
                .unwrap_or_else(|| panic!("{name} {family:?}: the fast path refused"));
            let saved = save_in(&ns, &save);
            assert_eq!(
                second.add_input(&read),
                second.add_input(&saved),
                "{name} {family:?}"
            );
            assert!(second.conflicts(&saved, &second.keys(&other)).is_empty());
            fast += 1;
            // A port the first pod maps: the save (and its hostIP rules)
            // decides whether it conflicts.
            let clash = plan_as("pmnet", "ctr3", extra, TCP_SAME, ips(true, true));
            if let Some(third) = PodRules::new(&clash, family) {
                if rules.keys(&p).iter().any(|k| k.port == 8080) {
                    assert_eq!(
                        read_fast(&sock, &third, &clash, mark),
                        None,
                        "{name} {family:?}: shared port"
                    );
                }
            }
            // A flushed PREROUTING: the save path heals.
            let iptables = save.trim_end_matches("-save");
            ns.exec(&[iptables, "-t", "nat", "-F", "PREROUTING"]);
            assert_eq!(
                read_fast(&sock, &second, &other, mark),
                None,
                "{name} {family:?}: flushed"
            );
        }
    }
    assert_eq!(fast, 13, "every shape's families");
}

/// ADD's netlink read ([`fresh::table_for`]) with a dump of the chain.
fn read_fast(sock: &Nfnl, rules: &PodRules, plan: &PodPlan, mark: u32) -> Option<NatTable> {
    fresh::table_for(
        sock,
        &mut Tracker::default(),
        rules,
        &rules.keys(plan),
        mark,
    )
}

/// A scratch netns whose iptables-nft `nat` tables (both families) hold
/// kube-proxy's `KUBE-MARK-MASQ` (the `externalSetMarkChain` shape jumps
/// to it), and a netlink socket in it.
fn kube_netns(prefix: &str) -> (TestNetns, Nfnl) {
    let ns = TestNetns::new(prefix);
    for f in ["iptables-nft", "ip6tables-nft"] {
        ns.exec(&[f, "-t", "nat", "-N", "KUBE-MARK-MASQ"]);
    }
    let sock = Nfnl::open_in(&ns.path()).unwrap();
    (ns, sock)
}

/// The config options of the shape `name` (see [`shapes`]).
fn extra_of(name: &str) -> &'static str {
    match name {
        "snat_off" => r#","snat":false"#,
        "masq_all" => r#","masqAll":true,"markMasqBit":5"#,
        "external_chain" => r#","externalSetMarkChain":"KUBE-MARK-MASQ""#,
        _ => "",
    }
}

/// A second attachment with the same options and its own port.
fn second_of(extra: &str) -> PodPlan {
    plan_as(
        "pmnet",
        "ctr2",
        extra,
        r#"[{"hostPort":9090,"containerPort":90,"protocol":"udp"}]"#,
        ips(true, true),
    )
}

const TCP_SAME: &str = r#"[{"hostPort":8080,"containerPort":81,"protocol":"tcp"}]"#;

/// DEL's netlink path on iptables-nft ([`nfnl::remove`]) against real
/// tables, for every shape: with two attachments the first one's rules
/// go and the shared layout stays; the last one takes the shared chains,
/// their jumps and (IPv4) the raw table's localnet drop with it, leaving
/// the tables as they were before the first ADD. A foreign rule still
/// jumping to a shared chain makes it refuse and change nothing (the save
/// path then decides).
#[test]
fn the_netlink_del_of_the_last_attachment_leaves_the_tables_as_they_were() {
    if !privileged("the_netlink_del_of_the_last_attachment_leaves_the_tables_as_they_were") {
        return;
    }
    let mut last = 0;
    for (name, p) in shapes() {
        let (ns, sock) = kube_netns("pmdel");
        let extra = extra_of(name);
        let other = second_of(extra);
        for family in [Family::V4, Family::V6] {
            let Some(rules) = PodRules::new(&p, family) else {
                continue;
            };
            let v6 = family == Family::V6;
            let (save, restore) = tools(family, "nft");
            let everything = || ns.exec(&[save.as_str()]);
            // The raw table ADD creates stays (as on the save path): made
            // here first, the comparison is of what is in the tables.
            let iptables = save.trim_end_matches("-save");
            for op in ["-A", "-D"] {
                ns.exec(&[iptables, "-t", "raw", op, "PREROUTING", "-j", "ACCEPT"]);
            }
            let before = everything();
            let raw = || parse_table(&ns.exec(&[save.as_str(), "-t", "raw"]), "raw");
            let localnet = if v6 {
                String::new()
            } else {
                localnet_add(&raw())
            };
            restore_in(
                &ns,
                &restore,
                &(rules.add_input(&save_in(&ns, &save)) + &localnet),
            );
            let second = PodRules::new(&other, family).unwrap();
            restore_in(&ns, &restore, &second.add_input(&save_in(&ns, &save)));

            // Two attachments: the first goes, the shared layout stays.
            assert!(
                nfnl::remove(&sock, &mut Tracker::default(), v6, &rules.chain),
                "{name} {family:?}"
            );
            let table = save_in(&ns, &save);
            assert!(second.differences(&table).is_empty(), "{name} {family:?}");
            assert!(!table.chains.contains(&rules.chain), "{name} {family:?}");

            // A foreign jump into a shared chain: refused, nothing changed.
            ns.exec(&[iptables, "-t", "nat", "-N", "PMFOREIGN"]);
            ns.exec(&[iptables, "-t", "nat", "-A", "PMFOREIGN", "-j", DNAT]);
            let held = everything();
            assert!(
                !nfnl::remove(&sock, &mut Tracker::default(), v6, &second.chain),
                "{name} {family:?}"
            );
            assert_eq!(
                strip_dates(&everything()),
                strip_dates(&held),
                "{name} {family:?}: refused"
            );
            ns.exec(&[iptables, "-t", "nat", "-F", "PMFOREIGN"]);
            ns.exec(&[iptables, "-t", "nat", "-X", "PMFOREIGN"]);

            // The last attachment: the tables are as before the first ADD.
            assert!(
                nfnl::remove(&sock, &mut Tracker::default(), v6, &second.chain),
                "{name} {family:?}"
            );
            assert_eq!(
                strip_dates(&everything()),
                strip_dates(&before),
                "{name} {family:?}: last"
            );
            last += 1;
        }
    }
    assert_eq!(last, 13, "every shape's families");
}

/// A save without its `# Generated`/`# Completed` lines.
fn strip_dates(save: &str) -> String {
    save.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}
