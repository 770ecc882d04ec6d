//! skel dispatch, in-process through `run_with`: every command reaches the
//! right handler with validated inputs, results are printed in the requested
//! layout, and every bad input (env, stdin, versions, CNI_ARGS, netns) gives
//! a spec error JSON on stdout and exit 1. No privileges needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;

use cni::skel::run_with;
use cni::types::Cidr;
use cni::{CmdArgs, CniError, CniResult, CniVersion, GcRequest, Reply, Request, StatusRequest};
use serde_json::{json, Value};

/// Records what it was called with; ADD echoes prevResult or a fixed result.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<String>>,
    only_since_0_3: bool,
}

fn fixed_result() -> CniResult {
    let mut r = CniResult::default();
    r.ips.push(cni::types::IpConfig {
        interface: None,
        address: "10.1.2.3/24".parse::<Cidr>().unwrap(),
        gateway: Some("10.1.2.1".parse().unwrap()),
        extra: Default::default(),
    });
    r
}

impl cni::Plugin for Recorder {
    fn about(&self) -> String {
        "recorder test plugin".into()
    }
    fn supported_versions(&self, _cmd: &CmdArgs) -> Vec<CniVersion> {
        if self.only_since_0_3 {
            CniVersion::SINCE_0_3_0.to_vec()
        } else {
            CniVersion::ALL.to_vec()
        }
    }
    fn add(&self, req: &Request) -> Result<Reply, CniError> {
        // A plugin that uses CNI_ARGS validates them.
        req.cni_args()?.check_known(&["MAC"])?;
        self.seen.lock().unwrap().push(format!(
            "ADD {} {:?} {} {}",
            req.cmd.container_id, req.cmd.netns, req.cmd.ifname, req.version
        ));
        Ok(Reply::Result(
            req.prev_result.clone().unwrap_or_else(fixed_result),
        ))
    }
    fn check(&self, req: &Request) -> Result<Reply, CniError> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("CHECK prev={}", req.prev_result.is_some()));
        Ok(Reply::Empty)
    }
    fn del(&self, req: &Request) -> Result<Reply, CniError> {
        self.seen.lock().unwrap().push(format!(
            "DEL netns={:?} prev={}",
            req.cmd.netns,
            req.prev_result.is_some()
        ));
        Ok(Reply::Empty)
    }
    fn gc(&self, req: &GcRequest) -> Result<Reply, CniError> {
        self.seen.lock().unwrap().push(format!(
            "GC {:?}",
            req.valid_attachments
                .iter()
                .map(|a| format!("{}/{}", a.container_id, a.ifname))
                .collect::<Vec<_>>()
        ));
        Ok(Reply::Empty)
    }
    fn status(&self, req: &StatusRequest) -> Result<Reply, CniError> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("STATUS {}", req.conf.name));
        Ok(Reply::Empty)
    }
}

struct Panicker;

impl cni::Plugin for Panicker {
    fn about(&self) -> String {
        "panics".into()
    }
    fn add(&self, _req: &Request) -> Result<Reply, CniError> {
        panic!("boom in add")
    }
    fn check(&self, _req: &Request) -> Result<Reply, CniError> {
        let v: Vec<u8> = Vec::new();
        let idx = v.len() + 3;
        Ok(Reply::Raw {
            stdout: v[idx].to_string(),
            stderr: String::new(),
            exit_code: 0,
        })
    }
    fn del(&self, _req: &Request) -> Result<Reply, CniError> {
        Ok(Reply::Raw {
            stdout: "raw out".into(),
            stderr: "raw err\n".into(),
            exit_code: 3,
        })
    }
}

fn env(command: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut e: HashMap<String, String> = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "ctr1"),
        ("CNI_NETNS", "/var/run/netns/nonexistent-test-ns"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        if v.is_empty() {
            e.remove(*k);
        } else {
            e.insert(k.to_string(), v.to_string());
        }
    }
    e
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }
}

fn run(plugin: &dyn cni::Plugin, env: &HashMap<String, String>, stdin: &str) -> Outcome {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run_with(plugin, env, stdin.as_bytes(), &mut out, &mut err);
    Outcome {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
    }
}

fn conf(version: &str) -> String {
    json!({"cniVersion": version, "name": "testnet", "type": "recorder"}).to_string()
}

