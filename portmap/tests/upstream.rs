//! Privileged takeover tests: Debian's reference portmap (v1.1.1, iptables
//! backend — iptables-nft on Debian) installs pods' tcp+udp hostPorts,
//! dual-stack, inside a throwaway host netns; our portmap's DEL (with the
//! cache and without), GC and ADD then act on that state. Traffic and
//! `ip[6]tables-save` in that netns show the outcome. Also with the
//! reference pointed at iptables-legacy through `PATH`, and with upstream's
//! nftables layout written by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use cni::testing::Invocation;
use common::*;
use serde_json::json;

fn maps(tcp: u16, udp: u16) -> serde_json::Value {
    json!([
        {"hostPort": tcp, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": udp, "containerPort": 81, "protocol": "udp"}
    ])
}

/// Runs Debian's portmap in the host netns.
fn reference_add(w: &World, pod: &Pod, mappings: serde_json::Value) {
    reference_add_with(w, pod, mappings, None);
}

/// [`reference_add`], with `path_first` first on the reference's `PATH`.
fn reference_add_with(
    w: &World,
    pod: &Pod,
    mappings: serde_json::Value,
    path_first: Option<&Path>,
) {
    let mut inv = Invocation::new("ADD");
    if let Some(dir) = path_first {
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        inv.extra_env.insert("PATH".into(), path);
    }
    inv.container_id = pod.id.clone();
    inv.netns = pod.ns.path().display().to_string();
    inv.host_netns = Some(w.host.name.clone());
    let conf = portmap_conf("1.0.0", Some(&pod.prev), mappings);
    inv.run(Path::new("/usr/lib/cni/portmap"), &conf.to_string())
        .assert_ok();
}

fn saved(w: &World) -> String {
    host_exec(w, &["iptables-save", "-t", "nat"]) + &host_exec(w, &["ip6tables-save", "-t", "nat"])
}

fn reaches(w: &World, tcp: u16, udp: u16) -> [bool; 4] {
    let ext = w.ext.path();
    [
        tcp_get(&ext, addr(NODE4, tcp)).is_ok(),
        udp_get(&ext, addr(NODE4, udp), None).is_ok(),
        tcp_get(&ext, addr(NODE6, tcp)).is_ok(),
        udp_get(&ext, addr(NODE6, udp), None).is_ok(),
    ]
}

/// Our DEL of `pod` with the cache (prevResult + runtimeConfig); its
/// hostPorts no longer reach it.
fn del_cached(w: &World, pod: &Pod, tcp: u16, udp: u16) {
    let conf = portmap_conf("1.0.0", Some(&pod.prev), maps(tcp, udp));
    w.portmap("DEL", &pod.id, &pod.ns.path().display().to_string(), &conf)
        .assert_ok();
    assert_eq!(
        reaches(w, tcp, udp),
        [false; 4],
        "{}'s hostPorts are gone",
        pod.id
    );
}

/// Our DEL of `pod` without prevResult, runtimeConfig or netns; its
/// hostPorts no longer reach it.
fn del_bare(w: &World, pod: &Pod, tcp: u16, udp: u16) {
    let bare = json!({"cniVersion": "1.0.0", "name": "pmnet", "type": "portmap"});
    w.portmap("DEL", &pod.id, "", &bare).assert_ok();
    assert_eq!(
        reaches(w, tcp, udp),
        [false; 4],
        "{}'s hostPorts are gone",
        pod.id
    );
}

fn two_reference_pods(w: &World) -> (Pod, Pod) {
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    reference_add(w, &a, maps(8080, 8081));
    reference_add(w, &b, maps(9080, 9081));
    (a, b)
}

#[test]
fn del_removes_reference_rules_with_and_without_cache() {
    if !cni::testing::privileged("del_removes_reference_rules_with_and_without_cache") {
        return;
    }
    let w = World::new();
    let (a, b) = two_reference_pods(&w);
    let _sa = serve(&a.ns, "A", 80, 81);
    let _sb = serve(&b.ns, "B", 80, 81);
    assert_eq!(reaches(&w, 8080, 8081), [true; 4], "reference ADD works");
    let chain_a = portmap::upstream::iptables::dn_chain("pmnet", "ctrA");
    let chain_b = portmap::upstream::iptables::dn_chain("pmnet", "ctrB");
    assert!(saved(&w).contains(&chain_a));

    // With the cache: prevResult + runtimeConfig.
    del_cached(&w, &a, 8080, 8081);
    assert_eq!(reaches(&w, 9080, 9081), [true; 4], "B still answers");
    let s = saved(&w);
    assert!(!s.contains(&chain_a) && !s.contains("ctrA"), "{s}");
    assert!(
        s.contains(&chain_b) && s.contains(":CNI-HOSTPORT-DNAT"),
        "{s}"
    );

    // Without the cache: neither prevResult nor runtimeConfig.
    del_bare(&w, &b, 9080, 9081);
    let s = saved(&w);
    assert!(
        !s.contains("CNI-"),
        "last pod gone ⇒ shared chains gone: {s}"
    );
    // A second DEL finds nothing and succeeds.
    del_bare(&w, &b, 9080, 9081);
}

#[test]
fn gc_removes_only_stale_reference_pods() {
    if !cni::testing::privileged("gc_removes_only_stale_reference_pods") {
        return;
    }
    let w = World::new();
    let (_a, b) = two_reference_pods(&w);
    let _sb = serve(&b.ns, "B", 80, 81);
    let gc = json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap",
        "cni.dev/valid-attachments": [{"containerID": "ctrB", "ifname": "eth0"}]});
    w.portmap("GC", "", "", &gc).assert_ok();
    let s = saved(&w);
    assert!(!s.contains("ctrA"), "{s}");
    assert!(
        s.contains("ctrB") && s.contains(":CNI-HOSTPORT-MASQ"),
        "{s}"
    );
    assert_eq!(reaches(&w, 9080, 9081), [true; 4], "B still answers");
    // Another network's GC leaves pmnet's pods alone.
    let mut other = gc.clone();
    other["name"] = "othernet".into();
    other["cni.dev/valid-attachments"] = json!([]);
    w.portmap("GC", "", "", &other).assert_ok();
    assert!(saved(&w).contains("ctrB"));
    let none = json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap",
        "cni.dev/valid-attachments": []});
    w.portmap("GC", "", "", &none).assert_ok();
    let s = saved(&w);
    assert!(!s.contains("CNI-"), "{s}");
}

