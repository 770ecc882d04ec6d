//! Per-plugin protocol checks that need no network: VERSION answers with
//! valid JSON listing the versions runtimes use, and bad input (broken JSON,
//! unknown version, missing environment, missing name, an invalid plugin
//! field) gives a spec error JSON on stdout with the right code and a
//! non-zero exit. Plugins run inside a throwaway host netns, never the real one.

use std::path::Path;

use cni::CniVersion;
use serde_json::{json, Value};

use super::{invoke, version_document, CheckError, Checked, Ctx, MainPlugin, Recorder, PLUGINS};
use crate::topology::{Netns, Pod};

/// Versions every production runtime config uses today.
const MUST_SUPPORT: &[&str] = &["0.3.1", "0.4.0", "1.0.0"];

pub(super) fn version_scenario(ctx: &Ctx, r: &mut Recorder, _v: CniVersion, _m: MainPlugin) {
    for plugin in PLUGINS.iter().chain(["noop"].iter()) {
        let path = ctx.plugin_path(plugin);
        if !path.is_file() {
            r.skip(
                plugin,
                &format!("plugin binary {} is missing", path.display()),
            );
            continue;
        }
        r.check(plugin, || version_answer(&path));
    }
}

/// VERSION of the binary at `path`: valid JSON listing known versions,
/// including every version runtimes send.
fn version_answer(path: &Path) -> Checked<Option<String>> {
    let v = version_document(path)?;
    if !v["cniVersion"].is_string() {
        return Err(CheckError::unexpected(format!(
            "VERSION output has no cniVersion: {v}"
        )));
    }
    let list: Vec<String> = v["supportedVersions"]
        .as_array()
        .ok_or_else(|| {
            CheckError::unexpected(format!("VERSION output has no supportedVersions list: {v}"))
        })?
        .iter()
        .map(|s| s.as_str().unwrap_or("?").to_string())
        .collect();
    if let Some(bad) = list.iter().find(|s| s.parse::<CniVersion>().is_err()) {
        return Err(CheckError::unexpected(format!(
            "supportedVersions lists unknown version {bad:?}"
        )));
    }
    let missing: Vec<&&str> = MUST_SUPPORT
        .iter()
        .filter(|m| !list.iter().any(|s| s == **m))
        .collect();
    if !missing.is_empty() {
        return Err(CheckError::unexpected(format!(
            "supportedVersions {list:?} lacks {missing:?} (what runtimes send)"
        )));
    }
    Ok(Some(format!("supports {}", list.join(", "))))
}

/// A prevResult shaped like a main plugin's, for plugins that need one.
fn prev_result(version: CniVersion, netns: &str) -> Value {
    let raw = json!({
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": "veth0", "mac": "02:00:00:00:00:01"},
            {"name": "eth0", "mac": "02:00:00:00:00:02", "sandbox": netns}
        ],
        "ips": [{"address": "10.99.0.2/24", "gateway": "10.99.0.1", "interface": 1}]
    });
    cni::CniResult::from_value(&raw, CniVersion::V1_1_0)
        .ok()
        .and_then(|(r, _)| r.to_value(version).ok())
        .unwrap_or(raw)
}

/// (check name, stdin, expected code) of the plugin-specific invalid field.
fn invalid_field(plugin: &str, version: &str, prev: &Value) -> Option<(&'static str, Value)> {
    let base = |extra: Value| {
        let mut v =
            json!({"cniVersion": version, "name": "badnet", "type": plugin, "prevResult": prev});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        v
    };
    match plugin {
        "portmap" => Some((
            "invalid-host-port",
            base(json!({
                "capabilities": {"portMappings": true},
                "runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80, "protocol": "tcp"}]}
            })),
        )),
        "bandwidth" => Some((
            "rate-without-burst",
            base(json!({"ingressRate": 1_000_000})),
        )),
        "tuning" => Some((
            "non-net-sysctl",
            base(json!({"sysctl": {"kernel.hostname": "pwned"}})),
        )),
        _ => None,
    }
}

