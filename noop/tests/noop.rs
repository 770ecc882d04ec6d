//! noop in all its modes: production pass-through for every cniVersion, the
//! upstream-compatible test double (debug file, command log, every Report*
//! field, ExitWithCode, VERSION), and bridgeNfCallIptables against an
//! injected sysctl root and, privileged, inside a throwaway netns.
//! In-process through `run_with`, plus the real binary for a handful.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine;
use cni::skel::run_with;
use cni::sysctl::Sysctl;
use cni::testing::{privileged, Invocation, TestNetns};
use cni::{CniResult, CniVersion};
use serde_json::{json, Value};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "noop-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }
    fn read_json(&self, path: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.stdout))
    }
}

fn env(command: &str, cni_args: &str) -> HashMap<String, String> {
    let mut e: HashMap<String, String> = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "ctr1"),
        ("CNI_NETNS", "/var/run/netns/noop-test"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if !cni_args.is_empty() {
        e.insert("CNI_ARGS".into(), cni_args.into());
    }
    e
}

fn run_plugin(plugin: &noop::Plugin, env: &HashMap<String, String>, stdin: &str) -> Out {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run_with(plugin, env, stdin.as_bytes(), &mut out, &mut err);
    Out {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
    }
}

fn run(command: &str, cni_args: &str, stdin: &Value) -> Out {
    run_plugin(
        &noop::Plugin::default(),
        &env(command, cni_args),
        &stdin.to_string(),
    )
}

fn conf(version: &str) -> Value {
    json!({"cniVersion": version, "name": "noopnet", "type": "noop"})
}

fn prev_1_0() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:01:00:02", "sandbox": "/var/run/netns/x"}],
        "ips": [{"interface": 0, "address": "10.1.0.2/24", "gateway": "10.1.0.1"},
                {"interface": 0, "address": "fd00:1::2/64"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
        "dns": {"nameservers": ["10.1.0.1"]},
        "x-kept": {"deep": true}
    })
}

// ---------------------------------------------------------------- production

#[test]
fn add_passes_prev_result_through_in_every_version() {
    for &v in CniVersion::ALL {
        let mut stdin = conf(v.as_str());
        stdin["prevResult"] = prev_1_0();
        let o = run("ADD", "K8S_POD_NAME=web;K8S_POD_NAMESPACE=default", &stdin);
        assert_eq!(o.code, 0, "{v}: {}", o.stdout);
        let (r, _) = CniResult::from_value(&prev_1_0(), v).unwrap();
        assert_eq!(o.json(), r.to_value(v).unwrap(), "{v}");
        assert_eq!(o.json()["x-kept"]["deep"], true);
        assert_eq!(o.stderr, "");
    }
}

#[test]
fn add_without_prev_result_prints_an_empty_result_of_the_version() {
    for &v in CniVersion::ALL {
        let o = run("ADD", "", &conf(v.as_str()));
        assert_eq!(o.code, 0, "{v}: {}", o.stdout);
        let want = match v.layout() {
            cni::version::ResultLayout::V1 => json!({"cniVersion": v.as_str()}),
            _ => json!({"cniVersion": v.as_str(), "dns": {}}),
        };
        assert_eq!(o.json(), want, "{v}");
    }
}

#[test]
fn a_prev_result_without_addresses_cannot_be_printed_as_legacy() {
    let mut stdin = conf("0.2.0");
    stdin["prevResult"] = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}]});
    let o = run("ADD", "", &stdin);
    assert_eq!(o.code, 1);
    assert_eq!(o.json()["code"], 1);
    assert_eq!(o.json()["msg"], "cannot convert: no valid IP addresses");
}

#[test]
fn check_del_gc_status_succeed_silently() {
    for &v in CniVersion::ALL {
        let mut stdin = conf(v.as_str());
        stdin["prevResult"] = prev_1_0();
        let mut commands = vec!["DEL"];
        if v.allows_check() {
            commands.push("CHECK");
        }
        if v.allows_gc_and_status() {
            commands.extend(["GC", "STATUS"]);
        }
        for command in commands {
            let o = run(command, "", &stdin);
            assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{v} {command}");
        }
    }
}