#[test]
fn add_of_a_port_the_reference_maps_for_another_pod_is_refused() {
    if !cni::testing::privileged("add_of_a_port_the_reference_maps_for_another_pod_is_refused") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    reference_add(&w, &a, maps(8080, 8081));
    let conf = portmap_conf("1.0.0", Some(&b.prev), maps(7070, 8081));
    let out = w.portmap("ADD", &b.id, &b.ns.path().display().to_string(), &conf);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("8081/udp is already mapped by upstream portmap for network \\\"pmnet\\\" container \\\"ctrA\\\""),
        "{}",
        out.stdout
    );
    // A hostIP overlaps upstream's any-address mapping (Kubernetes' rule);
    // another port on that address does not.
    let specific = portmap_conf(
        "1.0.0",
        Some(&b.prev),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": NODE4}]),
    );
    let out = w.portmap("ADD", &b.id, &b.ns.path().display().to_string(), &specific);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("{NODE4}:8080/tcp overlaps 0.0.0.0:8080/tcp mapped by upstream portmap for network \\\"pmnet\\\" container \\\"ctrA\\\"")),
        "{}",
        out.stdout
    );
    // Same pod re-added by ours (taking over its own ports) is not a conflict.
    let own = portmap_conf("1.0.0", Some(&a.prev), maps(8080, 8081));
    w.portmap("ADD", &a.id, &a.ns.path().display().to_string(), &own)
        .assert_ok();
}