#[test]
fn add_prints_the_result_in_every_version_layout() {
    let p = Recorder::default();
    for v in CniVersion::ALL {
        let o = run(&p, &env("ADD", &[]), &conf(v.as_str()));
        assert_eq!(o.code, 0, "{v}: {}", o.stdout);
        let j = o.json();
        assert_eq!(j["cniVersion"], v.as_str());
        match v.layout() {
            cni::version::ResultLayout::Legacy => {
                assert_eq!(j["ip4"]["ip"], "10.1.2.3/24");
                assert_eq!(j["ip4"]["gateway"], "10.1.2.1");
                assert!(j.get("ips").is_none());
            }
            cni::version::ResultLayout::V04 => {
                assert_eq!(j["ips"][0]["version"], "4");
                assert_eq!(j["dns"], json!({}));
            }
            cni::version::ResultLayout::V1 => {
                assert!(j["ips"][0].get("version").is_none());
                assert!(j.get("dns").is_none());
            }
        }
        // Four-space indentation, no trailing newline (as Go prints it).
        assert!(o.stdout.contains("\n    \"cniVersion\""), "{}", o.stdout);
        assert!(!o.stdout.ends_with('\n'));
    }
    let seen = p.seen.lock().unwrap();
    assert_eq!(seen.len(), CniVersion::ALL.len());
    assert_eq!(
        seen[0],
        r#"ADD ctr1 Some("/var/run/netns/nonexistent-test-ns") eth0 0.1.0"#
    );
}

#[test]
fn add_passes_prev_result_through_converted() {
    let p = Recorder::default();
    let stdin = json!({
        "cniVersion": "1.0.0", "name": "n", "type": "recorder",
        "prevResult": {
            "cniVersion": "0.3.1",
            "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x", "x-iface": 1}],
            "ips": [{"version": "4", "interface": 0, "address": "10.0.0.2/24"}],
            "x-top": "kept"
        }
    });
    let o = run(&p, &env("ADD", &[]), &stdin.to_string());
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert_eq!(
        o.json(),
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x", "x-iface": 1}],
            "ips": [{"interface": 0, "address": "10.0.0.2/24"}],
            "x-top": "kept"
        })
    );
}

#[test]
fn version_reports_current_and_supported() {
    let o = run(&Recorder::default(), &env("VERSION", &[]), "");
    assert_eq!(o.code, 0);
    assert_eq!(
        o.stdout,
        "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.1.0\",\"0.2.0\",\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
    );
    // VERSION needs none of the other variables and ignores stdin.
    let bare: HashMap<String, String> = [("CNI_COMMAND".to_string(), "VERSION".to_string())].into();
    let o = run(&Recorder::default(), &bare, "garbage");
    assert_eq!(o.code, 0);
    assert_eq!(o.json()["cniVersion"], "1.1.0");
}

#[test]
fn no_command_prints_about_on_stderr() {
    let o = run(&Recorder::default(), &HashMap::new(), "");
    assert_eq!(o.code, 0);
    assert_eq!(o.stdout, "");
    assert!(o.stderr.starts_with("recorder test plugin\n"));
    assert!(o.stderr.contains(
        "CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"
    ));
}