#[test]
fn bad_config_fields_are_code_7_and_bad_cni_args_code_4() {
    let mut stdin = conf("1.0.0");
    stdin["bridgeNfCallIptables"] = json!("yes");
    let o = run("ADD", "", &stdin);
    assert_eq!((o.code, o.json()["code"].clone()), (1, json!(7)));
    assert!(o.json()["msg"]
        .as_str()
        .unwrap()
        .contains("bridgeNfCallIptables"));
    let o = run("ADD", "DEBUG", &conf("1.0.0"));
    assert_eq!((o.code, o.json()["code"].clone()), (1, json!(4)));
    assert!(o.json()["msg"].as_str().unwrap().contains("CNI_ARGS"));
}

/// noop owns nothing: no input a runtime sends can make its DEL fail.
#[test]
fn del_with_garbage_input_succeeds_in_every_version() {
    for &v in CniVersion::ALL {
        for (what, extra) in [
            (
                "garbage runtimeConfig",
                json!({"runtimeConfig": "garbage", "args": [1]}),
            ),
            (
                "truncated prevResult",
                json!({"prevResult": {"cniVersion": v.as_str(), "ips": [{"interface": 0}]}}),
            ),
            (
                "prevResult as text",
                json!({"prevResult": "{\"cniVersion\":"}),
            ),
            (
                "bad config field",
                json!({"bridgeNfCallIptables": "yes", "debugFile": 3}),
            ),
            ("bad capabilities", json!({"capabilities": [1]})),
        ] {
            let mut stdin = conf(v.as_str());
            for (k, val) in extra.as_object().unwrap() {
                stdin[k] = val.clone();
            }
            let o = run("DEL", "", &stdin);
            assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{v} {what}");
            if what != "garbage runtimeConfig" {
                assert!(o.stderr.contains("ignor"), "{v} {what}: {}", o.stderr);
            }
            let mut env = env("DEL", "");
            env.insert("CNI_NETNS".into(), String::new());
            let o = run_plugin(&noop::Plugin::default(), &env, &stdin.to_string());
            assert_eq!(
                (o.code, o.stdout.as_str()),
                (0, ""),
                "{v} {what}, CNI_NETNS=\"\""
            );
        }
    }
}

#[test]
fn go_cased_config_keys_are_read() {
    let s = Scratch::new();
    let path = debug_file(&s, json!({"ReportResult": "hello"}));
    let mut stdin = conf("1.0.0");
    stdin["DebugFile"] = json!(path);
    let o = run("ADD", "", &stdin);
    assert_eq!((o.code, o.stdout.as_str()), (0, "hello"));
    // The call is recorded with StdinData; Go's null for empty reads back.
    let mut recorded = s.read_json(&path);
    assert_eq!(recorded["Command"], "ADD");
    recorded["CmdArgs"]["StdinData"] = Value::Null;
    std::fs::write(&path, recorded.to_string()).unwrap();
    let o = run("DEL", "", &stdin);
    assert_eq!((o.code, o.stdout.as_str()), (0, "hello"), "{}", o.stderr);
}

// ---------------------------------------------------------------- test double

fn debug_file(s: &Scratch, fields: Value) -> PathBuf {
    s.file("debug.json", &fields.to_string())
}

#[test]
fn report_result_is_printed_verbatim_and_the_call_recorded() {
    let s = Scratch::new();
    let path = debug_file(&s, json!({"ReportResult": "{ \"result\": \"hello\" }"}));
    let args = format!("IgnoreUnknown=1;DEBUG={}", path.display());
    let stdin = conf("0.4.0");
    let o = run("ADD", &args, &stdin);
    assert_eq!(o.code, 0);
    assert_eq!(o.stdout, "{ \"result\": \"hello\" }");
    let d = s.read_json(&path);
    assert_eq!(d["Command"], "ADD");
    assert_eq!(d["ReportResult"], "{ \"result\": \"hello\" }");
    let rec = &d["CmdArgs"];
    assert_eq!(rec["ContainerID"], "ctr1");
    assert_eq!(rec["Netns"], "/var/run/netns/noop-test");
    assert_eq!(rec["IfName"], "eth0");
    assert_eq!(rec["Args"], args);
    assert_eq!(rec["Path"], "/opt/cni/bin:/usr/lib/cni");
    let stdin_back = base64::engine::general_purpose::STANDARD
        .decode(rec["StdinData"].as_str().unwrap())
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&stdin_back).unwrap(), stdin);

    // DEL behaves the same and records DEL.
    let o = run("DEL", &args, &stdin);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "{ \"result\": \"hello\" }")
    );
    assert_eq!(s.read_json(&path)["Command"], "DEL");
}