/// Upstream's nftables backend (v1.6.0+, not in Debian's v1.1.1, whose
/// portmap has no `backend` option): its layout written here as upstream's
/// `portmap_nftables.go` creates it, ctrA on 8080 and ctrB on 9080.
fn install_upstream_nft(w: &World, a: &Pod, b: &Pod) {
    let (ia, ib) = (a.ip4(), b.ip4());
    let script = format!(
        "table ip cni_hostport {{
  comment \"CNI portmap plugin\"
  chain hostports {{ }}
  chain hostip_hostports {{ }}
  chain hostports_all {{ jump hostip_hostports; jump hostports; }}
  chain prerouting {{ type nat hook prerouting priority -100; fib daddr type local jump hostports_all; }}
  chain output {{ type nat hook output priority -100; fib daddr type local jump hostports_all; }}
  chain masquerading {{ type nat hook postrouting priority 100; }}
}}
add rule ip cni_hostport hostports tcp dport 8080 dnat to {ia}:80 comment \"ctrA\"
add rule ip cni_hostport hostports tcp dport 9080 dnat to {ib}:80 comment \"ctrB\"
add rule ip cni_hostport masquerading ip saddr {ia} ip daddr {ia} masquerade comment \"ctrA\"
add rule ip cni_hostport masquerading ip saddr {ib} ip daddr {ib} masquerade comment \"ctrB\"
"
    );
    let file = std::env::temp_dir().join(format!("{}-upstream.nft", w.host.name));
    std::fs::write(&file, script).unwrap();
    host_exec(w, &["nft", "-f", &file.display().to_string()]);
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn del_removes_upstream_nftables_rules_of_the_container() {
    if !cni::testing::privileged("del_removes_upstream_nftables_rules_of_the_container") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    let _sa = serve(&a.ns, "A", 80, 81);
    install_upstream_nft(&w, &a, &b);
    assert!(tcp_get(&w.ext.path(), addr(NODE4, 8080)).is_ok());
    // ADD of ctrB's port by another pod is refused, naming ctrB.
    let conf = portmap_conf("1.0.0", Some(&a.prev), maps(9080, 9081));
    let out = w.portmap("ADD", &a.id, &a.ns.path().display().to_string(), &conf);
    assert!(
        out.stdout.contains("container \\\"ctrB\\\""),
        "{}",
        out.stdout
    );
    let bare = json!({"cniVersion": "1.0.0", "name": "pmnet", "type": "portmap"});
    w.portmap("DEL", &a.id, "", &bare).assert_ok();
    assert!(tcp_get(&w.ext.path(), addr(NODE4, 8080)).is_err());
    let nft = host_exec(&w, &["nft", "list", "table", "ip", "cni_hostport"]);
    assert!(!nft.contains("ctrA") && nft.contains("ctrB"), "{nft}");
}

#[test]
fn gc_removes_upstream_nftables_rules_of_containers_not_valid() {
    if !cni::testing::privileged("gc_removes_upstream_nftables_rules_of_containers_not_valid") {
        return;
    }
    let w = World::new();
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    let _s = [serve(&a.ns, "A", 80, 81), serve(&b.ns, "B", 80, 81)];
    install_upstream_nft(&w, &a, &b);
    assert_eq!(tcp_get(&w.ext.path(), addr(NODE4, 8080)), Ok("A".into()));
    let gc = json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap",
        "cni.dev/valid-attachments": [{"containerID": "ctrB", "ifname": "eth0"}]});
    w.portmap("GC", "", "", &gc).assert_ok();
    assert!(
        tcp_get(&w.ext.path(), addr(NODE4, 8080)).is_err(),
        "ctrA's hostPort is gone"
    );
    assert_eq!(
        tcp_get(&w.ext.path(), addr(NODE4, 9080)),
        Ok("B".into()),
        "ctrB's stays"
    );
    let nft = host_exec(&w, &["nft", "list", "table", "ip", "cni_hostport"]);
    assert!(!nft.contains("ctrA") && nft.contains("ctrB"), "{nft}");
}

/// A directory whose `ip[6]tables[-save|-restore]` are symlinks to the
/// `-legacy` binaries: first on the reference's `PATH`, it makes Debian's
/// portmap (which runs whatever `iptables` is first on `PATH`) use
/// iptables-legacy. Removed on drop.
struct LegacyPath(std::path::PathBuf);

