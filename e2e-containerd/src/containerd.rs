//! A private containerd (Debian's package, CRI plugin) for one test: its own
//! `--config`, root, state, runc root, gRPC socket, CNI `bin_dir` and
//! `conf_dir`, all under one temp dir, started inside a network namespace
//! the test owns (that netns plays the node: containerd runs every CNI plugin
//! there, so the bridge, the veths' host ends, the IFBs and portmap's nft
//! table are created in it and never in the real host's netns). No system
//! service is used or touched.
//!
//! Dropping it tears everything down even after a failed test: every sandbox
//! still known is stopped and removed over CRI, then the daemon, the runc
//! containers and the shims are killed, and what containerd may have left
//! outside the temp dir is removed — but only what belongs to this
//! instance's pods: their netns mounts under `/var/run/netns`, their libcni
//! result cache files, their shim sockets and their cgroups.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cri::{network_namespace_path, Cri};
use crate::image::build_busybox_image;

/// Where libcni (go-cni in containerd 1.6) keeps its result cache; containerd
/// 1.6 has no setting for it.
pub const CNI_RESULTS_DIR: &str = "/var/lib/cni/results";

/// How long the daemon may take to answer on its socket, and its CRI
/// plugin to report the runtime and the network ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `ctr images import` may take.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// One private containerd; see the module doc.
#[derive(Debug)]
pub struct Containerd {
    /// Removed last (after every mount under it is gone).
    base: tempfile::TempDir,
    tag: String,
    host_netns: PathBuf,
    daemon: RefCell<Option<Child>>,
    cri: Option<Cri>,
    /// The image both the sandboxes and the containers run.
    pub image: String,
    /// The CNI network name of the conflist (its result cache files start
    /// with it).
    network: Option<String>,
    /// Netns paths and sandbox IDs this instance's pods had (for cleanup).
    netns_seen: BTreeSet<PathBuf>,
    sandboxes_seen: BTreeSet<String>,
    /// Shared dirs containerd's shims and libcni create that did not exist
    /// before this instance (removed again when empty).
    new_shared_dirs: Vec<PathBuf>,
}

/// Where containerd 1.6 puts shim sockets, whatever its config says.
const SHIM_SOCKET_DIRS: [&str; 2] = ["/run/containerd/s", "/run/containerd"];
/// libcni's result cache dirs (created by the first ADD on a machine).
const CNI_CACHE_DIRS: [&str; 2] = [CNI_RESULTS_DIR, "/var/lib/cni"];

impl Containerd {
    /// Lays out a fresh instance (nothing runs yet) whose daemon will run in
    /// the netns at `host_netns`. `tag` makes names unique (cgroup parent,
    /// image name).
    pub fn new(tag: &str, host_netns: &Path) -> Result<Containerd, String> {
        let base = tempfile::Builder::new()
            .prefix(&format!("cnt-e2e-{tag}-"))
            .tempdir()
            .map_err(|e| format!("creating the temp dir: {e}"))?;
        let ctrd = Containerd {
            base,
            tag: tag.to_string(),
            host_netns: host_netns.to_path_buf(),
            daemon: RefCell::new(None),
            cri: None,
            image: format!("localhost/cnt-e2e/busybox:{tag}"),
            network: None,
            netns_seen: BTreeSet::new(),
            sandboxes_seen: BTreeSet::new(),
            new_shared_dirs: SHIM_SOCKET_DIRS
                .iter()
                .chain(CNI_CACHE_DIRS.iter())
                .map(PathBuf::from)
                .filter(|d| !d.exists())
                .collect(),
        };
        for d in [
            "root", "state", "runc", "cni-bin", "cni-conf", "image", "opt",
        ] {
            std::fs::create_dir_all(ctrd.path(d))
                .map_err(|e| format!("creating {}: {e}", ctrd.path(d).display()))?;
        }
        Ok(ctrd)
    }

