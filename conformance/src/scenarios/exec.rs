//! Running a plugin binary directly, the way the suite's bad-input and
//! VERSION checks do (no runtime in between): exactly the CNI variables
//! given, inside a netns when asked, bounded in time; and the versions a
//! binary reports.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cni::CniVersion;
use serde_json::Value;

use super::{CheckError, Checked};
use crate::topology::Netns;

/// Runs VERSION on a binary: its exit 0 and its JSON answer.
pub(crate) fn version_document(path: &Path) -> Checked<Value> {
    let run = invoke(
        None,
        path,
        &[("CNI_COMMAND", "VERSION")],
        br#"{"cniVersion":"1.1.0"}"#,
    )?;
    if run.code != Some(0) {
        return Err(CheckError::unexpected(format!(
            "{} VERSION failed ({:?}): {}",
            path.display(),
            run.code,
            run.stdout.trim()
        )));
    }
    serde_json::from_str(run.stdout.trim()).map_err(|e| {
        CheckError::unexpected(format!(
            "{} VERSION printed no JSON ({e}): {:?}",
            path.display(),
            run.stdout
        ))
    })
}

/// Runs VERSION on a binary and parses `supportedVersions`.
pub(crate) fn query_versions(path: &Path) -> Checked<Vec<CniVersion>> {
    let v = version_document(path)?;
    let list = v["supportedVersions"].as_array().ok_or_else(|| {
        CheckError::unexpected(format!(
            "{} VERSION has no supportedVersions",
            path.display()
        ))
    })?;
    Ok(list
        .iter()
        .filter_map(|s| s.as_str()?.parse().ok())
        .collect())
}

/// One direct plugin invocation's outcome.
#[derive(Debug, Clone)]
pub(crate) struct PluginRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a plugin binary directly (inside `host` when given) with exactly the
/// CNI variables in `env`; bounded to 30 s.
pub(crate) fn invoke(
    host: Option<&Netns>,
    plugin: &Path,
    env: &[(&str, &str)],
    stdin: &[u8],
) -> Checked<PluginRun> {
    let mut cmd = match host {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name]).arg(plugin);
            c
        }
        None => Command::new(plugin),
    };
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let exec = |what: &'static str| {
        move |source| CheckError::Exec {
            what,
            plugin: plugin.to_path_buf(),
            source,
        }
    };
    let mut child = cmd.spawn().map_err(exec("running"))?;
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin);
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CheckError::Hung {
                    plugin: plugin.to_path_buf(),
                    secs: 30,
                });
            }
            Err(e) => return Err(exec("waiting for")(e)),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(exec("collecting the output of"))?;
    Ok(PluginRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
