//! World building for scenarios, demo and bench: throwaway named netns (a
//! "host" netns in which every plugin process runs, pod netns), a temp dir
//! per world, the traffic tools started inside namespaces, and snapshots of
//! the REAL host (links, our netns, nft tables, qdiscs, CNI state files) that
//! prove a scenario left it as it found it. Never changes the real host: all
//! links, addresses and sysctls are made inside netns this module created,
//! and everything is deleted on drop, also on failure.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cni::fixture::{base36, NamedNetns};
pub use tempfile::TempDir;

use crate::tools::Throughput;

/// Every netns this crate creates starts with this (shared test prefix).
pub const PREFIX: &str = "cnt";

/// Why building or probing a world failed.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("{cmd}: {msg}")]
    Command { cmd: String, msg: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("netns {0}: {1}")]
    Netns(String, cni::netns::NetnsError),
    #[error("needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN to create network namespaces); run it with sudo")]
    NotRoot,
    #[error("iproute2 `ip` is not usable: {0}")]
    NoIp(Box<TopologyError>),
}

impl TopologyError {
    fn io(what: impl Into<String>, source: std::io::Error) -> TopologyError {
        TopologyError::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, TopologyError>;

/// Runs a command in the current netns, returning stdout or an error naming
/// the command and its stderr.
pub fn run(args: &[&str]) -> Result<String> {
    let (cmd, rest) = args.split_first().ok_or_else(|| TopologyError::Command {
        cmd: String::new(),
        msg: "empty command".into(),
    })?;
    let out = Command::new(cmd)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TopologyError::io(format!("running {}", args.join(" ")), e))?;
    if !out.status.success() {
        return Err(TopologyError::Command {
            cmd: args.join(" "),
            msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A short id for this process's run: `<pid base36>`, shared by every name it
/// makes so snapshots can tell our objects from other tests'.
pub fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| base36(std::process::id() % 1_679_616))
}

/// The prefix of every netns name this run creates: `cnts<run id>`.
pub fn run_prefix() -> String {
    format!("{PREFIX}s{}", run_id())
}

/// A unique netns name of this run: `cnts<run id>-<tag><n>`.
pub fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{tag}{}", run_prefix(), base36(n))
}

/// A named netns (`/run/netns/<name>`), deleted on drop
/// ([`NamedNetns`]; `name` and `path()` come from it).
#[derive(Debug)]
pub struct Netns(NamedNetns);

impl std::ops::Deref for Netns {
    type Target = NamedNetns;
    fn deref(&self) -> &NamedNetns {
        &self.0
    }
}

impl Netns {
    /// Creates a netns with `lo` up and IPv6 DAD off (addresses usable at once).
    pub fn new(tag: &str) -> Result<Netns> {
        let name = unique_name(tag);
        let ns = NamedNetns::create(&name)
            .map(Netns)
            .map_err(|e| TopologyError::io(format!("creating netns {name}"), e))?;
        ns.ip(&["link", "set", "lo", "up"])?;
        for key in [
            "net/ipv6/conf/all/accept_dad",
            "net/ipv6/conf/default/accept_dad",
        ] {
            // Best effort: IPv6 may be disabled on the machine.
            let _ = ns.write_sysctl(key, "0");
        }
        Ok(ns)
    }

    /// `ip netns exec <name> <args>`.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// `ip -n <name> <args>` (iproute2 only, cheaper than exec).
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Reads `/proc/sys/<key>` (slash form) as seen inside this netns.
    pub fn read_sysctl(&self, key: &str) -> Result<String> {
        let path = format!("/proc/sys/{key}");
        cni::netns::run_in(&self.path(), || std::fs::read_to_string(&path))
            .map_err(|e| TopologyError::Netns(self.name.clone(), e))?
            .map(|s| s.trim().to_string())
            .map_err(|e| TopologyError::io(format!("reading {path} in {}", self.name), e))
    }

    /// Writes `/proc/sys/<key>` inside this netns.
    pub fn write_sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{key}");
        cni::netns::run_in(&self.path(), || std::fs::write(&path, value))
            .map_err(|e| TopologyError::Netns(self.name.clone(), e))?
            .map_err(|e| TopologyError::io(format!("writing {path} in {}", self.name), e))
    }

    /// `ip -j <args>` parsed.
    pub fn ip_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        let text = self.ip(&full)?;
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Array(Vec::new()));
        }
        serde_json::from_str(&text).map_err(|e| TopologyError::Command {
            cmd: format!("ip -n {} -j {}", self.name, args.join(" ")),
            msg: format!("output is not JSON: {e}"),
        })
    }

    /// Names of the links in this netns.
    pub fn link_names(&self) -> Result<BTreeSet<String>> {
        Ok(self
            .ip_json(&["link", "show"])?
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect())
    }

    /// One link's `ip -j -d link show` object, `None` when it does not exist.
    pub fn link(&self, name: &str) -> Option<serde_json::Value> {
        self.ip_json(&["-d", "link", "show", "dev", name])
            .ok()
            .and_then(|v| v.get(0).cloned())
    }

    /// `tc -j qdisc show` objects in this netns, optionally of one device.
    pub fn qdiscs(&self, dev: Option<&str>) -> Result<Vec<serde_json::Value>> {
        let mut args = vec!["tc", "-n", &self.name, "-j", "qdisc", "show"];
        if let Some(d) = dev {
            args.extend_from_slice(&["dev", d]);
        }
        let text = run(&args)?;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// `nft list ruleset` inside this netns.
    pub fn nft_ruleset(&self) -> Result<String> {
        self.exec(&["nft", "list", "ruleset"])
    }
}

