//! The `cni-conformance` binary with script plugins (no privileges): the
//! cnitool environment (CNI_PATH, NETCONFPATH, CNI_IFNAME, CNI_ARGS,
//! CAP_ARGS, CNI_CONTAINERID), cnitool's container ID, indented JSON on
//! stdout, errors on stderr with a non-zero exit, gc/status/validate/version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod runtime_support;

use std::path::Path;
use std::process::{Command, Output};

use conformance::cli::cnitool_container_id;
use runtime_support::{log_lines, recording_plugin, TempDir};
use serde_json::Value;

struct World {
    bin: TempDir,
    netconf: TempDir,
    cache: TempDir,
}

impl World {
    fn new(tag: &str) -> World {
        let w = World {
            bin: TempDir::new(&format!("cli-bin-{tag}")),
            netconf: TempDir::new(&format!("cli-net-{tag}")),
            cache: TempDir::new(&format!("cli-cache-{tag}")),
        };
        recording_plugin(&w.bin, "main", r#""0.4.0","1.0.0","1.1.0""#);
        recording_plugin(&w.bin, "chained", r#""1.0.0","1.1.0""#);
        w.netconf.write(
            "10-clinet.conflist",
            r#"{"cniVersion":"1.1.0","name":"clinet","plugins":[{"type":"main"},{"type":"chained","capabilities":{"portMappings":true,"mac":false}}]}"#,
        );
        w
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cni-conformance"));
        c.args(args)
            .env("CNI_PATH", self.bin.path())
            .env("NETCONFPATH", self.netconf.path())
            .env("CNI_CACHE_DIR", self.cache.path());
        for k in ["CNI_IFNAME", "CNI_ARGS", "CAP_ARGS", "CNI_CONTAINERID"] {
            c.env_remove(k);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout {}\nstderr {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn add_check_del_like_cnitool() {
    let w = World::new("acd");
    let netns = "/run/netns/cli-test-pod";
    let id = cnitool_container_id(Path::new(netns));
    let out = w
        .cmd(&["add", "clinet", netns])
        .env("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web")
        .env("CAP_ARGS", r#"{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"mac":"c2:00:00:00:00:01"}"#)
        .output()
        .unwrap();
    let stdout = ok(&out);
    // 4-space indented JSON of the final result
    assert!(stdout.starts_with("{\n    \""), "{stdout}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["ips"][0]["address"], "10.9.0.2/24");
    assert_eq!(result["interfaces"][0]["sandbox"], netns);

    // cnitool's container ID names the cache file
    let cache_file = w.cache.join(&format!("results/clinet-{id}-eth0"));
    let cached: Value = serde_json::from_slice(&std::fs::read(&cache_file).unwrap()).unwrap();
    assert_eq!(cached["containerId"], id);
    assert_eq!(
        cached["cniArgs"][1],
        serde_json::json!(["K8S_POD_NAME", "web"])
    );

    // CAP_ARGS filtered by capabilities: portMappings on, mac off
    let stdin: Value =
        serde_json::from_str(&std::fs::read_to_string(w.bin.join("stdin.ADD.chained")).unwrap())
            .unwrap();
    assert_eq!(stdin["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
    assert!(stdin["runtimeConfig"].get("mac").is_none());

    ok(&w.run(&["check", "clinet", netns]));
    ok(&w.run(&["del", "clinet", netns]));
    assert!(!cache_file.exists());
    let args = "IgnoreUnknown=1;K8S_POD_NAME=web";
    assert_eq!(
        log_lines(&w.bin),
        vec![
            format!("ADD main {id} eth0 {args}"),
            format!("ADD chained {id} eth0 {args}"),
            format!("CHECK main {id} eth0 "),
            format!("CHECK chained {id} eth0 "),
            format!("DEL chained {id} eth0 "),
            format!("DEL main {id} eth0 "),
        ]
    );
}

#[test]
fn container_id_ifname_and_relative_netns_overrides() {
    let w = World::new("env");
    let out = w
        .cmd(&["add", "clinet", "relative/ns"])
        .env("CNI_CONTAINERID", "my-ctr")
        .env("CNI_IFNAME", "net1")
        .output()
        .unwrap();
    let result: Value = serde_json::from_str(&ok(&out)).unwrap();
    let abs = std::env::current_dir().unwrap().join("relative/ns");
    assert_eq!(
        result["interfaces"][0]["sandbox"],
        abs.display().to_string()
    );
    assert!(w.cache.join("results/clinet-my-ctr-net1").is_file());
    // flags work too
    ok(&w.run(&[
        "del",
        "clinet",
        "relative/ns",
        "--container-id",
        "my-ctr",
        "--ifname",
        "net1",
    ]));
    assert!(!w.cache.join("results/clinet-my-ctr-net1").exists());
    // and without the override, cnitool's ID of the absolute path
    ok(&w.run(&["add", "clinet", "relative/ns"]));
    let id = cnitool_container_id(&abs);
    assert!(w.cache.join(&format!("results/clinet-{id}-eth0")).is_file());
}

#[test]
fn a_conflist_file_can_be_named_directly() {
    let w = World::new("file");
    let file = w.netconf.join("10-clinet.conflist");
    let out = w.run(&[
        "add",
        file.to_str().unwrap(),
        "/run/netns/x",
        "--container-id",
        "c1",
    ]);
    ok(&out);
    assert!(w.cache.join("results/clinet-c1-eth0").is_file());
}

#[test]
fn gc_deletes_stale_cached_attachments_and_sends_gc() {
    let w = World::new("gc");
    ok(&w.run(&["add", "clinet", "/run/netns/a", "--container-id", "keep"]));
    ok(&w.run(&["add", "clinet", "/run/netns/b", "--container-id", "stale"]));
    ok(&w.run(&["gc", "clinet", "--valid", "keep:eth0"]));
    assert!(w.cache.join("results/clinet-keep-eth0").is_file());
    assert!(!w.cache.join("results/clinet-stale-eth0").exists());
    let log = log_lines(&w.bin);
    assert_eq!(
        &log[4..],
        &[
            "DEL chained stale eth0 ",
            "DEL main stale eth0 ",
            "GC main   ",
            "GC chained   "
        ]
    );
    let gc: Value =
        serde_json::from_str(&std::fs::read_to_string(w.bin.join("stdin.GC.main")).unwrap())
            .unwrap();
    assert_eq!(
        gc["cni.dev/valid-attachments"],
        serde_json::json!([{"containerID": "keep", "ifname": "eth0"}])
    );
    // cnitool form: `gc <net> <netns>` with no valid attachments deletes all
    ok(&w.run(&["gc", "clinet", "/run/netns/ignored"]));
    assert!(!w.cache.join("results/clinet-keep-eth0").exists());
}

#[test]
fn status_validate_and_version_print_json() {
    let w = World::new("svv");
    ok(&w.run(&["status", "clinet"]));
    assert_eq!(
        log_lines(&w.bin),
        vec!["STATUS main   ", "STATUS chained   "]
    );
    let v: Value = serde_json::from_str(&ok(&w.run(&["validate", "clinet"]))).unwrap();
    assert_eq!(v["name"], "clinet");
    assert_eq!(v["cniVersion"], "1.1.0");
    assert_eq!(v["plugins"], serde_json::json!(["main", "chained"]));
    assert_eq!(v["capabilities"], serde_json::json!(["portMappings"]));
    let v: Value = serde_json::from_str(&ok(&w.run(&["version", "chained"]))).unwrap();
    assert_eq!(
        v["supportedVersions"],
        serde_json::json!(["1.0.0", "1.1.0"])
    );
}

#[test]
fn errors_go_to_stderr_with_a_non_zero_exit() {
    let w = World::new("err");
    w.netconf.write(
        "00-stray.conf",
        r#"{"cniVersion":"1.0.0","name":"stray","ipam":{}}"#,
    );
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (
            vec!["add", "nosuch", "/run/netns/x"],
            vec![
                format!(
                    "no network configuration named \"nosuch\" in {}",
                    w.netconf.path().display()
                ),
                "00-stray.conf: plugins: missing".to_string(),
            ],
        ),
        (
            vec!["version", "absent"],
            vec![format!(
                "plugin \"absent\" not found in [{}]",
                w.bin.path().display()
            )],
        ),
        (
            vec!["add", "clinet", "/run/netns/x", "--container-id", "bad/id"],
            vec!["invalid container ID \"bad/id\"".to_string()],
        ),
        (
            vec!["add", "clinet", "/run/netns/x", "--args", "novalue"],
            vec!["invalid CNI_ARGS pair \"novalue\"".to_string()],
        ),
        (
            vec!["add", "clinet", "/run/netns/x", "--cap-args", "[1]"],
            vec!["CAP_ARGS: must be a JSON object".to_string()],
        ),
        (
            vec!["gc", "clinet", "--valid", "nocolon"],
            vec!["want CONTAINERID:IFNAME".to_string()],
        ),
    ];
    for (args, wants) in cases {
        let out = w.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        assert!(err.starts_with("cni-conformance: "), "{err}");
        for want in wants {
            assert!(err.contains(&want), "{args:?}: {err}\n  lacks {want}");
        }
    }
    // a plugin's spec error is shown with plugin, verb and code
    w.bin.script(
        "failing",
        r#"cat >/dev/null; echo '{"code":7,"msg":"bad mtu"}'; exit 1"#,
    );
    w.netconf.write(
        "20-fail.conflist",
        r#"{"cniVersion":"1.0.0","name":"failnet","plugins":[{"type":"failing"}]}"#,
    );
    let out = w.run(&["add", "failnet", "/run/netns/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "cni-conformance: network \"failnet\": plugin #0 type=\"failing\" failed (ADD): code 7: bad mtu"
    );
    // usage errors are clap's (exit 2)
    assert_eq!(w.run(&["add", "clinet"]).status.code(), Some(2));
}