#[test]
fn passthrough_and_inject_dns_convert_prev_result() {
    let prev_031 = json!({
        "cniVersion": "0.3.1",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x"}],
        "ips": [{"version": "4", "interface": 0, "address": "10.1.2.3/24"}]
    });
    for (version, mode) in [
        ("0.3.1", "PASSTHROUGH"),
        ("0.4.0", "PASSTHROUGH"),
        ("1.0.0", "INJECT-DNS"),
        ("0.2.0", "INJECT-DNS"),
    ] {
        let s = Scratch::new();
        let path = debug_file(&s, json!({"ReportResult": mode}));
        let mut stdin = conf(version);
        stdin["prevResult"] = prev_031.clone();
        let o = run("ADD", &format!("DEBUG={}", path.display()), &stdin);
        assert_eq!(o.code, 0, "{version} {mode}: {}", o.stdout);
        // Compact JSON, like Go's json.Marshal.
        assert!(!o.stdout.contains('\n'));
        let got = o.json();
        assert_eq!(got["cniVersion"], version);
        let v: CniVersion = version.parse().unwrap();
        let (mut want, _) = CniResult::from_value(&prev_031, v).unwrap();
        if mode == "INJECT-DNS" {
            want.dns.nameservers = vec!["1.2.3.4".into()];
        }
        assert_eq!(got, want.to_value(v).unwrap(), "{version} {mode}");
        if mode == "PASSTHROUGH" && version == "0.3.1" {
            // The upstream double's observed output: prevResult plus "dns": {}.
            let mut expected = prev_031.clone();
            expected["dns"] = json!({});
            assert_eq!(got, expected);
        }
        if mode == "INJECT-DNS" {
            assert_eq!(got["dns"]["nameservers"], json!(["1.2.3.4"]));
        }
    }
}

#[test]
fn debug_file_can_come_from_the_config() {
    let s = Scratch::new();
    let path = debug_file(&s, json!({"ReportResult": "from-config"}));
    let mut stdin = conf("1.0.0");
    stdin["debugFile"] = json!(path.display().to_string());
    let o = run("ADD", "", &stdin);
    assert_eq!((o.code, o.stdout.as_str()), (0, "from-config"));
    assert_eq!(s.read_json(&path)["Command"], "ADD");
}

#[test]
fn empty_report_result_prints_nothing_and_exit_with_code_exits() {
    let s = Scratch::new();
    let path = debug_file(&s, json!({}));
    let args = format!("DEBUG={}", path.display());
    let o = run("ADD", &args, &conf("1.0.0"));
    assert_eq!((o.code, o.stdout.as_str()), (0, ""));
    let path = debug_file(&s, json!({"ExitWithCode": 3}));
    let o = run("ADD", &format!("DEBUG={}", path.display()), &conf("1.0.0"));
    assert_eq!((o.code, o.stdout.as_str()), (3, ""));
}

#[test]
fn report_error_and_stderr() {
    let s = Scratch::new();
    let path = debug_file(
        &s,
        json!({"ReportError": "banana", "ReportStderr": "some stderr\n"}),
    );
    let o = run("ADD", &format!("DEBUG={}", path.display()), &conf("1.0.0"));
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr, "some stderr\n");
    let e = o.json();
    assert_eq!(e["code"], 999);
    assert_eq!(e["msg"], "banana");
    assert_eq!(e["cniVersion"], "1.0.0");

    let path = debug_file(
        &s,
        json!({"ReportError": "later", "ReportErrorCode": 11, "ExitWithCode": 5}),
    );
    let o = run("DEL", &format!("DEBUG={}", path.display()), &conf("1.1.0"));
    assert_eq!(o.code, 1);
    assert_eq!(o.json()["code"], 11);
    assert_eq!(s.read_json(&path)["Command"], "DEL");
}

