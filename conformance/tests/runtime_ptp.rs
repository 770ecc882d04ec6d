//! The runtime driving Debian's real ptp + host-local and our noop in a
//! throwaway host/pod netns pair (plugins run inside the "host" netns via
//! `with_exec_netns`): ADD creates the pod interface and writes the
//! libcni-layout cache, CHECK passes (and fails once the address is gone),
//! DEL removes interface and cache, twice; per cniVersion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod runtime_support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use base64::Engine;
use cni::testing::{privileged, TestNetns};
use cni_runtime::{parse_conflist, Runtime, RuntimeConf};
use runtime_support::{noop_dir, ptp_conflist, TempDir, DEBIAN_CNI};
use serde_json::Value;

/// Versions Debian's plugins (v1.1.1) support, and CHECK from 0.4.0 on.
const VERSIONS: &[&str] = &["0.2.0", "0.3.1", "0.4.0", "1.0.0"];

fn addresses(ns: &TestNetns, ifname: &str) -> Vec<String> {
    let (ok, out, _) = ns.try_exec(&["ip", "-j", "addr", "show", "dev", ifname]);
    if !ok {
        return Vec::new();
    }
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

fn veth_count(ns: &TestNetns) -> usize {
    let out = ns.exec(&["ip", "-j", "link", "show", "type", "veth"]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn ptp_chain_add_check_del_through_the_runtime() {
    if !privileged("ptp_chain_add_check_del_through_the_runtime") {
        return;
    }
    let Some(noop) = noop_dir("ptp_chain_add_check_del_through_the_runtime") else {
        return;
    };
    let host = TestNetns::new("rh");
    let pod = TestNetns::new("rp");
    let ipam = TempDir::new("ptp-ipam");
    let cache = TempDir::new("ptp-cache");
    let rt = Runtime::new(vec![PathBuf::from(DEBIAN_CNI), noop])
        .with_cache_dir(cache.path().to_path_buf())
        .with_exec_netns(host.path());
    for (i, version) in VERSIONS.iter().enumerate() {
        let text = ptp_conflist("rtptp", version, "10.231.0.0/24", ipam.path(), true);
        let list = parse_conflist(text.as_bytes(), None).unwrap();
        let mut conf = RuntimeConf::new(&format!("ctr{i}"), pod.path(), "eth0");
        conf.args = vec![("IgnoreUnknown".into(), "1".into())];

        let out = rt.add_network_list(&list, &conf).unwrap();
        assert_eq!(out.raw["cniVersion"], *version);
        let ip = out.result.ips[0].address.to_string();
        assert!(ip.starts_with("10.231.0."), "{version}: {}", out.raw);
        assert_eq!(addresses(&pod, "eth0"), vec![ip.clone()], "{version}");
        assert_eq!(
            veth_count(&host),
            1,
            "{version}: the host side is in the host netns"
        );

        // the cache file: libcni layout and permissions
        let file = cache.join(&format!("results/rtptp-ctr{i}-eth0"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let cached: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(cached["kind"], "cniCacheV1");
        assert_eq!(cached["containerId"], format!("ctr{i}"));
        assert_eq!(cached["networkName"], "rtptp");
        assert_eq!(cached["netns"], pod.path().display().to_string());
        assert_eq!(
            cached["cniArgs"],
            serde_json::json!([["IgnoreUnknown", "1"]])
        );
        let config = base64::engine::general_purpose::STANDARD
            .decode(cached["config"].as_str().unwrap())
            .unwrap();
        assert_eq!(config, text.as_bytes());
        assert_eq!(cached["result"], out.raw);

        if list.cni_version.allows_check() {
            rt.check_network_list(&list, &conf).unwrap();
            // take the address away: ptp's CHECK must now fail, named
            pod.exec(&["ip", "addr", "del", &ip, "dev", "eth0"]);
            let e = rt.check_network_list(&list, &conf).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("network \"rtptp\": plugin #0 type=\"ptp\" failed (CHECK): "),
                "{version}: {e}"
            );
        } else {
            let e = rt.check_network_list(&list, &conf).unwrap_err();
            assert!(
                e.to_string().contains("does not support the CHECK command"),
                "{e}"
            );
        }

        rt.del_network_list(&list, &conf).unwrap();
        assert!(!file.exists(), "{version}: cache removed");
        assert!(addresses(&pod, "eth0").is_empty(), "{version}: eth0 gone");
        assert_eq!(veth_count(&host), 0, "{version}");
        // DEL again: nothing cached, nothing there, still fine
        rt.del_network_list(&list, &conf).unwrap();
    }
}

#[test]
fn validation_against_the_real_binaries_names_plugin_and_versions() {
    if !privileged("validation_against_the_real_binaries_names_plugin_and_versions") {
        return;
    }
    let Some(noop) = noop_dir("validation_against_the_real_binaries_names_plugin_and_versions")
    else {
        return;
    };
    let ipam = TempDir::new("val-ipam");
    let rt = Runtime::new(vec![PathBuf::from(DEBIAN_CNI), noop]);
    let ok = ptp_conflist("val", "1.0.0", "10.232.0.0/24", ipam.path(), true);
    let caps = rt
        .validate_network_list(&parse_conflist(ok.as_bytes(), None).unwrap())
        .unwrap();
    assert!(caps.is_empty());
    let versions = rt.version_info("noop").unwrap();
    assert!(versions.contains(&"1.1.0".to_string()), "{versions:?}");
    let ptp_versions = rt.version_info("ptp").unwrap();
    if !ptp_versions.contains(&"1.1.0".to_string()) {
        // Debian's v1.1.1 plugins stop at 1.0.0
        let newer = ptp_conflist("val", "1.1.0", "10.232.0.0/24", ipam.path(), true);
        let e = rt
            .validate_network_list(&parse_conflist(newer.as_bytes(), None).unwrap())
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("network \"val\": plugin #0 type=\"ptp\" does not support config version \"1.1.0\"; it supports ["),
            "{msg}"
        );
        assert!(msg.contains("\"1.0.0\""), "{msg}");
    }
}