pub(super) fn bad_input_scenario(ctx: &Ctx, r: &mut Recorder, _v: CniVersion, _m: MainPlugin) {
    let host = match Netns::new("badh") {
        Ok(h) => h,
        Err(e) => return r.setup_failed(e),
    };
    let pod = match Pod::new("bad") {
        Ok(p) => p,
        Err(e) => return r.setup_failed(e),
    };
    let netns = pod.netns.path().to_string_lossy().into_owned();
    for plugin in PLUGINS {
        let path = ctx.plugin_path(plugin);
        if !path.is_file() {
            r.skip(
                &format!("{plugin}/all"),
                &format!("plugin binary {} is missing", path.display()),
            );
            continue;
        }
        let version = ctx
            .versions_of(&path)
            .ok()
            .and_then(|vs| vs.iter().max().copied())
            .unwrap_or(CniVersion::V1_0_0);
        let cases = bad_cases(plugin, version, &netns);
        for (name, env, stdin, want) in cases {
            r.check(&format!("{plugin}/{name}"), || {
                let run = invoke(Some(&host), &path, &env, &stdin)?;
                spec_error(&run, want)
            });
        }
    }
}

/// (check name, environment, stdin, expected error code).
/// The bad inputs `plugin` must answer with a spec error, each with the code
/// it must carry: `(case name, env, stdin, code)`.
fn bad_cases<'a>(plugin: &str, version: CniVersion, netns: &'a str) -> Vec<BadCase<'a>> {
    let v = version.as_str();
    let prev = prev_result(version, netns);
    let env_full: Vec<(&str, &str)> = vec![
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "bad-input"),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent"),
    ];
    let mut cases: Vec<BadCase> = vec![
        (
            "invalid-json".into(),
            env_full.clone(),
            br#"{"cniVersion": "#.to_vec(),
            6,
        ),
        (
            "unknown-version".into(),
            env_full.clone(),
            json!({"cniVersion": "9.9.9", "name": "badnet", "type": plugin})
                .to_string()
                .into_bytes(),
            1,
        ),
        (
            "missing-containerid".into(),
            env_full
                .iter()
                .copied()
                .filter(|(k, _)| *k != "CNI_CONTAINERID")
                .collect(),
            json!({"cniVersion": v, "name": "badnet", "type": plugin})
                .to_string()
                .into_bytes(),
            4,
        ),
        (
            "missing-name".into(),
            env_full.clone(),
            json!({"cniVersion": v, "type": plugin, "prevResult": prev})
                .to_string()
                .into_bytes(),
            7,
        ),
    ];
    if let Some((name, stdin)) = invalid_field(plugin, v, &prev) {
        cases.push((
            name.into(),
            env_full.clone(),
            stdin.to_string().into_bytes(),
            7,
        ));
    }
    cases
}

type BadCase<'a> = (String, Vec<(&'a str, &'a str)>, Vec<u8>, u32);

/// The run failed with a spec error JSON of code `want` on stdout.
fn spec_error(run: &super::PluginRun, want: u32) -> Checked<Option<String>> {
    if run.code == Some(0) {
        return Err(CheckError::unexpected(format!(
            "exited 0 (stdout {:?})",
            run.stdout.trim()
        )));
    }
    if run.code.is_none() || run.code == Some(2) {
        return Err(CheckError::unexpected(format!(
            "crashed (exit {:?}; stderr {:?})",
            run.code,
            run.stderr.trim()
        )));
    }
    let v: Value = serde_json::from_str(run.stdout.trim()).map_err(|e| {
        CheckError::unexpected(format!(
            "stdout is not an error JSON ({e}): {:?}",
            run.stdout.trim()
        ))
    })?;
    let code = v["code"]
        .as_u64()
        .ok_or_else(|| CheckError::unexpected(format!("error JSON has no numeric code: {v}")))?;
    let msg = v["msg"].as_str().unwrap_or_default();
    if msg.is_empty() {
        return Err(CheckError::unexpected(format!(
            "error JSON has no msg: {v}"
        )));
    }
    if code != u64::from(want) {
        return Err(CheckError::unexpected(format!(
            "expected code {want}, got {code} ({msg:?})"
        )));
    }
    Ok(Some(format!("code {code}: {msg}")))
}
