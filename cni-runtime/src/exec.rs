//! The one seam between the runtime and plugin processes: finding a plugin
//! binary in the CNI_PATH directories and running it with an environment and
//! stdin, optionally inside a given netns, with a timeout that kills the whole
//! process group, retrying on ETXTBSY like libcni. It returns raw exit status
//! and output; interpreting them (results, spec errors) is the runtime's job.
//! A scripted fake for unit tests lives here behind `cfg(test)` only.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// One process to run.
#[derive(Debug, Clone)]
pub struct ExecRequest<'a> {
    /// The plugin binary.
    pub plugin: &'a Path,
    /// Added to (and overriding) the runtime's own environment.
    pub env: &'a [(String, String)],
    /// Written to the plugin's stdin, which is then closed.
    pub stdin: &'a [u8],
    /// Kill the plugin (and everything it started) after this long.
    pub timeout: Option<Duration>,
    /// Run the process inside this network namespace.
    pub netns: Option<&'a Path>,
}

/// How a process ended and what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when a signal ended the process.
    pub exit_code: Option<i32>,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    /// Everything the process wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the process wrote to stderr.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Why a process could not be run to completion.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The binary could not be started.
    #[error("could not be started ({}): {source}", plugin.display())]
    Spawn {
        /// The binary.
        plugin: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The process could not be moved into the requested netns.
    #[error("cannot enter netns {}: {reason}", path.display())]
    Netns {
        /// The netns path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The timeout passed; the process group was killed.
    #[error(
        "did not finish within {after:?} and was killed{}",
        stderr_note(stderr)
    )]
    Timeout {
        /// The timeout.
        after: Duration,
        /// What the process wrote to stderr until then.
        stderr: String,
    },
    /// Waiting for the process failed.
    #[error("waiting for the process: {0}")]
    Wait(std::io::Error),
}

fn stderr_note(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(" (stderr: {:?})", truncate(s, 400))
    }
}

/// At most `max` bytes of `s` (on a char boundary), with "…" when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A plugin binary that is not in any CNI_PATH directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin:?} not found in {}", format_dirs(dirs))]
pub struct NotFound {
    /// The plugin type looked for.
    pub plugin: String,
    /// The directories searched, in order.
    pub dirs: Vec<PathBuf>,
}

fn format_dirs(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "CNI_PATH (no directories given)".into();
    }
    let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    format!("[{}]", list.join(" "))
}

