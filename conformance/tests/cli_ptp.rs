//! The `cni-conformance` binary driving Debian's ptp + host-local and our
//! noop in a throwaway host/pod netns pair (`--exec-netns` plays the host),
//! the way an operator runs cnitool: add, check, del, with the cache file
//! (named by cnitool's container ID) written then removed; per cniVersion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod runtime_support;

use std::process::{Command, Output};

use cni::testing::{privileged, TestNetns};
use conformance::cli::cnitool_container_id;
use runtime_support::{noop_dir, ptp_conflist, TempDir, DEBIAN_CNI};
use serde_json::Value;

fn cli(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cni-conformance"));
    c.args(args);
    for k in ["CNI_IFNAME", "CNI_ARGS", "CAP_ARGS", "CNI_CONTAINERID"] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout {}\nstderr {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cli_add_check_del_of_a_ptp_chain() {
    if !privileged("cli_add_check_del_of_a_ptp_chain") {
        return;
    }
    let Some(noop) = noop_dir("cli_add_check_del_of_a_ptp_chain") else {
        return;
    };
    let host = TestNetns::new("ch");
    let pod = TestNetns::new("cp");
    let ipam = TempDir::new("cli-ipam");
    let netconf = TempDir::new("cli-netconf");
    let cache = TempDir::new("cli-cache");
    let netns = pod.path().display().to_string();
    let id = cnitool_container_id(&pod.path());
    let env = vec![
        ("CNI_PATH", format!("{DEBIAN_CNI}:{}", noop.display())),
        ("NETCONFPATH", netconf.path().display().to_string()),
        ("CNI_CACHE_DIR", cache.path().display().to_string()),
        ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web".to_string()),
    ];
    let host_ns = host.path().display().to_string();
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        netconf.write(
            "10-cliptp.conflist",
            &ptp_conflist("cliptp", version, "10.233.0.0/24", ipam.path(), true),
        );
        let out = ok(&cli(
            &["add", "cliptp", &netns, "--exec-netns", &host_ns],
            &env,
        ));
        assert!(out.starts_with("{\n    \"cniVersion\": "), "{out}");
        let result: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(result["cniVersion"], version);
        let ip = result["ips"][0]["address"].as_str().unwrap().to_string();
        assert!(ip.starts_with("10.233.0."), "{out}");
        assert!(pod
            .exec(&["ip", "-o", "addr", "show", "dev", "eth0"])
            .contains(&ip));
        let cache_file = cache.join(&format!("results/cliptp-{id}-eth0"));
        let cached: Value = serde_json::from_slice(&std::fs::read(&cache_file).unwrap()).unwrap();
        assert_eq!(cached["result"], result, "{version}");
        assert_eq!(cached["netns"], netns);

        if version != "0.3.1" {
            ok(&cli(
                &["check", "cliptp", &netns, "--exec-netns", &host_ns],
                &env,
            ));
        } else {
            let out = cli(&["check", "cliptp", &netns, "--exec-netns", &host_ns], &env);
            assert_eq!(out.status.code(), Some(1));
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("does not support the CHECK command")
            );
        }
        ok(&cli(
            &["del", "cliptp", &netns, "--exec-netns", &host_ns],
            &env,
        ));
        assert!(!cache_file.exists(), "{version}");
        let (present, _, _) = pod.try_exec(&["ip", "link", "show", "dev", "eth0"]);
        assert!(!present, "{version}: eth0 removed");
        ok(&cli(
            &["del", "cliptp", &netns, "--exec-netns", &host_ns],
            &env,
        ));
    }
}