#[test]
fn command_log_collects_every_command() {
    let s = Scratch::new();
    let path = debug_file(&s, json!({"ReportResult": "PASSTHROUGH"}));
    let log = s.file("log.json", "");
    let mut stdin = conf("1.1.0");
    stdin["commandLog"] = json!(log.display().to_string());
    stdin["debugFile"] = json!(path.display().to_string());
    for command in ["ADD", "CHECK", "DEL", "GC", "STATUS"] {
        let o = run(command, "", &stdin);
        assert_eq!(o.code, 0, "{command}: {}", o.stdout);
    }
    let entries = s.read_json(&log);
    let commands: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["ADD", "CHECK", "DEL", "GC", "STATUS"]);
    assert_eq!(entries[0]["CmdArgs"]["ContainerID"], "ctr1");
    assert_eq!(entries[3]["CmdArgs"]["ContainerID"], "");
    assert_eq!(entries[3]["CmdArgs"]["Path"], "/opt/cni/bin:/usr/lib/cni");
    // A command log that does not exist is an error, as upstream.
    stdin["commandLog"] = json!(s.0.join("absent.json").display().to_string());
    let o = run("ADD", "", &stdin);
    assert_eq!((o.code, o.json()["code"].clone()), (1, json!(5)));
}

#[test]
fn missing_debug_file_is_an_error_naming_it() {
    let o = run("ADD", "DEBUG=/nonexistent/noop-debug.json", &conf("1.0.0"));
    assert_eq!(o.code, 1);
    let e = o.json();
    assert_eq!(e["code"], 5);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .starts_with("noop: reading debug file /nonexistent/noop-debug.json: "),
        "{e}"
    );
    // Even VERSION does not panic: it falls back to the full list.
    let o = run("VERSION", "DEBUG=/nonexistent/noop-debug.json", &json!({}));
    assert_eq!(o.code, 0);
    assert_eq!(o.json()["supportedVersions"].as_array().unwrap().len(), 7);
}

#[test]
fn report_version_support_drives_version_and_acceptance() {
    let s = Scratch::new();
    let path = debug_file(
        &s,
        json!({"ReportVersionSupport": ["0.123.0", "0.2.0"], "ReportResult": "ok"}),
    );
    let args = format!("DEBUG={}", path.display());
    let o = run("VERSION", &args, &json!({}));
    assert_eq!(
        o.stdout,
        "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.123.0\",\"0.2.0\"]}\n"
    );
    let o = run("ADD", &args, &conf("0.2.0"));
    assert_eq!((o.code, o.stdout.as_str()), (0, "ok"));
    let o = run("ADD", &args, &conf("1.0.0"));
    assert_eq!((o.code, o.json()["code"].clone()), (1, json!(1)));
    // Named by the config instead: still enforced for the command.
    let mut stdin = conf("1.0.0");
    stdin["debugFile"] = json!(path.display().to_string());
    let o = run("ADD", "", &stdin);
    assert_eq!((o.code, o.json()["code"].clone()), (1, json!(1)));
}

// ------------------------------------------------------ bridgeNfCallIptables

fn fake_sysctl(s: &Scratch, ip6: Option<&str>) -> Sysctl {
    let root = s.0.join("sys");
    std::fs::create_dir_all(root.join("net/bridge")).unwrap();
    std::fs::write(root.join("net/bridge/bridge-nf-call-iptables"), "0\n").unwrap();
    if let Some(v) = ip6 {
        std::fs::write(root.join("net/bridge/bridge-nf-call-ip6tables"), v).unwrap();
    }
    Sysctl::with_root(root)
}

fn bridge_conf(version: &str) -> Value {
    let mut c = conf(version);
    c["bridgeNfCallIptables"] = json!(true);
    c
}

