//! Test support for privileged tests across the workspace (feature `testing`,
//! dev-dependencies only): privilege gating that skips with a reason locally
//! and fails under `CI`, throwaway named netns with a unique prefix that are
//! deleted on drop, veth pairs between them, and running a plugin binary the
//! way a runtime does.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::fixture::{base36, NamedNetns};

pub mod crash;
pub mod hostile;

/// Every netns and link tests create starts with this.
pub const PREFIX: &str = "cnt";

/// True when privileged tests can run. Otherwise prints why and returns
/// false, or panics when `CI` is set (privileged tests must run in CI).
pub fn privileged(test: &str) -> bool {
    let reason = if !nix::unistd::geteuid().is_root() {
        Some("not running as root".to_string())
    } else if let Err(e) = Command::new("ip").arg("-V").output() {
        Some(format!("iproute2 `ip` not runnable: {e}"))
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if std::env::var_os("CI").is_some() => {
            panic!("privileged test {test} cannot run under CI: {r}")
        }
        Some(r) => {
            eprintln!("SKIP {test}: {r}");
            false
        }
    }
}

/// A unique short name: `cnt<tag><pid%1e5 base36><counter>`, ≤ 15 chars when
/// `tag` is ≤ 3 chars.
pub fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{PREFIX}{tag}{}{}",
        base36(std::process::id() % 60_466_176),
        base36(n)
    )
}

/// `target/<profile>/`, where cargo puts the workspace's binaries, found from
/// the running test binary (`target/<profile>/deps/<test>`).
pub fn workspace_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not under target/<profile>/deps", exe.display()))
        .to_path_buf()
}

/// Runs a command, panicking with its stderr when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace (`/run/netns/<name>`) with `lo` up, deleted
/// on drop ([`crate::fixture::NamedNetns`]; `name` and `path()` come from it).
#[derive(Debug)]
pub struct TestNetns(NamedNetns);

impl std::ops::Deref for TestNetns {
    type Target = NamedNetns;
    fn deref(&self) -> &NamedNetns {
        &self.0
    }
}

impl TestNetns {
    /// A fresh named netns (unique name from `tag`) with `lo` up; removed on drop.
    pub fn new(tag: &str) -> TestNetns {
        let name = unique_name(tag);
        let ns = TestNetns(NamedNetns::create(&name).unwrap_or_else(|e| panic!("{e}")));
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside this netns; panics on failure.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Runs a command inside this netns; returns (success, stdout, stderr).
    pub fn try_exec(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Creates a veth pair `a_name` in `a` and `b_name` in `b`, both up.
pub fn veth_pair(a: &TestNetns, a_name: &str, b: &TestNetns, b_name: &str) {
    sh(&[
        "ip", "link", "add", a_name, "netns", &a.name, "type", "veth", "peer", "name", b_name,
        "netns", &b.name,
    ]);
    a.exec(&["ip", "link", "set", a_name, "up"]);
    b.exec(&["ip", "link", "set", b_name, "up"]);
}

/// What one plugin invocation printed and returned.
#[derive(Debug, Clone)]
pub struct PluginRun {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Everything printed on stdout.
    pub stdout: String,
    /// Everything printed on stderr.
    pub stderr: String,
}

impl PluginRun {
    /// stdout as JSON (panics with both streams when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "plugin stdout is not JSON ({e}): {:?} / {:?}",
                self.stdout, self.stderr
            )
        })
    }
    /// Panics with both streams unless the exit code is 0.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "plugin failed: stdout {} stderr {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// One plugin invocation as a runtime would make it.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: String,
    /// `CNI_PATH`.
    pub path: String,
    /// Run the plugin inside this named netns (the "host" of the test).
    pub host_netns: Option<String>,
    /// More environment variables.
    pub extra_env: HashMap<String, String>,
}

impl Invocation {
    /// `command` for container `ctr1` on `eth0` with Debian's plugin path.
    pub fn new(command: &str) -> Invocation {
        Invocation {
            command: command.into(),
            container_id: "ctr1".into(),
            ifname: "eth0".into(),
            path: "/usr/lib/cni".into(),
            ..Default::default()
        }
    }

    /// Runs `plugin` with this environment and `stdin`.
    pub fn run(&self, plugin: &Path, stdin: &str) -> PluginRun {
        let mut cmd = match &self.host_netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(plugin);
                c
            }
            None => Command::new(plugin),
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CNI_COMMAND", &self.command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_ARGS", &self.args)
            .env("CNI_PATH", &self.path)
            .envs(&self.extra_env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", plugin.display()));
        if let Some(mut stdin_pipe) = child.stdin.take() {
            let _ = stdin_pipe.write_all(stdin.as_bytes());
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for plugin: {e}"));
        PluginRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