    /// `<temp dir>/<name>`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.base.path().join(name)
    }

    /// The CRI / containerd gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.path("containerd.sock")
    }

    /// The cgroup parent the test's pods should use (unique; removed on drop).
    pub fn cgroup_parent(&self) -> String {
        format!("/cnt-e2e-{}-{}", self.tag, std::process::id())
    }

    /// Links `src` into the CNI `bin_dir` as `name`.
    pub fn install_plugin(&self, name: &str, src: &Path) -> Result<(), String> {
        if !src.is_file() {
            return Err(format!("CNI plugin {} is missing", src.display()));
        }
        let dst = self.path("cni-bin").join(name);
        std::os::unix::fs::symlink(src, &dst)
            .map_err(|e| format!("linking {} to {}: {e}", dst.display(), src.display()))
    }

    /// Writes the conflist containerd will load (the only file in `conf_dir`).
    pub fn write_conflist(&mut self, conflist: &serde_json::Value) -> Result<(), String> {
        let name = conflist["name"]
            .as_str()
            .ok_or("the conflist has no name")?
            .to_string();
        let file = self.path("cni-conf").join(format!("10-{name}.conflist"));
        let text = serde_json::to_string_pretty(conflist).map_err(|e| e.to_string())?;
        std::fs::write(&file, text).map_err(|e| format!("writing {}: {e}", file.display()))?;
        self.network = Some(name);
        Ok(())
    }

    /// containerd's config (version 2 schema, containerd 1.6).
    fn config(&self) -> String {
        let q = |name: &str| toml_string(&self.path(name));
        format!(
            r#"version = 2
root = {root}
state = {state}
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = {socket}

[ttrpc]
  address = {ttrpc}

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {image}
  # Lowering a process's oom_score_adj is not allowed on these machines.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    # native works on every filesystem (overlayfs may not nest).
    snapshotter = "native"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = {runc}
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {bin}
    conf_dir = {conf}
    max_conf_num = 1
"#,
            root = q("root"),
            state = q("state"),
            socket = toml_string(&self.socket()),
            ttrpc = q("containerd.sock.ttrpc"),
            opt = q("opt"),
            image = toml_string(Path::new(&self.image)),
            runc = q("runc"),
            bin = q("cni-bin"),
            conf = q("cni-conf"),
        )
    }

    /// Starts the daemon in the node netns, waits until CRI reports the
    /// runtime and the network ready, and imports the busybox image.
    pub fn start(&mut self) -> Result<(), String> {
        let config = self.path("config.toml");
        std::fs::write(&config, self.config())
            .map_err(|e| format!("writing {}: {e}", config.display()))?;
        let log_path = self.path("containerd.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        // nsenter enters only the netns (no mount namespace), so the pod
        // netns mounts containerd makes under /var/run/netns are the host's.
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.host_netns.display()))
            .arg("--")
            .arg("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("starting containerd: {e}"))?;
        *self.daemon.borrow_mut() = Some(child);

        let socket = self.socket();
        self.wait_for("containerd's socket", || {
            Ok(std::os::unix::net::UnixStream::connect(&socket).is_ok())
        })?;
        self.cri = Some(Cri::connect(&socket)?);
        self.wait_for("CRI RuntimeReady and NetworkReady", || {
            let conds = self.cri()?.conditions()?;
            Ok(["RuntimeReady", "NetworkReady"]
                .iter()
                .all(|t| conds.iter().any(|(ty, ok, _)| ty == t && *ok)))
        })?;

        let image = build_busybox_image(&self.path("image"), &self.image)?;
        let out = run_bounded(
            Command::new("ctr")
                .arg("--address")
                .arg(&socket)
                .args([
                    "--namespace",
                    "k8s.io",
                    "images",
                    "import",
                    "--snapshotter",
                    "native",
                ])
                .arg(&image),
            IMPORT_TIMEOUT,
        )?;
        if !out.0 {
            return Err(format!("ctr images import failed: {}", out.1));
        }
        let reference = self.image.clone();
        self.wait_for("CRI to list the imported image", || {
            self.cri()?.has_image(&reference)
        })
    }

    /// The connected CRI client.
    pub fn cri(&self) -> Result<&Cri, String> {
        self.cri
            .as_ref()
            .ok_or_else(|| "containerd is not started".to_string())
    }

    /// Polls `ready` (every 50 ms, at most `START_TIMEOUT`), failing early
    /// with the log's tail if the daemon exits.
    fn wait_for(
        &self,
        what: &str,
        mut ready: impl FnMut() -> Result<bool, String>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::new();
        loop {
            match ready() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last = e,
            }
            if let Some(d) = self.daemon.borrow_mut().as_mut() {
                if let Ok(Some(status)) = d.try_wait() {
                    return Err(format!(
                        "containerd exited ({status}) while waiting for {what}; log:\n{}",
                        self.log_tail(30)
                    ));
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no {what} within {START_TIMEOUT:?} ({last}); log:\n{}",
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `n` lines of containerd's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.path("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Remembers a sandbox's ID and netns so a failed test still cleans them.
    pub fn track_sandbox(&mut self, id: &str) {
        self.sandboxes_seen.insert(id.to_string());
        if let Some(netns) = self
            .cri
            .as_ref()
            .and_then(|c| c.pod_sandbox_status(id).ok())
            .and_then(|s| s.netns_path())
        {
            self.netns_seen.insert(netns);
        }
    }

    /// This instance's files in libcni's result cache: its network's and the
    /// `cni-loopback` ones of its sandboxes.
    pub fn cached_results(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(CNI_RESULTS_DIR) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                self.network
                    .as_ref()
                    .is_some_and(|n| name.starts_with(&format!("{n}-")))
                    || self
                        .sandboxes_seen
                        .iter()
                        .any(|id| name == format!("cni-loopback-{id}-lo"))
            })
            .map(|e| e.path())
            .collect()
    }

    /// Every runtime bundle of this instance: (ID, OCI spec).
    fn bundles(&self) -> Vec<(String, serde_json::Value)> {
        let dir = self.path("state/io.containerd.runtime.v2.task/k8s.io");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .map(|e| {
                let spec = std::fs::read(e.path().join("config.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(serde_json::Value::Null);
                (e.file_name().to_string_lossy().into_owned(), spec)
            })
            .collect()
    }

    /// Stops and removes every sandbox still known to the daemon (best
    /// effort, each call bounded), remembering their netns first.
    fn remove_all_sandboxes(&mut self) {
        let Some(cri) = self.cri.as_ref() else {
            return;
        };
        let ids = cri.list_pod_sandboxes().unwrap_or_default();
        for id in &ids {
            if let Some(netns) = cri.pod_sandbox_status(id).ok().and_then(|s| s.netns_path()) {
                self.netns_seen.insert(netns);
            }
            self.sandboxes_seen.insert(id.clone());
            let stopped = cri.stop_pod_sandbox(id);
            let removed = cri.remove_pod_sandbox(id);
            if let Err(e) = stopped.and(removed) {
                eprintln!("e2e-containerd cleanup: sandbox {id}: {e}");
            }
        }
    }

    fn stop_daemon(&mut self) {
        self.cri = None;
        let Some(mut child) = self.daemon.borrow_mut().take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills and deletes what runc still runs for this instance, then the
    /// shims (found by the socket address on their command line) and their
    /// sockets.
    fn kill_containers_and_shims(&self, bundles: &[(String, serde_json::Value)]) {
        let runc_root = self.path("runc/k8s.io");
        let ids: BTreeSet<String> = std::fs::read_dir(&runc_root)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        for id in &ids {
            let runc = |args: &[&str]| {
                let _ = run_bounded(
                    Command::new("runc")
                        .arg("--root")
                        .arg(&runc_root)
                        .args(args),
                    Duration::from_secs(10),
                );
            };
            runc(&["kill", "--all", id, "KILL"]);
            runc(&["delete", "--force", id]);
        }
        let needle = format!("-address\0{}\0", self.socket().display());
        for pid in processes_whose_cmdline_contains(&needle) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for (id, _) in bundles {
            let address = self
                .path("state/io.containerd.runtime.v2.task/k8s.io")
                .join(id)
                .join("address");
            if let Ok(a) = std::fs::read_to_string(address) {
                let sock = a.trim().trim_start_matches("unix://").to_string();
                if sock.starts_with("/run/containerd/s/") {
                    let _ = std::fs::remove_file(sock);
                }
            }
        }
    }

    /// Removes this instance's cgroup parent (and the pods' cgroups in it)
    /// from every hierarchy.
    fn remove_cgroups(&self) {
        let parent = self.cgroup_parent();
        let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            roots.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
        }
        for root in roots {
            let dir = root.join(parent.trim_start_matches('/'));
            if !dir.is_dir() {
                continue;
            }
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.filter_map(|e| e.ok()) {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.remove_all_sandboxes();
        let bundles = self.bundles();
        for (id, spec) in &bundles {
            self.sandboxes_seen.insert(id.clone());
            if let Some(netns) = network_namespace_path(spec) {
                self.netns_seen.insert(netns);
            }
        }
        self.stop_daemon();
        self.kill_containers_and_shims(&bundles);
        unmount_under(self.base.path());
        for netns in &self.netns_seen {
            if netns.exists() {
                lazy_unmount(netns);
                let _ = std::fs::remove_file(netns);
            }
        }
        for file in self.cached_results() {
            let _ = std::fs::remove_file(file);
        }
        self.remove_cgroups();
        for dir in &self.new_shared_dirs {
            // Fails (and keeps it) when someone else's socket is in it.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A path as a TOML basic string (JSON string syntax is valid TOML for it).
fn toml_string(p: &Path) -> String {
    serde_json::Value::String(p.display().to_string()).to_string()
}

/// Runs a command with piped output, killing it after `limit`; returns
/// (success, stderr + stdout).
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<(bool, String), String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {what}: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {limit:?}"));
            }
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("reading the output of {what}: {e}"))?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ),
    ))
}

/// PIDs whose NUL-separated command line contains `needle`.
fn processes_whose_cmdline_contains(needle: &str) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

/// Lazily unmounts every mount point at or under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for p in points {
        lazy_unmount(&p);
    }
}

/// `umount --lazy`, ignoring failure (nothing mounted there is fine).
fn lazy_unmount(p: &Path) {
    let _ = run_bounded(
        Command::new("umount").arg("--lazy").arg(p),
        Duration::from_secs(10),
    );
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let oct: String = chars.by_ref().take(3).collect();
            if let Ok(n) = u8::from_str_radix(&oct, 8) {
                out.push(n as char);
                continue;
            }
            out.push(c);
            out.push_str(&oct);
        } else {
            out.push(c);
        }
    }
    out
}