impl LegacyPath {
    fn new(w: &World) -> LegacyPath {
        let dir = std::env::temp_dir().join(format!("{}-legacy-bin", w.host.name));
        std::fs::create_dir_all(&dir).unwrap();
        for base in ["iptables", "ip6tables"] {
            for suffix in ["", "-save", "-restore"] {
                let target = format!("/usr/sbin/{base}-legacy{suffix}");
                std::os::unix::fs::symlink(target, dir.join(format!("{base}{suffix}"))).unwrap();
            }
        }
        LegacyPath(dir)
    }
}

impl Drop for LegacyPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Both families' legacy `nat` tables of the host netns, as
/// `ip[6]tables-legacy-save` prints them.
fn legacy_saved(w: &World) -> String {
    host_exec(w, &["iptables-legacy-save", "-t", "nat"])
        + &host_exec(w, &["ip6tables-legacy-save", "-t", "nat"])
}

/// Neither family's legacy `nat` table names `id` or its `CNI-DN-` chain.
fn assert_legacy_free_of(w: &World, id: &str) {
    let s = legacy_saved(w);
    let chain = portmap::upstream::iptables::dn_chain("pmnet", id);
    assert!(
        !s.contains(&chain) && !s.contains(id),
        "{id} left in iptables-legacy: {s}"
    );
}

#[test]
fn del_and_gc_remove_reference_rules_installed_with_iptables_legacy() {
    if !cni::testing::privileged("del_and_gc_remove_reference_rules_installed_with_iptables_legacy")
    {
        return;
    }
    let w = World::new();
    let legacy = LegacyPath::new(&w);
    let a = w.pod("ctrA");
    let b = w.pod("ctrB");
    let c = w.pod("ctrC");
    reference_add_with(&w, &a, maps(8080, 8081), Some(&legacy.0));
    reference_add_with(&w, &b, maps(9080, 9081), Some(&legacy.0));
    reference_add_with(&w, &c, maps(7080, 7081), Some(&legacy.0));
    let _s = [
        serve(&a.ns, "A", 80, 81),
        serve(&b.ns, "B", 80, 81),
        serve(&c.ns, "C", 80, 81),
    ];
    // The reference really used iptables-legacy: its chains are in the
    // legacy tables, none in iptables-nft's.
    let v4 = host_exec(&w, &["iptables-legacy-save", "-t", "nat"]);
    let v6 = host_exec(&w, &["ip6tables-legacy-save", "-t", "nat"]);
    for id in ["ctrA", "ctrB", "ctrC"] {
        let chain = portmap::upstream::iptables::dn_chain("pmnet", id);
        for s in [&v4, &v6] {
            assert!(s.contains(&chain) && s.contains(id), "{s}");
        }
    }
    assert!(!saved(&w).contains("CNI-"), "nothing in iptables-nft");
    assert_eq!(
        reaches(&w, 8080, 8081),
        [true; 4],
        "reference ADD of A works"
    );
    assert_eq!(
        reaches(&w, 9080, 9081),
        [true; 4],
        "reference ADD of B works"
    );
    assert_eq!(
        reaches(&w, 7080, 7081),
        [true; 4],
        "reference ADD of C works"
    );

    // Our DEL (nftables backend, the normal PATH) with the cache.
    del_cached(&w, &a, 8080, 8081);
    assert_eq!(reaches(&w, 9080, 9081), [true; 4], "B still answers");
    assert_legacy_free_of(&w, "ctrA");
    assert!(legacy_saved(&w).contains("ctrB"));

    // Without prevResult or runtimeConfig.
    del_bare(&w, &b, 9080, 9081);
    assert_eq!(reaches(&w, 7080, 7081), [true; 4], "C still answers");
    assert_legacy_free_of(&w, "ctrB");
    del_bare(&w, &b, 9080, 9081);

    // GC of a network listing no attachment: C goes, and with the last pod
    // upstream's shared chains.
    let gc = json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap",
        "cni.dev/valid-attachments": []});
    w.portmap("GC", "", "", &gc).assert_ok();
    assert_eq!(
        reaches(&w, 7080, 7081),
        [false; 4],
        "C's hostPorts are gone"
    );
    assert_legacy_free_of(&w, "ctrC");
    let s = legacy_saved(&w);
    assert!(
        !s.contains("CNI-"),
        "last pod gone ⇒ shared chains gone: {s}"
    );
}
