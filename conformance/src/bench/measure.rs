//! Runs one plugin process and measures it, in one of two modes:
//! - [`Probe::Time`]: wall time from spawn to reap with as little of the
//!   harness in it as possible: the calling thread enters the netns just for
//!   the spawn (so the child is started with `posix_spawn`, not a fork of
//!   this process), stdin is written and the output read on this thread (one
//!   `poll` loop, which also enforces the time limit), no helper threads, no
//!   tracing. A trivial static binary measures ~0.8 ms here; with the
//!   previous fork + ptrace + four threads per invocation it measured 2.8 ms,
//!   which compressed every ratio towards 1.
//! - [`Probe::PeakRss`]: the child runs under ptrace with PTRACE_O_TRACEEXIT
//!   so its VmHWM can be read from /proc while it is stopped at exit, before
//!   its memory is released (ru_maxrss would report the parent's RSS copied
//!   at fork). Its wall time is not a latency figure.
//!
//! Also owns the statistics (median, p95, p99) and the ABBA order.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one invocation is run for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Latency: spawn to reap, untraced.
    Time,
    /// Peak RSS of the plugin process (traced; its wall time is not kept).
    PeakRss,
}

/// One measured invocation.
#[derive(Debug, Clone)]
pub struct Sample {
    pub probe: Probe,
    pub wall: Duration,
    /// VmHWM of the plugin process at exit, KiB ([`Probe::PeakRss`] only).
    pub peak_rss_kib: Option<u64>,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Sample {
    /// What the plugin said, on one line: its stdout, or its stderr when
    /// stdout is blank.
    pub fn output_line(&self) -> String {
        let out = if self.stdout.trim().is_empty() {
            &self.stderr
        } else {
            &self.stdout
        };
        out.trim().replace('\n', " ")
    }
}

fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Why one measured invocation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The spawning thread could not enter the netns.
    #[error("entering netns: {0}")]
    EnterNetns(cni::netns::NetnsError),
    /// The spawning thread could not return from the netns.
    #[error("leaving netns: {0}")]
    LeaveNetns(cni::netns::NetnsError),
    /// The netns file could not be opened.
    #[error("opening netns {}: {source}", path.display())]
    OpenNetns {
        /// The netns path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The plugin could not be started.
    #[error("starting {}: {source}", plugin.display())]
    Start {
        /// The plugin binary.
        plugin: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Waiting for the plugin failed.
    #[error("waiting for {}: {source}", plugin.display())]
    Wait {
        /// The plugin binary.
        plugin: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl MeasureError {
    fn start(plugin: &Path, source: std::io::Error) -> MeasureError {
        MeasureError::Start {
            plugin: plugin.to_path_buf(),
            source,
        }
    }

    fn wait(plugin: &Path, source: std::io::Error) -> MeasureError {
        MeasureError::Wait {
            plugin: plugin.to_path_buf(),
            source,
        }
    }
}

/// Runs `plugin` (inside `netns` when given) with exactly `env` (plus PATH),
/// feeding `stdin`; kills it after `limit`.
pub fn run_measured(
    plugin: &Path,
    netns: Option<&Path>,
    env: &[(String, String)],
    stdin: &[u8],
    limit: Duration,
    probe: Probe,
) -> Result<Sample, MeasureError> {
    match probe {
        Probe::Time => run_timed(plugin, netns, env, stdin, limit),
        Probe::PeakRss => run_traced(plugin, netns, env, stdin, limit),
    }
}

fn command(plugin: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(plugin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Stdin up to this size goes into the pipe in one write without waiting for
/// the child (Linux pipes hold 64 KiB); larger input gets a writer thread.
const PIPE_ROOM: usize = 60 * 1024;

fn run_timed(
    plugin: &Path,
    netns: Option<&Path>,
    env: &[(String, String)],
    stdin: &[u8],
    limit: Duration,
) -> Result<Sample, MeasureError> {
    let mut cmd = command(plugin, env);
    // The child inherits the spawning thread's netns; this thread goes back
    // right after the spawn.
    let guard = netns
        .map(cni::netns::NetnsGuard::enter)
        .transpose()
        .map_err(MeasureError::EnterNetns)?;
    let start = Instant::now();
    let spawned = cmd.spawn();
    if let Some(g) = guard {
        g.leave().map_err(MeasureError::LeaveNetns)?;
    }
    let mut child = spawned.map_err(|e| MeasureError::start(plugin, e))?;
    let writer = match child.stdin.take() {
        Some(mut pipe) if stdin.len() <= PIPE_ROOM => {
            let _ = pipe.write_all(stdin);
            None
        }
        Some(mut pipe) => {
            let data = stdin.to_vec();
            Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            }))
        }
        None => None,
    };
    let (stdout, stderr, timed_out) = drain(&mut child, start + limit);
    let status = child.wait();
    let wall = start.elapsed();
    if let Some(w) = writer {
        let _ = w.join();
    }
    let status = status.map_err(|e| MeasureError::wait(plugin, e))?;
    Ok(Sample {
        probe: Probe::Time,
        wall,
        peak_rss_kib: None,
        exit_code: if timed_out { None } else { status.code() },
        stdout,
        stderr,
    })
}

/// One output pipe of the child being drained.
struct Pipe {
    fd: i32,
    reader: Option<Box<dyn Read>>,
    data: Vec<u8>,
}

impl Pipe {
    fn new<R: Read + AsRawFd + 'static>(r: Option<R>) -> Pipe {
        Pipe {
            fd: r.as_ref().map_or(-1, |r| r.as_raw_fd()),
            reader: r.map(|r| Box::new(r) as Box<dyn Read>),
            data: Vec::new(),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// Reads the child's stdout and stderr until both reach EOF or `deadline`
/// passes; then kills the child (not reaped yet, so its pid is still its own).
/// Returns (stdout, stderr, timed out).
fn drain(child: &mut Child, deadline: Instant) -> (String, String, bool) {
    let mut pipes = [
        Pipe::new(child.stdout.take()),
        Pipe::new(child.stderr.take()),
    ];
    let mut timed_out = false;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let mut fds: Vec<libc::pollfd> = pipes
            .iter()
            .filter(|p| p.reader.is_some())
            .map(|p| libc::pollfd {
                fd: p.fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if fds.is_empty() {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // SAFETY: our own child, not reaped yet.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
            timed_out = true;
            break;
        }
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        for fd in fds.iter().filter(|f| f.revents != 0) {
            let Some(pipe) = pipes.iter_mut().find(|p| p.fd == fd.fd) else {
                continue;
            };
            match pipe.reader.as_mut().map(|r| r.read(&mut chunk)) {
                Some(Ok(k)) if k > 0 => pipe.data.extend_from_slice(&chunk[..k]),
                Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                _ => pipe.reader = None,
            }
        }
    }
    (pipes[0].text(), pipes[1].text(), timed_out)
}

/// [`Probe::PeakRss`]: forks with a `pre_exec` that enters `netns` and asks
/// to be traced; helper threads feed stdin, read the output and kill the
/// child after `limit` while this thread follows the ptrace stops.
fn run_traced(
    plugin: &Path,
    netns: Option<&Path>,
    env: &[(String, String)],
    stdin: &[u8],
    limit: Duration,
) -> Result<Sample, MeasureError> {
    let ns_file = match netns {
        Some(p) => Some(File::open(p).map_err(|source| MeasureError::OpenNetns {
            path: p.to_path_buf(),
            source,
        })?),
        None => None,
    };
    let ns_fd = ns_file.as_ref().map(|f| f.as_raw_fd());
    let mut cmd = command(plugin, env);
    // SAFETY: only async-signal-safe calls (setns, ptrace) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = ns_fd {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::ptrace(
                libc::PTRACE_TRACEME,
                0,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| MeasureError::start(plugin, e))?;
    let pid = child.id() as libc::pid_t;
    let stdin_data = stdin.to_vec();
    let mut pipe_in = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(p) = pipe_in.as_mut() {
            let _ = p.write_all(&stdin_data);
        }
    });
    let mut out_pipe = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let mut err_pipe = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while !done.load(Ordering::Relaxed) {
                if t0.elapsed() > limit {
                    // SAFETY: our own child, not reaped yet (done is unset).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let mut peak = None;
    let mut first_stop = true;
    let exit_code = loop {
        let mut status: libc::c_int = 0;
        // SAFETY: plain waitpid on our child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            done.store(true, Ordering::Relaxed);
            return Err(MeasureError::wait(plugin, e));
        }
        if libc::WIFEXITED(status) {
            break Some(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            break None;
        }
        if libc::WIFSTOPPED(status) {
            let sig = libc::WSTOPSIG(status);
            let event = (status >> 16) & 0xffff;
            let mut deliver: libc::c_int = 0;
            if event == libc::PTRACE_EVENT_EXIT {
                peak = vm_hwm_kib(pid);
            } else if sig == libc::SIGTRAP && first_stop {
                first_stop = false;
                // SAFETY: the tracee is stopped.
                unsafe {
                    libc::ptrace(
                        libc::PTRACE_SETOPTIONS,
                        pid,
                        std::ptr::null_mut::<libc::c_void>(),
                        (libc::PTRACE_O_TRACEEXIT | libc::PTRACE_O_EXITKILL) as usize
                            as *mut libc::c_void,
                    );
                }
            } else if sig != libc::SIGTRAP {
                deliver = sig;
            }
            // SAFETY: the tracee is stopped.
            unsafe {
                libc::ptrace(
                    libc::PTRACE_CONT,
                    pid,
                    std::ptr::null_mut::<libc::c_void>(),
                    deliver as usize as *mut libc::c_void,
                );
            }
        }
    };
    let wall = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let _ = watchdog.join();
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Sample {
        probe: Probe::PeakRss,
        wall,
        peak_rss_kib: peak,
        exit_code,
        stdout,
        stderr,
    })
}

/// The `q` quantile (0..=1) of `values` with linear interpolation between
/// closest ranks; `None` for an empty list.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

pub fn median(values: &[f64]) -> Option<f64> {
    quantile(values, 0.5)
}

pub fn p95(values: &[f64]) -> Option<f64> {
    quantile(values, 0.95)
}

pub fn p99(values: &[f64]) -> Option<f64> {
    quantile(values, 0.99)
}

/// The order in which `sides` directories take turns over `iterations`:
/// round-robin, with the starting side rotating every iteration (ABBA for
/// two sides), so slow drift of the machine hits every side equally.
pub fn alternation(iterations: usize, sides: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(iterations * sides);
    for i in 0..iterations {
        for k in 0..sides {
            let side = if i % 2 == 0 { k } else { sides - 1 - k };
            out.push((i, side));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p95_interpolate() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5.0]), Some(5.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((p95(&v).unwrap() - 95.05).abs() < 1e-9);
        assert_eq!(p95(&[1.0, 2.0]), Some(1.95));
        assert_eq!(quantile(&[7.0, 9.0], 1.0), Some(9.0));
    }

    #[test]
    fn alternation_is_abba_and_balanced() {
        assert_eq!(
            alternation(3, 2),
            vec![(0, 0), (0, 1), (1, 1), (1, 0), (2, 0), (2, 1)]
        );
        assert_eq!(alternation(2, 1), vec![(0, 0), (1, 0)]);
        let order = alternation(10, 2);
        let firsts = order.chunks(2).filter(|c| c[0].1 == 0).count();
        assert_eq!(firsts, 5, "each side goes first half of the time");
    }

    #[test]
    fn measures_a_process_and_its_own_rss() {
        let s = run_measured(
            Path::new("/bin/sh"),
            None,
            &[],
            b"read x; echo got $x; exit 3\n",
            Duration::from_secs(60),
            Probe::PeakRss,
        )
        .unwrap();
        assert_eq!(s.probe, Probe::PeakRss);
        assert_eq!(s.exit_code, Some(3));
        assert_eq!(s.stdout.trim(), "got");
        let rss = s.peak_rss_kib.expect("VmHWM read at exit");
        // A shell is a few MiB; the test binary (parent) is much bigger.
        assert!(rss > 100 && rss < 20_000, "{rss} KiB");
    }

    #[test]
    fn timed_run_feeds_stdin_reads_both_pipes_and_keeps_the_exit_code() {
        let s = run_measured(
            Path::new("/bin/sh"),
            None,
            &[("GREETING".into(), "hi".into())],
            b"read x; echo $GREETING $x; echo oops >&2; exit 4\n",
            Duration::from_secs(60),
            Probe::Time,
        )
        .unwrap();
        assert_eq!(s.probe, Probe::Time);
        assert_eq!(s.exit_code, Some(4));
        assert_eq!(s.stdout.trim(), "hi");
        assert_eq!(s.stderr.trim(), "oops");
        assert!(s.peak_rss_kib.is_none());
        assert!(s.wall > Duration::ZERO && s.wall < Duration::from_secs(60));
    }

    #[test]
    fn timed_run_takes_large_stdin_and_output() {
        // More than a pipe holds in both directions: the writer thread and
        // the poll loop must both keep going.
        let input = vec![b'x'; 300 * 1024];
        let s = run_measured(
            Path::new("/bin/cat"),
            None,
            &[],
            &input,
            Duration::from_secs(60),
            Probe::Time,
        )
        .unwrap();
        assert_eq!(s.exit_code, Some(0));
        assert_eq!(s.stdout.len(), input.len());
    }

    #[test]
    fn timed_run_kills_a_child_past_the_limit() {
        let t = Instant::now();
        let s = run_measured(
            Path::new("/bin/sh"),
            None,
            &[],
            b"sleep 30\n",
            Duration::from_millis(300),
            Probe::Time,
        )
        .unwrap();
        assert_eq!(s.exit_code, None, "killed, no exit code");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    }

    #[test]
    fn timed_run_starts_the_child_in_the_netns() {
        if !cni::testing::privileged("timed_run_starts_the_child_in_the_netns") {
            return;
        }
        use std::os::unix::fs::MetadataExt;
        let ns = cni::testing::TestNetns::new("bm");
        let want = format!("net:[{}]", std::fs::metadata(ns.path()).unwrap().ino());
        let s = run_measured(
            Path::new("/bin/sh"),
            Some(&ns.path()),
            &[],
            b"readlink /proc/self/ns/net\n",
            Duration::from_secs(5),
            Probe::Time,
        )
        .unwrap();
        assert_eq!(s.stdout.trim(), want);
        // The spawning thread is back in its own netns.
        let mine = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let before = std::fs::read_link("/proc/self/ns/net").unwrap();
        assert_eq!(mine, before);
        assert_ne!(mine.to_string_lossy(), want);
    }
}
