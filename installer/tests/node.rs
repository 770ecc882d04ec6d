//! Real tests of the file effects and the watch loop, in temp dirs: verified
//! atomic copies (a running old binary keeps running), the `cni-install run`
//! process re-chaining a conflist its primary CNI rewrites, SIGTERM with
//! `--cleanup-on-exit` taking back exactly what was added, the readiness
//! file, and (as root) the installer working with no capability at all, as
//! the DaemonSet runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use installer::files::{copy_plugin, CopyOutcome};
use installer::json::{GoObject, Json, JsonExt};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const INSTALLER: &str = env!("CARGO_BIN_EXE_cni-install");

fn fixture(name: &str) -> Vec<u8> {
    fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A source dir holding the workspace's built plugins (debug binaries, from
/// `cargo build --workspace`, which `make test` runs first).
fn source_dir(tmp: &Path, plugins: &[&str]) -> PathBuf {
    let dir = tmp.join("src");
    fs::create_dir_all(&dir).unwrap();
    let built = cni::testing::workspace_bin_dir();
    for p in plugins {
        let from = built.join(p);
        assert!(
            from.exists(),
            "{} is not built: run `cargo build --workspace` first",
            from.display()
        );
        fs::copy(&from, dir.join(p)).unwrap();
    }
    dir
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Waits for `cond`, failing after 30 s (a bound on a hang, not a timing
/// window: every step waited for is an event the installer must produce).
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn plugin_types(bytes: &[u8]) -> Vec<String> {
    let Ok(doc) = serde_json::from_slice::<Json>(bytes) else {
        return Vec::new();
    };
    match doc.as_object().and_then(|o| o.get_map_key("plugins")) {
        Some(Json::Array(p)) => p
            .iter()
            .filter_map(|p| {
                p.as_object()?
                    .get_struct_field("type")?
                    .as_str()
                    .map(str::to_string)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Writes a file the way agents do: a temp file and a rename. The temp
/// name has no CNI extension: runtimes (and the installer, reading as they
/// do) would load `.x.conflist` as the first network.
fn agent_writes(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".agent-{name}.tmp"));
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, dir.join(name)).unwrap();
}

struct Running {
    child: Child,
}

impl Running {
    fn start(tmp: &Path, extra: &[&str]) -> Running {
        let mut cmd = Command::new(INSTALLER);
        cmd.arg("run");
        dirs_args(&mut cmd, tmp)
            .arg("--readiness-file")
            .arg(tmp.join("run/ready"))
            .args(extra)
            .env_remove("CNI_INSTALL_CLEANUP_ON_EXIT")
            .stdin(Stdio::null());
        Running {
            child: cmd.spawn().unwrap(),
        }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mkdirs(tmp: &Path) {
    fs::create_dir_all(tmp.join("bin")).unwrap();
    fs::create_dir_all(tmp.join("net.d")).unwrap();
}

/// Copies `src/noop` into `bin` and checks it was written, with its content.
fn copies_noop(src: &Path, bin: &Path) {
    assert_eq!(
        copy_plugin(&src.join("noop"), bin, "noop").unwrap(),
        CopyOutcome::Copied
    );
    assert_eq!(
        fs::read(bin.join("noop")).unwrap(),
        fs::read(src.join("noop")).unwrap()
    );
}

#[test]
fn copy_installs_a_verified_plugin_once_and_then_skips_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source_dir(tmp.path(), &["noop"]);
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    copies_noop(&src, &bin);
    assert_eq!(
        fs::metadata(bin.join("noop")).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(bin.join("noop")).unwrap());
    assert_eq!(
        copy_plugin(&src.join("noop"), &bin, "noop").unwrap(),
        CopyOutcome::AlreadyIdentical
    );
    // Skipped means untouched: same inode, no temp file left behind.
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(bin.join("noop")).unwrap()),
        inode
    );
    assert_eq!(names_in(&bin), ["noop"]);
}

#[test]
fn copy_refuses_a_binary_that_fails_version_and_leaves_the_old_one() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    fs::write(bin.join("portmap"), b"old").unwrap();
    let bad = tmp.path().join("portmap");
    fs::write(&bad, b"#!/bin/sh\necho '{\"code\":4}'\nexit 3\n").unwrap();
    let err = copy_plugin(&bad, &bin, "portmap").unwrap_err().to_string();
    assert!(
        err.starts_with(
            "plugin portmap: refusing to install it: VERSION exited with exit status: 3"
        ),
        "{err}"
    );
    assert_eq!(fs::read(bin.join("portmap")).unwrap(), b"old");
    assert_eq!(names_in(&bin), ["portmap"]);
}

#[test]
fn copy_renames_over_a_running_binary_which_keeps_running() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source_dir(tmp.path(), &["noop"]);
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    // The "old plugin" is a copy of cat, running and blocked on its stdin.
    let old = fs::read("/bin/cat").unwrap();
    fs::write(bin.join("noop"), &old).unwrap();
    fs::set_permissions(bin.join("noop"), fs::Permissions::from_mode(0o755)).unwrap();
    let mut running = Command::new(bin.join("noop"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    copies_noop(&src, &bin);
    // The running process still executes the old inode, intact.
    assert_eq!(
        fs::read(format!("/proc/{}/exe", running.id())).unwrap(),
        old
    );
    running
        .stdin
        .take()
        .unwrap()
        .write_all(b"still here\n")
        .unwrap();
    let mut out = String::new();
    running
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(running.wait().unwrap().success());
    assert_eq!(out, "still here\n");
}

#[test]
fn watch_rechains_a_rewritten_conflist_and_cleanup_removes_exactly_what_it_added() {
    let tmp = tempfile::tempdir().unwrap();
    mkdirs(tmp.path());
    let conf = tmp.path().join("net.d");
    let ready = tmp.path().join("run/ready");
    let flannel = fixture("10-flannel.conflist");
    let run = Running::start(tmp.path(), &["--cleanup-on-exit"]);
    // The primary CNI starts after us and writes its network.
    agent_writes(&conf, "10-flannel.conflist", &flannel);
    wait_for("readiness", || ready.exists());
    let chained = fs::read(conf.join("10-flannel.conflist")).unwrap();
    assert_eq!(plugin_types(&chained), ["flannel", "portmap", "bandwidth"]);
    assert_eq!(
        fs::read_to_string(&ready).unwrap(),
        format!("{}\n", conf.join("10-flannel.conflist").display())
    );
    for p in ["noop", "portmap", "bandwidth"] {
        assert!(tmp.path().join("bin").join(p).exists(), "{p} not installed");
    }
    // The agent restarts and rewrites its file in place: we chain it again.
    fs::write(conf.join("10-flannel.conflist"), &flannel).unwrap();
    wait_for("re-chain after an in-place rewrite", || {
        plugin_types(&fs::read(conf.join("10-flannel.conflist")).unwrap())
            == ["flannel", "portmap", "bandwidth"]
    });
    // And once more by rename.
    agent_writes(&conf, "10-flannel.conflist", &flannel);
    wait_for("re-chain after a rename", || {
        plugin_types(&fs::read(conf.join("10-flannel.conflist")).unwrap())
            == ["flannel", "portmap", "bandwidth"]
    });
    let status = run.terminate();
    assert!(status.success(), "{status}");
    let after: Json =
        serde_json::from_slice(&fs::read(conf.join("10-flannel.conflist")).unwrap()).unwrap();
    assert_eq!(after, serde_json::from_slice::<Json>(&flannel).unwrap());
    assert!(!ready.exists(), "readiness file left after exit");
    assert_eq!(names_in(&conf), ["10-flannel.conflist"]);
    assert_eq!(
        names_in(&tmp.path().join("bin")),
        ["bandwidth", "noop", "portmap"]
    );
}

#[test]
fn a_converted_conf_is_restored_byte_for_byte_on_cleanup() {
    let tmp = tempfile::tempdir().unwrap();
    mkdirs(tmp.path());
    let conf = tmp.path().join("net.d");
    let original = fixture("05-cilium.conf");
    agent_writes(&conf, "05-cilium.conf", &original);
    let run = Running::start(tmp.path(), &["--cleanup-on-exit"]);
    wait_for("readiness", || tmp.path().join("run/ready").exists());
    assert_eq!(names_in(&conf), ["05-cilium.conflist"]);
    assert_eq!(
        plugin_types(&fs::read(conf.join("05-cilium.conflist")).unwrap()),
        ["cilium-cni", "portmap", "bandwidth"]
    );
    assert!(run.terminate().success());
    assert_eq!(names_in(&conf), ["05-cilium.conf"]);
    assert_eq!(fs::read(conf.join("05-cilium.conf")).unwrap(), original);
}

#[test]
fn without_cleanup_the_chain_stays_after_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    mkdirs(tmp.path());
    let conf = tmp.path().join("net.d");
    agent_writes(
        &conf,
        "11-crio.conflist",
        &fixture("11-crio-ipv4-bridge.conflist"),
    );
    let run = Running::start(tmp.path(), &[]);
    wait_for("readiness", || tmp.path().join("run/ready").exists());
    assert!(run.terminate().success());
    assert_eq!(
        plugin_types(&fs::read(conf.join("11-crio.conflist")).unwrap()),
        ["bridge", "portmap", "bandwidth"]
    );
    assert!(!tmp.path().join("run/ready").exists());
}

fn once(tmp: &Path, wrap: &[&str]) -> std::process::Output {
    let (program, pre) = match wrap.split_first() {
        Some((p, rest)) => (*p, rest.to_vec()),
        None => (INSTALLER, Vec::new()),
    };
    let mut cmd = Command::new(program);
    cmd.args(pre);
    if !wrap.is_empty() {
        cmd.arg(INSTALLER);
    }
    cmd.arg("once");
    dirs_args(&mut cmd, tmp).output().unwrap()
}

/// The settings every test run shares: plugins from a fresh source dir,
/// bin and conf dirs inside `tmp`.
fn dirs_args<'c>(cmd: &'c mut Command, tmp: &Path) -> &'c mut Command {
    let src = source_dir(tmp, &["noop", "portmap", "bandwidth"]);
    cmd.arg("--source-dir")
        .arg(&src)
        .arg("--bin-dir")
        .arg(tmp.join("bin"))
        .arg("--conf-dir")
        .arg(tmp.join("net.d"))
        .args(["--plugins", "noop,portmap,bandwidth"])
}