/// Runs plugin processes. The real implementation is [`ProcessExec`]; unit
/// tests use a scripted fake.
pub trait PluginExec: Send + Sync + fmt::Debug {
    /// The binary for `plugin_type`: the first regular file with that name
    /// in `dirs`.
    fn find(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, NotFound> {
        find_in_path(plugin_type, dirs)
    }

    /// Runs one process to completion (or until the timeout kills it).
    fn run(&self, req: &ExecRequest<'_>) -> Result<ExecOutput, ExecError>;
}

/// libcni's FindInPath: names with a `/` are refused; first directory wins.
pub fn find_in_path(plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, NotFound> {
    let not_found = || NotFound {
        plugin: plugin_type.to_string(),
        dirs: dirs.to_vec(),
    };
    if plugin_type.is_empty() || plugin_type.contains('/') || plugin_type == ".." {
        return Err(not_found());
    }
    dirs.iter()
        .map(|d| d.join(plugin_type))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .ok_or_else(not_found)
}

/// Real processes.
#[derive(Debug, Clone, Default)]
pub struct ProcessExec {
    /// Copy a successful plugin's stderr to ours (libcni does; a failed
    /// plugin's stderr is part of the error instead).
    pub forward_stderr: bool,
}

/// Delays between attempts when exec fails with "text file busy" (a binary
/// still open for writing, e.g. just installed); libcni retries 5 times.
const ETXTBSY_DELAYS_MS: &[u64] = &[50, 200, 500, 1000, 1000];

/// How long to wait for output pipes after killing a timed-out plugin (its
/// grandchildren may have escaped the process group and hold them open).
const KILL_GRACE: Duration = Duration::from_secs(2);

impl PluginExec for ProcessExec {
    fn run(&self, req: &ExecRequest<'_>) -> Result<ExecOutput, ExecError> {
        let netns = match req.netns {
            Some(path) => Some(cni::netns::open(path).map_err(|e| ExecError::Netns {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        let mut attempt = 0;
        let child = loop {
            let mut cmd = Command::new(req.plugin);
            let stdin = match prefilled_stdin(req.stdin) {
                Some(fd) => Stdio::from(fd),
                None => Stdio::piped(),
            };
            cmd.envs(req.env.iter().map(|(k, v)| (k, v)))
                .stdin(stdin)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                // Own process group, so a timeout kills what the plugin started.
                .process_group(0);
            match spawn_in(&mut cmd, netns.as_ref()) {
                Ok(child) => break child,
                Err(e)
                    if e.raw_os_error() == Some(libc::ETXTBSY)
                        && attempt < ETXTBSY_DELAYS_MS.len() =>
                {
                    std::thread::sleep(Duration::from_millis(ETXTBSY_DELAYS_MS[attempt]));
                    attempt += 1;
                }
                Err(source) => {
                    return Err(ExecError::Spawn {
                        plugin: req.plugin.to_path_buf(),
                        source,
                    })
                }
            }
        };
        drop(netns);
        let out = wait_with_timeout(child, req.stdin, req.timeout)?;
        if self.forward_stderr && out.success() && !out.stderr.is_empty() {
            let _ = std::io::stderr().write_all(&out.stderr);
        }
        Ok(out)
    }
}

/// Spawns `cmd` inside `netns` (the caller's netns when None) without
/// forking this process: a thread of ours enters the netns and spawns from
/// there, and the child inherits that thread's netns. A `pre_exec` setns
/// would make std fork the whole runtime (its page tables, then the
/// copy-on-write faults and the teardown of the copy at exec) where it
/// otherwise uses `posix_spawn`, which shares the memory until exec: with
/// 50 pods ADDed in parallel, forking was most of the runtime's CPU time.
/// The thread ends with the spawn; no other code runs in the netns.
fn spawn_in(cmd: &mut Command, netns: Option<&File>) -> std::io::Result<Child> {
    let Some(ns) = netns else {
        return cmd.spawn();
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            cmd.spawn()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the spawning thread panicked")))
    })
}

/// The read end of a pipe that already holds all of `data` and is closed
/// for writing, when `data` fits in the pipe (a network configuration
/// does): the plugin reads its input and EOF at once, instead of waiting
/// for a thread of ours to be scheduled and write it (with 50 pods in
/// parallel on 2 cores, plugins waited 19 ms on average for that). None
/// when it does not fit: the caller writes it from a thread.
fn prefilled_stdin(data: &[u8]) -> Option<OwnedFd> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ok()?;
    // Non-blocking: a write that does not fit stops short instead of
    // waiting for a reader.
    fcntl(&write, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).ok()?;
    match nix::unistd::write(&write, data) {
        Ok(n) if n == data.len() => Some(read),
        _ => None,
    }
}

fn wait_with_timeout(
    mut child: std::process::Child,
    stdin: &[u8],
    timeout: Option<Duration>,
) -> Result<ExecOutput, ExecError> {
    let pid = child.id();
    // Writing stdin in its own thread: a plugin that does not read it must
    // not block us before the timeout starts.
    if let Some(mut pipe) = child.stdin.take() {
        let data = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let finished = match timeout {
        Some(t) => rx.recv_timeout(t).ok(),
        None => rx.recv().ok(),
    };
    let output = match finished {
        Some(r) => r.map_err(ExecError::Wait)?,
        None => {
            let after = timeout.unwrap_or_default();
            if let Ok(pgid) = i32::try_from(pid) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let stderr = match rx.recv_timeout(KILL_GRACE) {
                Ok(Ok(o)) => String::from_utf8_lossy(&o.stderr).into_owned(),
                _ => String::new(),
            };
            return Err(ExecError::Timeout { after, stderr });
        }
    };
    Ok(ExecOutput {
        exit_code: output.status.code(),
        signal: output.status.signal(),
        stdout: output.stdout,
        stderr: output.stderr,
    })
}

#[cfg(test)]
pub(crate) mod fake {
    //! A scripted [`PluginExec`]: records every call and answers with a
    //! closure. Test-only; never compiled into the library.

    use super::*;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    /// One recorded invocation.
    #[derive(Debug, Clone)]
    pub struct Call {
        /// The plugin type (binary file name).
        pub plugin: String,
        pub command: String,
        pub env: BTreeMap<String, String>,
        /// Stdin parsed as JSON (`Null` when it is not JSON).
        pub stdin: serde_json::Value,
        pub stdin_raw: Vec<u8>,
        pub netns: Option<PathBuf>,
        pub timeout: Option<Duration>,
    }

    type Responder = dyn Fn(&Call) -> Result<ExecOutput, ExecError> + Send + Sync;

    #[derive(Clone)]
    pub struct FakeExec {
        known: Vec<String>,
        calls: Arc<Mutex<Vec<Call>>>,
        respond: Arc<Responder>,
    }

    impl fmt::Debug for FakeExec {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("FakeExec")
                .field("known", &self.known)
                .finish()
        }
    }

    impl FakeExec {
        /// Plugins named in `known` exist (as `/fake/<type>`).
        pub fn new(
            known: &[&str],
            respond: impl Fn(&Call) -> Result<ExecOutput, ExecError> + Send + Sync + 'static,
        ) -> FakeExec {
            FakeExec {
                known: known.iter().map(|s| s.to_string()).collect(),
                calls: Arc::new(Mutex::new(Vec::new())),
                respond: Arc::new(respond),
            }
        }

        pub fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }

        /// `"<COMMAND> <plugin>"` per call, in order.
        pub fn trace(&self) -> Vec<String> {
            self.calls()
                .iter()
                .map(|c| format!("{} {}", c.command, c.plugin))
                .collect()
        }
    }

    /// Exit 0 with `stdout`.
    pub fn ok(stdout: &str) -> Result<ExecOutput, ExecError> {
        Ok(ExecOutput {
            exit_code: Some(0),
            signal: None,
            stdout: stdout.as_bytes().to_vec(),
            stderr: Vec::new(),
        })
    }

    /// Exit `code` with `stdout` and `stderr`.
    pub fn exit(code: i32, stdout: &str, stderr: &str) -> Result<ExecOutput, ExecError> {
        Ok(ExecOutput {
            exit_code: Some(code),
            signal: None,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        })
    }

    /// A chained plugin: echoes `prevResult` (or a minimal result) as ADD
    /// output; empty output for other verbs; VERSION lists every version.
    pub fn passthrough(call: &Call) -> Result<ExecOutput, ExecError> {
        match call.command.as_str() {
            "ADD" => {
                let mut r = call.stdin.get("prevResult").cloned().unwrap_or_else(|| {
                    serde_json::json!({"interfaces":[{"name":"eth0","sandbox":"/x"}],
                        "ips":[{"address":"10.1.0.2/24","interface":0}]})
                });
                r["cniVersion"] = call.stdin["cniVersion"].clone();
                if let Some(ifs) = r.get_mut("interfaces").and_then(|v| v.as_array_mut()) {
                    ifs.push(serde_json::json!({"name": format!("by-{}", call.plugin)}));
                }
                ok(&r.to_string())
            }
            "VERSION" => ok(
                r#"{"cniVersion":"1.1.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#,
            ),
            _ => ok(""),
        }
    }

    impl PluginExec for FakeExec {
        fn find(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, NotFound> {
            if self.known.iter().any(|k| k == plugin_type) {
                Ok(PathBuf::from("/fake").join(plugin_type))
            } else {
                Err(NotFound {
                    plugin: plugin_type.to_string(),
                    dirs: dirs.to_vec(),
                })
            }
        }

        fn run(&self, req: &ExecRequest<'_>) -> Result<ExecOutput, ExecError> {
            let env: BTreeMap<String, String> = req.env.iter().cloned().collect();
            let call = Call {
                plugin: req
                    .plugin
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                command: env.get("CNI_COMMAND").cloned().unwrap_or_default(),
                env,
                stdin: serde_json::from_slice(req.stdin).unwrap_or(serde_json::Value::Null),
                stdin_raw: req.stdin.to_vec(),
                netns: req.netns.map(Path::to_path_buf),
                timeout: req.timeout,
            };
            self.calls.lock().unwrap().push(call.clone());
            (self.respond)(&call)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_in_path_takes_the_first_directory_and_refuses_paths() {
        let dirs = vec![PathBuf::from("/nonexistent"), PathBuf::from("/bin")];
        assert_eq!(find_in_path("sh", &dirs).unwrap(), PathBuf::from("/bin/sh"));
        let e = find_in_path("no-such-plugin-x", &dirs).unwrap_err();
        assert_eq!(
            e.to_string(),
            "plugin \"no-such-plugin-x\" not found in [/nonexistent /bin]"
        );
        assert!(find_in_path("../bin/sh", &dirs).is_err());
        assert!(find_in_path("", &dirs).is_err());
        assert!(find_in_path("sh", &[])
            .unwrap_err()
            .to_string()
            .contains("no directories"));
        // a directory is not a plugin
        assert!(find_in_path("bin", &[PathBuf::from("/")]).is_err());
    }

    #[test]
    fn truncate_cuts_on_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }

    /// Runs `/bin/sh` with `script` as its stdin.
    fn run_sh(script: &str, timeout: Option<Duration>) -> Result<ExecOutput, ExecError> {
        let env = vec![("X_TEST".to_string(), "42".to_string())];
        let sh = PathBuf::from("/bin/sh");
        let full = format!("{script}\n");
        ProcessExec::default().run(&ExecRequest {
            plugin: &sh,
            env: &env,
            stdin: full.as_bytes(),
            timeout,
            netns: None,
        })
    }

    #[test]
    fn real_exec_passes_env_and_stdin_and_captures_output() {
        let out = run_sh("echo out:$X_TEST; echo err >&2; exit 3", None).unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out:42\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
        assert!(!out.success());
    }

    #[test]
    fn stdin_reaches_the_plugin_whole_whether_or_not_it_fits_in_a_pipe() {
        // Prefilled for a configuration's size; written by a thread when it
        // is larger than a pipe holds (64 KiB by default).
        for size in [0usize, 500, 256 * 1024] {
            let data = vec![b'x'; size];
            let out = ProcessExec::default()
                .run(&ExecRequest {
                    plugin: Path::new("/usr/bin/wc"),
                    env: &[],
                    stdin: &data,
                    timeout: None,
                    netns: None,
                })
                .unwrap();
            // wc prints lines, words and bytes.
            let counted = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .last()
                .map(str::to_string);
            assert_eq!(counted, Some(size.to_string()));
        }
        assert!(prefilled_stdin(&[b'x'; 500]).is_some());
        assert!(prefilled_stdin(&vec![b'x'; 256 * 1024]).is_none());
    }

    #[test]
    fn real_exec_kills_the_process_group_on_timeout() {
        let started = std::time::Instant::now();
        // a child of the plugin holds stdout too: it must die with the group
        // 2 s: the stderr line must be written before the kill, and a shell
        // can take a while to start on a loaded machine.
        let e = run_sh(
            "echo about to hang >&2; sleep 30 & sleep 30",
            Some(Duration::from_secs(2)),
        )
        .unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
        match &e {
            ExecError::Timeout { after, stderr } => {
                assert_eq!(*after, Duration::from_secs(2));
                assert!(stderr.contains("about to hang"), "{stderr:?}");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(
            e.to_string()
                .contains("did not finish within 2s and was killed"),
            "{e}"
        );
    }

    #[test]
    fn real_exec_reports_signals() {
        let out = run_sh("kill -TERM $$", None).unwrap();
        assert_eq!(out.exit_code, None);
        assert_eq!(out.signal, Some(libc::SIGTERM));
    }

    #[test]
    fn real_exec_spawn_failure_names_the_binary() {
        let p = PathBuf::from("/nonexistent/plugin");
        let e = ProcessExec::default()
            .run(&ExecRequest {
                plugin: &p,
                env: &[],
                stdin: b"",
                timeout: None,
                netns: None,
            })
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("could not be started (/nonexistent/plugin)"),
            "{e}"
        );
    }

    #[test]
    fn real_exec_runs_the_plugin_in_the_netns_and_leaves_the_caller_where_it_was() {
        if !cni::testing::privileged("real_exec_runs_the_plugin_in_the_netns") {
            return;
        }
        let ns = cni::testing::TestNetns::new("rx");
        let theirs = ns.exec(&["readlink", "/proc/self/ns/net"]);
        let here = || std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let before = here();
        let sh = PathBuf::from("/bin/sh");
        let path = ns.path();
        for _ in 0..3 {
            let out = ProcessExec::default()
                .run(&ExecRequest {
                    plugin: &sh,
                    env: &[],
                    stdin: b"readlink /proc/self/ns/net",
                    timeout: Some(Duration::from_secs(10)),
                    netns: Some(&path),
                })
                .unwrap();
            assert_eq!(out.exit_code, Some(0), "{out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), theirs);
            assert_ne!(theirs.trim(), before.to_string_lossy());
            assert_eq!(here(), before);
        }
    }

    #[test]
    fn real_exec_rejects_a_netns_that_is_not_one() {
        let sh = PathBuf::from("/bin/sh");
        let e = ProcessExec::default()
            .run(&ExecRequest {
                plugin: &sh,
                env: &[],
                stdin: b"true",
                timeout: None,
                netns: Some(Path::new("/etc/hostname")),
            })
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot enter netns /etc/hostname"),
            "{e}"
        );
    }
}