#[test]
fn bridge_nf_call_iptables_is_set_checked_and_reported() {
    for &v in CniVersion::SINCE_0_3_0 {
        let s = Scratch::new();
        let sysctl = fake_sysctl(&s, Some("0\n"));
        let plugin = noop::Plugin::with_sysctl(sysctl);
        let stdin = bridge_conf(v.as_str()).to_string();
        if v.allows_check() {
            let o = run_plugin(&plugin, &env("CHECK", ""), &stdin);
            assert_eq!(o.code, 1, "{v}: CHECK passed with 0");
            assert!(o.json()["msg"]
                .as_str()
                .unwrap()
                .contains("bridge-nf-call-iptables is 0, expected 1"));
        }
        let o = run_plugin(&plugin, &env("ADD", ""), &stdin);
        assert_eq!(o.code, 0, "{v}: {}", o.stdout);
        for key in ["iptables", "ip6tables"] {
            let value =
                std::fs::read_to_string(s.0.join(format!("sys/net/bridge/bridge-nf-call-{key}")))
                    .unwrap();
            assert_eq!(value, "1", "{v} {key}");
        }
        if v.allows_check() {
            let o = run_plugin(&plugin, &env("CHECK", ""), &stdin);
            assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{v}");
        }
        // DEL leaves the host setting alone (other pods rely on it).
        let o = run_plugin(&plugin, &env("DEL", ""), &stdin);
        assert_eq!(o.code, 0);
        assert_eq!(
            std::fs::read_to_string(s.0.join("sys/net/bridge/bridge-nf-call-iptables")).unwrap(),
            "1"
        );
    }
}

#[test]
fn bridge_nf_call_ip6tables_may_be_absent() {
    let s = Scratch::new();
    let plugin = noop::Plugin::with_sysctl(fake_sysctl(&s, None));
    let o = run_plugin(&plugin, &env("ADD", ""), &bridge_conf("1.0.0").to_string());
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert_eq!(
        std::fs::read_to_string(s.0.join("sys/net/bridge/bridge-nf-call-iptables")).unwrap(),
        "1"
    );
    assert!(!s.0.join("sys/net/bridge/bridge-nf-call-ip6tables").exists());
}

#[test]
fn missing_br_netfilter_is_a_clear_error_and_status_50() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.0.join("sys/net")).unwrap();
    let plugin = noop::Plugin::with_sysctl(Sysctl::with_root(s.0.join("sys")));
    let o = run_plugin(&plugin, &env("ADD", ""), &bridge_conf("1.1.0").to_string());
    assert_eq!(o.code, 1);
    let e = o.json();
    assert_eq!(e["code"], 999);
    assert_eq!(
        e["msg"],
        format!(
            "noop: bridgeNfCallIptables: {}/sys/net/bridge does not exist",
            s.0.display()
        )
    );
    assert!(e["details"]
        .as_str()
        .unwrap()
        .contains("modprobe br_netfilter"));
    let o = run_plugin(
        &plugin,
        &env("STATUS", ""),
        &bridge_conf("1.1.0").to_string(),
    );
    assert_eq!((o.code, o.json()["code"].clone()), (1, json!(50)));
    // Without the option noop does not care.
    let o = run_plugin(&plugin, &env("STATUS", ""), &conf("1.1.0").to_string());
    assert_eq!(o.code, 0);
}

#[test]
fn bridge_nf_call_iptables_for_real_inside_a_netns() {
    if !privileged("bridge_nf_call_iptables_for_real_inside_a_netns") {
        return;
    }
    let host = TestNetns::new("nb");
    if host.try_exec(&["test", "-d", "/proc/sys/net/bridge"]).0 {
        host.exec(&["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0"]);
        host.exec(&[
            "sysctl",
            "-q",
            "-w",
            "net.bridge.bridge-nf-call-ip6tables=0",
        ]);
        let mut inv = Invocation::new("ADD");
        inv.netns = "/var/run/netns/noop-test".into();
        inv.host_netns = Some(host.name.clone());
        let run = inv.run(
            Path::new(env!("CARGO_BIN_EXE_noop")),
            &bridge_conf("1.1.0").to_string(),
        );
        run.assert_ok();
        assert_eq!(run.json(), json!({"cniVersion": "1.1.0"}));
        for key in ["iptables", "ip6tables"] {
            let v = host.exec(&["cat", &format!("/proc/sys/net/bridge/bridge-nf-call-{key}")]);
            assert_eq!(v.trim(), "1", "{key}");
        }
        let mut check = Invocation::new("CHECK");
        check.netns = "/var/run/netns/noop-test".into();
        check.host_netns = Some(host.name.clone());
        check
            .run(
                Path::new(env!("CARGO_BIN_EXE_noop")),
                &bridge_conf("1.1.0").to_string(),
            )
            .assert_ok();
    } else {
        // Without br_netfilter in this kernel: the clear error instead.
        let mut inv = Invocation::new("ADD");
        inv.netns = "/var/run/netns/noop-test".into();
        inv.host_netns = Some(host.name.clone());
        let run = inv.run(
            Path::new(env!("CARGO_BIN_EXE_noop")),
            &bridge_conf("1.1.0").to_string(),
        );
        assert_eq!(run.code, 1);
        assert!(run.json()["details"]
            .as_str()
            .unwrap()
            .contains("br_netfilter"));
    }
}