/// A directory under the system temp dir named after this run
/// (`cnts<run id>-<tag><n>-XXXXXX`), removed with its contents on drop.
pub fn temp_dir(tag: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("{}-", unique_name(tag)))
        .tempdir()
        .map_err(|e| TopologyError::io(format!("creating a temp dir for {tag}"), e))
}

/// Every file under `dir`, relative, sorted (empty when it does not exist).
pub fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// The node addresses every world's host netns carries on its uplink.
pub const NODE_V4: &str = "192.168.200.1";
pub const NODE_V6: &str = "fd00:200::1";

/// A throwaway "host": forwarding on, an uplink veth carrying the node
/// addresses, and a temp dir for caches, IPAM state and conflists.
#[derive(Debug)]
pub struct HostWorld {
    pub host: Netns,
    pub dir: TempDir,
}

impl HostWorld {
    pub fn new(tag: &str) -> Result<HostWorld> {
        let host = Netns::new(&format!("{tag}h"))?;
        let dir = temp_dir(tag)?;
        host.write_sysctl("net/ipv4/ip_forward", "1")?;
        let _ = host.write_sysctl("net/ipv6/conf/all/forwarding", "1");
        host.ip(&[
            "link", "add", "node0", "type", "veth", "peer", "name", "node0p",
        ])?;
        host.ip(&["addr", "add", &format!("{NODE_V4}/24"), "dev", "node0"])?;
        let _ = host.ip(&[
            "addr",
            "add",
            &format!("{NODE_V6}/64"),
            "dev",
            "node0",
            "nodad",
        ]);
        host.ip(&["link", "set", "node0p", "up"])?;
        host.ip(&["link", "set", "node0", "up"])?;
        Ok(HostWorld { host, dir })
    }

    /// A subdirectory of the world's temp dir, created.
    pub fn sub(&self, name: &str) -> Result<PathBuf> {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p)
            .map_err(|e| TopologyError::io(format!("creating {}", p.display()), e))?;
        Ok(p)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
}

/// A pod: its netns and the attachment identity the runtime uses.
#[derive(Debug)]
pub struct Pod {
    pub netns: Netns,
    pub container_id: String,
    pub ifname: String,
}

impl Pod {
    pub fn new(tag: &str) -> Result<Pod> {
        let netns = Netns::new(tag)?;
        let container_id = format!("{}-{tag}", netns.name);
        Ok(Pod {
            netns,
            container_id,
            ifname: "eth0".into(),
        })
    }

    /// The first global address of `family` (4 or 6) on the pod interface.
    pub fn address(&self, family: u8) -> Option<IpAddr> {
        let v = self
            .netns
            .ip_json(&["addr", "show", "dev", &self.ifname])
            .ok()?;
        let infos = v.get(0)?.get("addr_info")?.as_array()?.clone();
        infos
            .iter()
            .filter(|a| a["scope"] == "global")
            .filter_map(|a| a["local"].as_str()?.parse::<IpAddr>().ok())
            .find(|ip| (family == 4) == ip.is_ipv4())
    }
}

/// Runs the traffic tools (`<exe> tool ...`) inside namespaces.
#[derive(Debug, Clone)]
pub struct Tools {
    pub exe: PathBuf,
}

/// How a client attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// The server's reply text.
    Reply(String),
    Refused,
    Timeout,
    Error(String),
}

impl std::fmt::Display for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reach::Reply(r) => write!(f, "reply {r:?}"),
            Reach::Refused => f.write_str("connection refused"),
            Reach::Timeout => f.write_str("timeout"),
            Reach::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// A tool process started in a netns; killed on drop.
#[derive(Debug)]
pub struct Running {
    child: Child,
    out: Option<BufReader<ChildStdout>>,
    what: String,
}