#[test]
fn once_refuses_an_old_cni_version_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    mkdirs(tmp.path());
    agent_writes(
        &tmp.path().join("net.d"),
        "10-old.conflist",
        &fixture("10-old.conflist"),
    );
    let out = once(tmp.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cni-install: 10-old.conflist: cniVersion \"0.2.0\" is below 0.3.0"),
        "{stderr}"
    );
    assert_eq!(
        fs::read(tmp.path().join("net.d/10-old.conflist")).unwrap(),
        fixture("10-old.conflist")
    );
}

#[test]
fn ready_answers_from_the_readiness_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ready");
    let probe = || {
        Command::new(INSTALLER)
            .args(["ready", "--readiness-file"])
            .arg(&file)
            .status()
            .unwrap()
    };
    assert_eq!(probe().code(), Some(1));
    fs::write(&file, "x").unwrap();
    assert!(probe().success());
}

#[test]
fn works_as_root_without_any_capability_as_the_daemonset_runs_it() {
    if !cni::testing::privileged("works_as_root_without_any_capability_as_the_daemonset_runs_it") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    mkdirs(tmp.path());
    agent_writes(
        &tmp.path().join("net.d"),
        "10-calico.conflist",
        &fixture("10-calico.conflist"),
    );
    // The DaemonSet's securityContext: uid 0, capabilities: drop: [ALL],
    // allowPrivilegeEscalation: false (no_new_privs).
    let out = once(
        tmp.path(),
        &[
            "setpriv",
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--no-new-privs",
            "--",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same wrapper really leaves a process with no capability.
    let caps = Command::new("setpriv")
        .args([
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--no-new-privs",
            "--",
        ])
        .args(["grep", "^CapEff:", "/proc/self/status"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&caps.stdout)
            .split_whitespace()
            .last(),
        Some("0000000000000000")
    );
    assert_eq!(
        plugin_types(&fs::read(tmp.path().join("net.d/10-calico.conflist")).unwrap()),
        ["calico", "portmap", "bandwidth"]
    );
    assert_eq!(
        names_in(&tmp.path().join("bin")),
        ["bandwidth", "noop", "portmap"]
    );
}
