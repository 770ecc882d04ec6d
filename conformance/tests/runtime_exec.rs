//! The runtime against real plugin processes (shell scripts, no privileges):
//! timeouts kill the plugin with a clear error, garbage and silent failures
//! are described, spec errors are surfaced, ETXTBSY is retried, and a chain
//! runs ADD in order / DEL in reverse with the real environment and stdin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod runtime_support;

use std::io::Write;
use std::time::{Duration, Instant};

use cni_runtime::{parse_conflist, Runtime, RuntimeConf, RuntimeError};
use runtime_support::{log_lines, recording_plugin, TempDir};
use serde_json::{json, Value};

fn list(types: &[&str], version: &str) -> cni_runtime::NetworkConfigList {
    let plugins: Vec<Value> = types.iter().map(|t| json!({"type": t})).collect();
    let text = json!({"cniVersion": version, "name": "scripts", "plugins": plugins}).to_string();
    parse_conflist(text.as_bytes(), None).unwrap()
}

fn runtime(bin: &TempDir, cache: &TempDir) -> Runtime {
    Runtime::new(vec![bin.path().to_path_buf()]).with_cache_dir(cache.path().to_path_buf())
}

fn conf() -> RuntimeConf {
    RuntimeConf::new("ctr1", "/run/netns/nowhere", "eth0")
}

#[test]
fn a_hanging_plugin_is_killed_at_the_timeout_with_a_clear_error() {
    let bin = TempDir::new("hang");
    let cache = TempDir::new("hang-cache");
    bin.script("sleeper", "echo going to sleep >&2\nsleep 30");
    let rt = runtime(&bin, &cache).with_timeout(Duration::from_millis(500));
    for verb in ["ADD", "DEL", "STATUS"] {
        let started = Instant::now();
        let l = list(&["sleeper"], "1.1.0");
        let e = match verb {
            "ADD" => rt.add_network_list(&l, &conf()).map(|_| ()),
            "DEL" => rt.del_network_list(&l, &conf()),
            _ => rt.status_network_list(&l),
        }
        .unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(4), "{verb} took {elapsed:?}");
        assert!(
            elapsed >= Duration::from_millis(500),
            "{verb} took {elapsed:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "network \"scripts\": plugin #0 type=\"sleeper\" failed ({verb}): did not finish within 500ms and was killed (stderr: \"going to sleep\")"
            )
        );
    }
}

#[test]
fn garbage_output_and_silent_failures_are_described() {
    let bin = TempDir::new("garbage");
    let cache = TempDir::new("garbage-cache");
    bin.script("prints-garbage", "cat >/dev/null; echo 'hello world'");
    bin.script(
        "fails-garbage",
        "cat >/dev/null; echo 'panic: oops'; exit 1",
    );
    bin.script(
        "fails-silently",
        "cat >/dev/null; echo 'cannot open /x' >&2; exit 3",
    );
    bin.script(
        "spec-error",
        r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","code":7,"msg":"invalid config","details":"mtu: must be > 0"}'; exit 1"#,
    );
    bin.script("killed", "kill -9 $$");
    let rt = runtime(&bin, &cache);
    let cases = [
        ("prints-garbage", "printed an invalid result (not JSON: expected value at line 1 column 1): \"hello world\\n\""),
        ("fails-garbage", "exited with status 1 and printed something that is not a CNI error: \"panic: oops\" (stderr empty)"),
        ("fails-silently", "exited with status 3 without printing an error (stderr: \"cannot open /x\")"),
        ("spec-error", "code 7: invalid config; mtu: must be > 0"),
        ("killed", "was killed by signal 9 (stderr empty)"),
    ];
    for (plugin, want) in cases {
        let e = rt
            .add_network_list(&list(&[plugin], "1.0.0"), &conf())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("network \"scripts\": plugin #0 type=\"{plugin}\" failed (ADD): {want}")
        );
        assert_eq!(e.cni_error().is_some(), plugin == "spec-error", "{plugin}");
    }
    let e = rt
        .add_network_list(&list(&["spec-error"], "1.0.0"), &conf())
        .unwrap_err();
    assert_eq!(e.cni_error().unwrap().code.as_u32(), 7);
    assert!(!cache.join("results/scripts-ctr1-eth0").exists());
}