impl Running {
    /// Waits for the tool to exit (bounded) and returns the rest of its stdout.
    pub fn finish(mut self, limit: Duration) -> Result<String> {
        let start = Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    return Err(TopologyError::Command {
                        cmd: self.what.clone(),
                        msg: format!("did not finish within {limit:?}"),
                    })
                }
                Err(e) => return Err(TopologyError::io(self.what.clone(), e)),
            }
        };
        let mut out = String::new();
        if let Some(r) = self.out.as_mut() {
            let _ = r.read_to_string(&mut out);
        }
        if status.success() {
            return Ok(out);
        }
        let mut err = String::new();
        if let Some(s) = self.child.stderr.as_mut() {
            let _ = s.read_to_string(&mut err);
        }
        Err(TopologyError::Command {
            cmd: self.what.clone(),
            msg: format!("{status}: {}", err.trim()),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tools {
    /// The running binary (it has the hidden `tool` subcommand).
    pub fn current() -> Result<Tools> {
        let exe = std::env::current_exe().map_err(|e| TopologyError::io("current_exe", e))?;
        Ok(Tools { exe })
    }

    fn command(&self, ns: &Netns, args: &[String]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.name])
            .arg(&self.exe)
            .arg("tool")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Starts a tool and waits (≤ 5 s) for its `ready` line.
    fn start_ready(&self, ns: &Netns, args: Vec<String>) -> Result<Running> {
        let what = format!("tool {} in {}", args.join(" "), ns.name);
        let mut child = self
            .command(ns, &args)
            .spawn()
            .map_err(|e| TopologyError::io(what.clone(), e))?;
        let stdout = child.stdout.take();
        let mut running = Running {
            child,
            out: None,
            what,
        };
        let Some(stdout) = stdout else {
            return Err(TopologyError::Command {
                cmd: running.what.clone(),
                msg: "no stdout".into(),
            });
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send((line, reader));
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok((line, reader)) if line.trim() == "ready" => {
                running.out = Some(reader);
                Ok(running)
            }
            Ok((line, _)) => {
                let _ = running.child.kill();
                let mut err = String::new();
                if let Some(s) = running.child.stderr.as_mut() {
                    let _ = s.read_to_string(&mut err);
                }
                Err(TopologyError::Command {
                    cmd: running.what.clone(),
                    msg: format!("expected `ready`, got {:?}: {}", line.trim(), err.trim()),
                })
            }
            Err(_) => Err(TopologyError::Command {
                cmd: running.what.clone(),
                msg: "not ready within 5s".into(),
            }),
        }
    }

    /// Starts a reply server in `ns` on the given TCP and UDP ports; it
    /// answers `<reply> tcp/<port>` (or udp) until dropped or `seconds` pass.
    pub fn serve(
        &self,
        ns: &Netns,
        tcp: &[u16],
        udp: &[u16],
        reply: &str,
        seconds: u32,
    ) -> Result<Running> {
        let mut args = vec!["serve".to_string()];
        for p in tcp {
            args.extend(["--tcp".into(), p.to_string()]);
        }
        for p in udp {
            args.extend(["--udp".into(), p.to_string()]);
        }
        args.extend([
            "--reply".into(),
            reply.into(),
            "--seconds".into(),
            seconds.to_string(),
        ]);
        self.start_ready(ns, args)
    }

    /// One TCP or UDP request from `ns` to `to`.
    pub fn request(&self, ns: &Netns, udp: bool, to: SocketAddr, timeout: Duration) -> Reach {
        let args = vec![
            "connect".to_string(),
            if udp { "--udp" } else { "--tcp" }.to_string(),
            to.to_string(),
            "--timeout-ms".into(),
            timeout.as_millis().to_string(),
        ];
        let out = match self.command(ns, &args).output() {
            Ok(o) => o,
            Err(e) => return Reach::Error(format!("running the tool: {e}")),
        };
        match out.status.code() {
            Some(0) => Reach::Reply(String::from_utf8_lossy(&out.stdout).trim().to_string()),
            Some(3) => Reach::Refused,
            Some(4) => Reach::Timeout,
            _ => Reach::Error(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        }
    }

    /// Measures TCP throughput from `from` to `to_ns` (which listens on
    /// `to.port()`) for `seconds`; the first `warmup` is measured apart.
    pub fn throughput(
        &self,
        from: &Netns,
        to_ns: &Netns,
        to: SocketAddr,
        seconds: f64,
        warmup: Duration,
    ) -> Result<Throughput> {
        let sink = self.start_ready(
            to_ns,
            vec![
                "sink".into(),
                "--port".into(),
                to.port().to_string(),
                "--seconds".into(),
                format!("{}", seconds + 10.0),
                "--warmup-ms".into(),
                warmup.as_millis().to_string(),
            ],
        )?;
        let blast = self
            .command(
                from,
                &[
                    "blast".into(),
                    "--to".into(),
                    to.to_string(),
                    "--seconds".into(),
                    format!("{seconds}"),
                ],
            )
            .output()
            .map_err(|e| TopologyError::io("running blast", e))?;
        if !blast.status.success() {
            return Err(TopologyError::Command {
                cmd: format!("tool blast --to {to} in {}", from.name),
                msg: String::from_utf8_lossy(&blast.stderr).trim().to_string(),
            });
        }
        let text = sink.finish(Duration::from_secs_f64(seconds + 12.0))?;
        serde_json::from_str(text.trim()).map_err(|e| TopologyError::Command {
            cmd: "tool sink".into(),
            msg: format!("unexpected output {text:?}: {e}"),
        })
    }
}

/// What the REAL host looked like (only what our scenarios could touch).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostSnapshot {
    pub links: BTreeSet<String>,
    pub netns: BTreeSet<String>,
    pub nft_tables: BTreeSet<String>,
    pub qdiscs: BTreeSet<String>,
    pub state_files: BTreeSet<String>,
}

/// Directories where CNI plugins keep state on a real host.
const STATE_DIRS: &[&str] = &["/var/lib/cni", "/run/cni", "/var/run/cni"];

impl HostSnapshot {
    /// Snapshots the real host netns. Netns and links of other processes'
    /// tests (`cnt*` without our run prefix) are ignored, as are state files
    /// that do not mention this run.
    pub fn take() -> HostSnapshot {
        let ours = run_prefix();
        let foreign = |n: &str| n.starts_with(PREFIX) && !n.starts_with(&ours);
        let links = run(&["ip", "-o", "link", "show"])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
            .filter(|n| !foreign(n))
            .collect();
        let netns = std::fs::read_dir("/run/netns")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&ours))
                    .collect()
            })
            .unwrap_or_default();
        let nft_tables = run(&["nft", "list", "tables"])
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        let qdiscs = run(&["tc", "qdisc", "show"])
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        let state_files = STATE_DIRS
            .iter()
            .flat_map(|d| {
                files_under(Path::new(d))
                    .into_iter()
                    .map(move |f| format!("{d}/{f}"))
            })
            .filter(|f| f.contains(&ours))
            .collect();
        HostSnapshot {
            links,
            netns,
            nft_tables,
            qdiscs,
            state_files,
        }
    }

    /// What changed since `before`, one phrase per kind; empty when equal.
    pub fn diff(&self, before: &HostSnapshot) -> Vec<String> {
        let mut out = Vec::new();
        let mut kind = |name: &str, a: &BTreeSet<String>, b: &BTreeSet<String>| {
            let added: Vec<&String> = a.difference(b).collect();
            let removed: Vec<&String> = b.difference(a).collect();
            if !added.is_empty() {
                out.push(format!("{name} added: {added:?}"));
            }
            if !removed.is_empty() {
                out.push(format!("{name} removed: {removed:?}"));
            }
        };
        kind("links", &self.links, &before.links);
        kind("netns", &self.netns, &before.netns);
        kind("nft tables", &self.nft_tables, &before.nft_tables);
        kind("qdiscs", &self.qdiscs, &before.qdiscs);
        kind("state files", &self.state_files, &before.state_files);
        out
    }
}

/// True when this process can build worlds (root and iproute2).
pub fn privileges() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(TopologyError::NotRoot);
    }
    run(&["ip", "-V"]).map_err(|e| TopologyError::NoIp(Box::new(e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_short_and_ours() {
        let a = unique_name("p");
        let b = unique_name("p");
        assert_ne!(a, b);
        assert!(a.starts_with(&run_prefix()));
        assert!(a.len() <= 20, "{a}");
    }

    #[test]
    fn snapshot_diff_names_what_changed() {
        let before = HostSnapshot::default();
        let mut after = before.clone();
        after.links.insert("bwp123".into());
        let d = after.diff(&before);
        assert_eq!(d, vec![r#"links added: ["bwp123"]"#.to_string()]);
        assert!(before.diff(&before).is_empty());
    }

    #[test]
    fn files_under_lists_relative_paths() {
        let t = temp_dir("ft").unwrap();
        std::fs::create_dir_all(t.path().join("results")).unwrap();
        std::fs::write(t.path().join("results/a"), "x").unwrap();
        assert_eq!(
            files_under(t.path()).into_iter().collect::<Vec<_>>(),
            vec!["results/a".to_string()]
        );
        assert!(files_under(Path::new("/nonexistent-dir-x")).is_empty());
    }
}