// ------------------------------------------------------------ real binary

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_noop"))
}

fn invocation(command: &str, args: &str) -> Invocation {
    let mut inv = Invocation::new(command);
    inv.netns = "/var/run/netns/noop-test".into();
    inv.args = args.into();
    inv
}

#[test]
fn the_binary_behaves_like_the_library() {
    let s = Scratch::new();
    let path = debug_file(
        &s,
        json!({"ReportResult": "PASSTHROUGH", "ReportStderr": "to stderr", "ExitWithCode": 4}),
    );
    let mut stdin = conf("0.4.0");
    stdin["prevResult"] = prev_1_0();
    let run =
        invocation("ADD", &format!("DEBUG={}", path.display())).run(binary(), &stdin.to_string());
    assert_eq!(run.code, 4);
    assert_eq!(run.stderr, "to stderr");
    assert_eq!(run.json()["cniVersion"], "0.4.0");
    assert_eq!(s.read_json(&path)["CmdArgs"]["Path"], "/usr/lib/cni");

    // Production mode with Kubernetes CNI_ARGS.
    let run =
        invocation("ADD", "IgnoreUnknown=1;K8S_POD_NAME=web").run(binary(), &stdin.to_string());
    run.assert_ok();
    assert_eq!(run.json()["ips"][0]["version"], "4");

    let run = invocation("", "").run(binary(), "");
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    assert!(run.stderr.starts_with("CNI noop plugin (rust) v"));
}

#[test]
fn bad_invocations_of_the_binary_are_spec_errors() {
    let ok = conf("1.0.0").to_string();
    let cases: Vec<(&str, Invocation, String, u32)> = vec![
        (
            "malformed CNI_ARGS",
            invocation("ADD", "A=b=c"),
            ok.clone(),
            4,
        ),
        (
            "missing debug file",
            invocation("ADD", "DEBUG=/nonexistent/x.json"),
            ok.clone(),
            5,
        ),
        ("unknown command", invocation("REMOVE", ""), ok.clone(), 4),
        (
            "bad ifname",
            {
                let mut i = invocation("ADD", "");
                i.ifname = "a b".into();
                i
            },
            ok.clone(),
            4,
        ),
        (
            "missing container id",
            {
                let mut i = invocation("DEL", "");
                i.container_id = String::new();
                i
            },
            ok.clone(),
            4,
        ),
        ("not JSON", invocation("ADD", ""), "nope".into(), 6),
        (
            "no name",
            invocation("ADD", ""),
            r#"{"cniVersion":"1.0.0"}"#.into(),
            7,
        ),
        (
            "unsupported version",
            invocation("ADD", ""),
            conf("0.5.0").to_string(),
            1,
        ),
        (
            "GC below 1.1.0",
            invocation("GC", ""),
            conf("1.0.0").to_string(),
            1,
        ),
    ];
    for (name, inv, stdin, code) in cases {
        let run = inv.run(binary(), &stdin);
        assert_eq!(run.code, 1, "{name}: {}", run.stdout);
        let e = run.json();
        assert_eq!(e["code"], code, "{name}: {e}");
        assert!(!e["msg"].as_str().unwrap().is_empty());
    }
}

#[test]
fn the_binary_exits_with_a_code_when_its_stdout_reader_is_gone() {
    use std::os::fd::{FromRawFd, OwnedFd};
    // A pipe whose read end is closed before the plugin starts: its answer
    // meets EPIPE. Rust's runtime, which a `#![no_main]` plugin does not
    // run, would have ignored SIGPIPE; cni::skel::run must do it itself,
    // or the plugin dies of the signal instead of exiting.
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills both descriptors, which are owned below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fresh descriptors of this process, each owned once.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_noop"))
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), None, "{status:?}");
    assert_eq!(status.code(), Some(0));
}