#[test]
fn a_plugin_binary_still_open_for_writing_is_retried_like_libcni() {
    let bin = TempDir::new("etxtbsy");
    let cache = TempDir::new("etxtbsy-cache");
    let path = bin.join("busy");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(
        b"#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // still open for writing: exec fails with ETXTBSY until it is closed
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(f);
    });
    let started = Instant::now();
    let versions = runtime(&bin, &cache).version_info("busy").unwrap();
    writer.join().unwrap();
    assert_eq!(versions, vec!["1.0.0"]);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_real_chain_adds_in_order_deletes_in_reverse_and_gets_the_spec_environment() {
    let bin = TempDir::new("chain");
    let cache = TempDir::new("chain-cache");
    for p in ["first", "second", "third"] {
        recording_plugin(&bin, p, r#""1.0.0""#);
    }
    let rt = runtime(&bin, &cache);
    let l = list(&["first", "second", "third"], "1.0.0");
    let mut c = conf();
    c.args = vec![
        ("IgnoreUnknown".into(), "1".into()),
        ("K8S_POD_NAME".into(), "web".into()),
    ];
    let out = rt.add_network_list(&l, &c).unwrap();
    assert_eq!(out.raw["ips"][0]["address"], "10.9.0.2/24");
    rt.check_network_list(&l, &c).unwrap();
    rt.del_network_list(&l, &c).unwrap();
    let args = "ctr1 eth0 IgnoreUnknown=1;K8S_POD_NAME=web";
    assert_eq!(
        log_lines(&bin),
        vec![
            format!("ADD first {args}"),
            format!("ADD second {args}"),
            format!("ADD third {args}"),
            format!("CHECK first {args}"),
            format!("CHECK second {args}"),
            format!("CHECK third {args}"),
            format!("DEL third {args}"),
            format!("DEL second {args}"),
            format!("DEL first {args}"),
        ]
    );
    let stdin = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(bin.join(name)).unwrap()).unwrap()
    };
    assert!(stdin("stdin.ADD.first").get("prevResult").is_none());
    assert_eq!(
        stdin("stdin.ADD.second")["prevResult"]["ips"][0]["address"],
        "10.9.0.2/24"
    );
    assert_eq!(stdin("stdin.DEL.first")["prevResult"], out.raw);
    assert_eq!(stdin("stdin.CHECK.third")["name"], "scripts");
    assert!(!cache.join("results/scripts-ctr1-eth0").exists());
}

#[test]
fn validate_and_version_ask_the_real_binaries() {
    let bin = TempDir::new("validate");
    let cache = TempDir::new("validate-cache");
    recording_plugin(&bin, "modern", r#""0.4.0","1.0.0","1.1.0""#);
    recording_plugin(&bin, "old", r#""0.3.1","0.4.0""#);
    bin.script(
        "ancient",
        r#"echo '{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}'; exit 1"#,
    );
    let rt = runtime(&bin, &cache);
    assert_eq!(
        rt.version_info("modern").unwrap(),
        vec!["0.4.0", "1.0.0", "1.1.0"]
    );
    assert_eq!(rt.version_info("ancient").unwrap(), vec!["0.1.0"]);
    assert!(rt
        .validate_network_list(&list(&["modern", "old"], "0.4.0"))
        .unwrap()
        .is_empty());
    let e = rt
        .validate_network_list(&list(&["modern", "old", "ancient", "absent"], "1.0.0"))
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("network \"scripts\": validation: 3 errors: "),
        "{msg}"
    );
    assert!(msg.contains("plugin #1 type=\"old\" does not support config version \"1.0.0\"; it supports [\"0.3.1\" \"0.4.0\"]"), "{msg}");
    assert!(msg.contains("plugin #2 type=\"ancient\" does not support config version \"1.0.0\"; it supports [\"0.1.0\"]"), "{msg}");
    assert!(
        msg.contains(&format!(
            "plugin #3 type=\"absent\" failed (VERSION): plugin \"absent\" not found in [{}]",
            bin.path().display()
        )),
        "{msg}"
    );
    assert!(matches!(e, RuntimeError::Multiple { .. }));
}