#[test]
fn del_check_gc_status_reach_their_handlers() {
    let p = Recorder::default();
    // DEL without CNI_NETNS and with an unparsable prevResult is fine.
    let stdin = json!({"cniVersion": "1.1.0", "name": "n", "prevResult": {"ips": "nonsense"}});
    let o = run(&p, &env("DEL", &[("CNI_NETNS", "")]), &stdin.to_string());
    assert_eq!((o.code, o.stdout.as_str()), (0, ""));
    assert!(
        o.stderr.starts_with(
            "ignoring prevResult (DEL does not need it): decoding result: ips: invalid type"
        ),
        "{}",
        o.stderr
    );
    let o = run(&p, &env("CHECK", &[]), &conf("0.4.0"));
    assert_eq!((o.code, o.stdout.as_str()), (0, ""));
    // GC and STATUS need only CNI_COMMAND (CNI_PATH is optional, as the spec says).
    let gc_env: HashMap<String, String> = [("CNI_COMMAND".to_string(), "GC".to_string())].into();
    let gc = json!({"cniVersion": "1.1.0", "name": "n",
        "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]});
    let o = run(&p, &gc_env, &gc.to_string());
    assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{}", o.stdout);
    let status_env: HashMap<String, String> =
        [("CNI_COMMAND".to_string(), "STATUS".to_string())].into();
    let o = run(&p, &status_env, &conf("1.1.0"));
    assert_eq!((o.code, o.stdout.as_str()), (0, ""));
    assert_eq!(
        *p.seen.lock().unwrap(),
        vec![
            "DEL netns=None prev=false".to_string(),
            "CHECK prev=false".into(),
            r#"GC ["c1/eth0"]"#.into(),
            "STATUS testnet".into(),
        ]
    );
}

#[test]
fn panics_become_internal_errors() {
    for (command, needle) in [("ADD", "boom in add"), ("CHECK", "index out of bounds")] {
        let o = run(&Panicker, &env(command, &[]), &conf("1.1.0"));
        assert_eq!(o.code, 1);
        let j = o.json();
        assert_eq!(j["code"], 999);
        let msg = j["msg"].as_str().unwrap();
        assert!(msg.starts_with("plugin panicked: "), "{msg}");
        assert!(msg.contains(needle), "{msg}");
    }
}

#[test]
fn raw_replies_print_verbatim_with_their_exit_code() {
    let o = run(&Panicker, &env("DEL", &[]), &conf("1.1.0"));
    assert_eq!(o.code, 3);
    assert_eq!(o.stdout, "raw out");
    assert_eq!(o.stderr, "raw err\n");
}

#[test]
fn own_netns_is_refused_unless_overridden() {
    let own = cni::netns::THREAD_NETNS;
    for command in ["ADD", "CHECK", "DEL"] {
        let p = Recorder::default();
        let o = run(&p, &env(command, &[("CNI_NETNS", own)]), &conf("1.1.0"));
        assert_eq!(o.code, 1, "{command}");
        let j = o.json();
        assert_eq!(j["code"], 8);
        assert_eq!(
            j["msg"],
            "plugin's netns and netns from CNI_NETNS should not be the same"
        );
        assert!(
            p.seen.lock().unwrap().is_empty(),
            "handler ran for {command}"
        );
        for value in ["true", "TRUE", "1"] {
            let o = run(
                &p,
                &env(
                    command,
                    &[("CNI_NETNS", own), ("CNI_NETNS_OVERRIDE", value)],
                ),
                &conf("1.1.0"),
            );
            assert_eq!(o.code, 0, "{command} override {value}: {}", o.stdout);
        }
    }
}

/// One bad input: env overrides, stdin, expected code and a message fragment.
struct Bad {
    name: &'static str,
    command: &'static str,
    env: &'static [(&'static str, &'static str)],
    stdin: String,
    code: u32,
    msg: &'static str,
}

fn bad(
    name: &'static str,
    command: &'static str,
    env: &'static [(&'static str, &'static str)],
    stdin: impl Into<String>,
    code: u32,
    msg: &'static str,
) -> Bad {
    Bad {
        name,
        command,
        env,
        stdin: stdin.into(),
        code,
        msg,
    }
}

fn bad_inputs() -> Vec<Bad> {
    let ok = conf("1.1.0");
    let own = cni::netns::THREAD_NETNS;
    let own_env: &'static [(&'static str, &'static str)] =
        Box::leak(vec![("CNI_NETNS", own)].into_boxed_slice());
    vec![
        bad(
            "unknown command",
            "BOGUS",
            &[],
            ok.clone(),
            4,
            "unknown CNI_COMMAND: BOGUS",
        ),
        bad(
            "lowercase command",
            "add",
            &[],
            ok.clone(),
            4,
            "unknown CNI_COMMAND: add",
        ),
        bad(
            "ADD without container id",
            "ADD",
            &[("CNI_CONTAINERID", "")],
            ok.clone(),
            4,
            "required env variables [CNI_CONTAINERID] missing",
        ),
        bad(
            "ADD without netns",
            "ADD",
            &[("CNI_NETNS", "")],
            ok.clone(),
            4,
            "required env variables [CNI_NETNS] missing",
        ),
        bad(
            "ADD without anything",
            "ADD",
            &[
                ("CNI_CONTAINERID", ""),
                ("CNI_NETNS", ""),
                ("CNI_IFNAME", ""),
            ],
            ok.clone(),
            4,
            "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing",
        ),
        bad(
            "CHECK without netns",
            "CHECK",
            &[("CNI_NETNS", "")],
            conf("0.4.0"),
            4,
            "[CNI_NETNS]",
        ),
        bad(
            "DEL without ifname",
            "DEL",
            &[("CNI_IFNAME", "")],
            ok.clone(),
            4,
            "[CNI_IFNAME]",
        ),
        bad(
            "DEL without container id",
            "DEL",
            &[("CNI_CONTAINERID", "")],
            ok.clone(),
            4,
            "[CNI_CONTAINERID]",
        ),
        bad(
            "container id starting with dash",
            "ADD",
            &[("CNI_CONTAINERID", "-abc")],
            ok.clone(),
            4,
            "invalid characters in containerID",
        ),
        bad(
            "container id with slash",
            "DEL",
            &[("CNI_CONTAINERID", "a/b")],
            ok.clone(),
            4,
            "invalid characters in containerID",
        ),
        bad(
            "container id with space",
            "CHECK",
            &[("CNI_CONTAINERID", "a b")],
            conf("1.0.0"),
            4,
            "invalid characters in containerID",
        ),
        bad(
            "ifname too long",
            "ADD",
            &[("CNI_IFNAME", "abcdefghijklmnop")],
            ok.clone(),
            4,
            "CNI_IFNAME: interface name is too long",
        ),
        bad(
            "ifname dot",
            "ADD",
            &[("CNI_IFNAME", ".")],
            ok.clone(),
            4,
            "CNI_IFNAME: interface name is . or ..",
        ),
        bad(
            "ifname dotdot",
            "DEL",
            &[("CNI_IFNAME", "..")],
            ok.clone(),
            4,
            "interface name is . or ..",
        ),
        bad(
            "ifname slash",
            "ADD",
            &[("CNI_IFNAME", "eth/0")],
            ok.clone(),
            4,
            "interface name contains / or : or whitespace characters",
        ),
        bad(
            "ifname colon",
            "ADD",
            &[("CNI_IFNAME", "eth0:1")],
            ok.clone(),
            4,
            "interface name contains / or : or whitespace characters",
        ),
        bad(
            "ifname tab",
            "CHECK",
            &[("CNI_IFNAME", "eth\t0")],
            conf("0.4.0"),
            4,
            "interface name contains / or : or whitespace characters",
        ),
        bad(
            "empty stdin",
            "ADD",
            &[],
            "",
            6,
            "error parsing network config from stdin",
        ),
        bad(
            "truncated JSON",
            "ADD",
            &[],
            "{\"name\": \"n\"",
            6,
            "error parsing network config",
        ),
        bad("JSON array", "DEL", &[], "[]", 6, "not a JSON object"),
        bad(
            "numeric cniVersion",
            "ADD",
            &[],
            r#"{"cniVersion":1,"name":"n"}"#,
            6,
            "error parsing network config",
        ),
        bad(
            "non-bool capability",
            "ADD",
            &[],
            r#"{"cniVersion":"1.0.0","name":"n","capabilities":{"portMappings":"yes"}}"#,
            6,
            "error parsing network config",
        ),
        bad(
            "missing name",
            "ADD",
            &[],
            r#"{"cniVersion":"1.0.0"}"#,
            7,
            "missing network name",
        ),
        bad(
            "bad name",
            "ADD",
            &[],
            r#"{"cniVersion":"1.0.0","name":"my net"}"#,
            7,
            "invalid characters found in network name",
        ),
        bad(
            "unknown version",
            "ADD",
            &[],
            conf("9.9.9"),
            1,
            "incompatible CNI versions",
        ),
        bad(
            "CHECK on 0.3.1",
            "CHECK",
            &[],
            conf("0.3.1"),
            1,
            "config version does not allow CHECK",
        ),
        bad(
            "CHECK on absent version",
            "CHECK",
            &[],
            r#"{"name":"n"}"#,
            1,
            "config version does not allow CHECK",
        ),
        bad(
            "GC on 1.0.0",
            "GC",
            &[],
            conf("1.0.0"),
            1,
            "config version does not allow GC",
        ),
        bad(
            "STATUS on 0.4.0",
            "STATUS",
            &[],
            conf("0.4.0"),
            1,
            "config version does not allow STATUS",
        ),
        bad(
            "bad prevResult address",
            "ADD",
            &[],
            r#"{"cniVersion":"1.0.0","name":"n","prevResult":{"ips":[{"address":"10.0.0.300/24"}]}}"#,
            6,
            "parsing prevResult",
        ),
        bad(
            "prevResult of unknown version",
            "ADD",
            &[],
            r#"{"cniVersion":"1.0.0","name":"n","prevResult":{"cniVersion":"7.0.0"}}"#,
            1,
            "parsing prevResult",
        ),
        bad(
            "prevResult without IPs to 0.2.0",
            "ADD",
            &[],
            r#"{"cniVersion":"0.2.0","name":"n","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}]}}"#,
            1,
            "cannot convert: no valid IP addresses",
        ),
        bad(
            "CNI_ARGS without =",
            "ADD",
            &[("CNI_ARGS", "garbage")],
            ok.clone(),
            4,
            "CNI_ARGS: invalid pair \"garbage\"",
        ),
        bad(
            "CNI_ARGS with two =",
            "ADD",
            &[("CNI_ARGS", "A=b=c")],
            ok.clone(),
            4,
            "CNI_ARGS: invalid pair",
        ),
        bad(
            "CNI_ARGS unknown key",
            "ADD",
            &[("CNI_ARGS", "K8S_POD_NAME=web")],
            ok.clone(),
            4,
            "CNI_ARGS: unknown args [\"K8S_POD_NAME=web\"]",
        ),
        bad(
            "own netns",
            "ADD",
            own_env,
            ok.clone(),
            8,
            "should not be the same",
        ),
    ]
}

#[test]
fn every_bad_input_is_a_spec_error_with_exit_1() {
    let cases = bad_inputs();
    assert!(cases.len() >= 30, "only {} bad inputs", cases.len());
    for case in &cases {
        let p = Recorder::default();
        let o = run(&p, &env(case.command, case.env), &case.stdin);
        assert_eq!(o.code, 1, "{}: exit code, stdout {}", case.name, o.stdout);
        let j = o.json();
        assert_eq!(j["code"], case.code, "{}: {j}", case.name);
        let msg = j["msg"].as_str().unwrap();
        assert!(
            msg.contains(case.msg) || j["details"].as_str().unwrap_or("").contains(case.msg),
            "{}: {j}",
            case.name
        );
        assert!(
            j["cniVersion"]
                .as_str()
                .unwrap()
                .parse::<CniVersion>()
                .is_ok(),
            "{}: {j}",
            case.name
        );
        assert!(o.stdout.ends_with("}\n"));
        // Nothing reached the handler, except for the one failure that
        // happens while printing the handler's result.
        if case.name != "prevResult without IPs to 0.2.0" {
            assert!(p.seen.lock().unwrap().is_empty(), "{}", case.name);
        }
    }
}

#[test]
fn version_errors_name_both_sides() {
    let o = run(&Recorder::default(), &env("ADD", &[]), &conf("9.9.9"));
    assert_eq!(
        o.json()["details"],
        r#"config is "9.9.9", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#
    );
    // An absent cniVersion means 0.1.0.
    let p = Recorder {
        only_since_0_3: true,
        ..Default::default()
    };
    let o = run(&p, &env("ADD", &[]), r#"{"name":"n"}"#);
    assert_eq!(o.json()["code"], 1);
    assert_eq!(
        o.json()["details"],
        r#"config is "0.1.0", plugin supports ["0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#
    );
    let o = run(&p, &env("ADD", &[]), &conf("0.2.0"));
    assert_eq!(o.json()["code"], 1);
}

#[test]
fn dispatch_is_parallel_safe() {
    let p = Recorder::default();
    std::thread::scope(|s| {
        for i in 0..8 {
            let p = &p;
            s.spawn(move || {
                let id = format!("ctr{i}");
                let o = run(p, &env("ADD", &[("CNI_CONTAINERID", &id)]), &conf("1.0.0"));
                assert_eq!(o.code, 0);
            });
        }
    });
    assert_eq!(p.seen.lock().unwrap().len(), 8);
}

/// Go's `encoding/json` matches keys case-insensitively (exact first) and
/// reads `null` as absent; runtimes written in Go rely on it.
#[test]
fn common_fields_are_read_with_go_key_matching() {
    struct Conf;
    impl cni::Plugin for Conf {
        fn about(&self) -> String {
            "conf".into()
        }
        fn add(&self, req: &Request) -> Result<Reply, CniError> {
            let c = &req.conf;
            let got = json!({
                "name": c.name, "type": c.plugin_type, "version": req.version.as_str(),
                "caps": c.capabilities, "rc": c.runtime_config, "args": c.args,
                "mac": c.args_cni("mac"),
                "prev": req.prev_result.as_ref().map(|p| p.ips[0].address.to_string()),
            });
            Ok(Reply::Raw {
                stdout: got.to_string(),
                stderr: String::new(),
                exit_code: 0,
            })
        }
        fn check(&self, _req: &Request) -> Result<Reply, CniError> {
            Ok(Reply::Empty)
        }
        fn del(&self, _req: &Request) -> Result<Reply, CniError> {
            Ok(Reply::Empty)
        }
    }
    let want = json!({
        "name": "n", "type": "conf", "version": "1.0.0",
        "caps": {"portMappings": true}, "rc": {"portMappings": []},
        "args": {"cni": {"mac": "02:00:00:00:00:01"}}, "mac": "02:00:00:00:00:01",
        "prev": "10.0.0.2/24",
    });
    let lower = json!({"cniVersion": "1.0.0", "name": "n", "type": "conf",
        "capabilities": {"portMappings": true}, "runtimeConfig": {"portMappings": []},
        "args": {"cni": {"mac": "02:00:00:00:00:01"}},
        "prevResult": {"ips": [{"address": "10.0.0.2/24"}]}});
    let go = json!({"CNIVersion": "1.0.0", "Name": "n", "Type": "conf",
        "Capabilities": {"portMappings": true}, "RuntimeConfig": {"portMappings": []},
        "Args": {"cni": {"mac": "02:00:00:00:00:01"}},
        "PrevResult": {"IPs": [{"Address": "10.0.0.2/24"}]}, "DNS": null});
    let mixed = json!({"cNiVeRsIoN": "1.0.0", "nAmE": "n", "TYPE": "conf",
        "capabilities": null, "CAPABILITIES": {"portMappings": true},
        "runtimeconfig": {"portMappings": []}, "ARGS": {"cni": {"mac": "02:00:00:00:00:01"}},
        "prevresult": {"ips": [{"address": "10.0.0.2/24"}]}});
    for stdin in [lower, go, mixed] {
        let o = run(&Conf, &env("ADD", &[]), &stdin.to_string());
        assert_eq!(o.code, 0, "{stdin}: {}", o.stdout);
        assert_eq!(o.json(), want, "{stdin}");
    }
}

/// DEL never fails on input it does not need: a malformed prevResult or
/// common field is reported on stderr and ignored; broken JSON, a missing
/// name and bad environment stay errors.
#[test]
fn del_ignores_malformed_fields_it_does_not_need() {
    let p = Recorder::default();
    for stdin in [
        r#"{"cniVersion":"1.0.0","name":"n","prevResult":"garbage"}"#,
        // A prevResult cut short: an entry without its address, or as text.
        r#"{"cniVersion":"1.0.0","name":"n","prevResult":{"cniVersion":"1.0.0","ips":[{"interface":0}]}}"#,
        r#"{"cniVersion":"1.0.0","name":"n","prevResult":"{\"cniVersion\":\"1.0.0\",\"ips\":[{"}"#,
        r#"{"cniVersion":"1.0.0","name":"n","prevResult":{"interfaces":5}}"#,
        r#"{"cniVersion":"1.0.0","name":"n","capabilities":"all"}"#,
        r#"{"cniVersion":"1.0.0","name":"n","Capabilities":{"portMappings":"yes"}}"#,
        r#"{"cniVersion":"1.0.0","name":"n","cni.dev/valid-attachments":7}"#,
    ] {
        let o = run(&p, &env("DEL", &[]), stdin);
        assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{stdin}");
        assert!(o.stderr.starts_with("ignoring "), "{stdin}: {}", o.stderr);
        // ADD and CHECK still refuse it.
        let o = run(&p, &env("ADD", &[]), stdin);
        assert_eq!(o.code, 1, "{stdin}");
    }
    // Truncated stdin is not JSON at all: code 6, as the spec says.
    let o = run(
        &p,
        &env("DEL", &[]),
        r#"{"cniVersion":"1.0.0","name":"n","prevResult":{"ips":[{"#,
    );
    assert_eq!((o.code, o.json()["code"].as_u64()), (1, Some(6)));
    for (stdin, env) in [
        (r#"{"cniVersion":"1.0.0","name":5}"#, env("DEL", &[])),
        (r#"{"cniVersion":"1.0.0"}"#, env("DEL", &[])),
        (
            conf("1.0.0").as_str(),
            env("DEL", &[("CNI_CONTAINERID", "")]),
        ),
    ] {
        let o = run(&p, &env, stdin);
        assert_eq!(o.code, 1, "{stdin}");
    }
}
