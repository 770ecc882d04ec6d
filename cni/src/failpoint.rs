//! Test-only fault injection for every plugin of the workspace (issue #15
//! §3): make one step fail as the kernel would ([`hit`], to prove a
//! rollback), or kill the process with SIGKILL at a side-effect step
//! ([`crash_point`], to prove that DEL after a crash leaves nothing and a
//! fresh ADD works). Compiled in only with this crate's `failpoints`
//! feature, which nothing but the plugins' dev-dependencies enables: with
//! Cargo's resolver 2, dev-dependency features reach a build only when it
//! builds tests, so release binaries (`scripts/build.sh`, `cargo build
//! --workspace`) hold none of this and no environment can steer them
//! (`scripts/build.sh` checks the binaries for the variable names).
//!
//! The steps are marked where effects happen, most of them here in `cni`
//! (every netlink send, every sysctl write, the result about to be printed)
//! and the rest next to the plugins' own file writes. The hook knows no
//! step's meaning.
//!
//! Environment (read by the plugin process):
//! - [`FAIL_ENV`] = step name: [`hit`] is true for that step.
//! - [`CRASH_ENV`] = `k` (1-based): SIGKILL at the k-th crash point this
//!   process reaches; = a step name: at the first point of that name.
//! - [`CRASH_GROUP_ENV`] = `1`: the kill takes the whole process group, as
//!   a runtime does at its timeout (background children included).
//! - [`CRASH_LOG_ENV`] = file: each point reached is appended as
//!   `<k> <name>` (children are not counted: see [`child_crash_armed`]).
//! - [`CHILD_HOLD_ENV`] = file: a detached child waits for that file to
//!   exist (at most 10 s) before its work and removes it after, so a test
//!   can act between a verb's reply and its background work, and then know
//!   that work is over ([`held_child`]).

/// Names the step that must fail (see [`hit`]).
pub const FAIL_ENV: &str = "CNI_FAILPOINT";
/// Names the crash point to die at: an index or a step name.
pub const CRASH_ENV: &str = "CNI_CRASHPOINT";
/// `1`: the crash kills the process group, not only this process.
pub const CRASH_GROUP_ENV: &str = "CNI_CRASHPOINT_GROUP";
/// A file every reached crash point is appended to.
pub const CRASH_LOG_ENV: &str = "CNI_CRASHPOINT_LOG";
/// A file a detached child waits for before its work and removes after it.
pub const CHILD_HOLD_ENV: &str = "CNI_FAILPOINT_CHILD_HOLD";

#[cfg(feature = "failpoints")]
mod armed {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    static REACHED: AtomicU32 = AtomicU32::new(0);
    static IN_CHILD: AtomicBool = AtomicBool::new(false);

    pub fn enter_child() {
        IN_CHILD.store(true, Ordering::Relaxed);
    }

    pub fn hit(name: &str) -> bool {
        std::env::var(super::FAIL_ENV).is_ok_and(|v| v == name)
    }

    fn log(line: &str) {
        if let Ok(path) = std::env::var(super::CRASH_LOG_ENV) {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{line}");
            }
        }
    }

    /// SIGKILL to this process, or to its whole group.
    pub fn die() {
        let group = std::env::var(super::CRASH_GROUP_ENV).is_ok_and(|v| v == "1");
        // SAFETY: plain system calls; neither returns into a broken state
        // (SIGKILL cannot be caught).
        unsafe {
            if group {
                libc::kill(0, libc::SIGKILL);
            }
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }

    pub fn crash_point(name: &str) {
        if IN_CHILD.load(Ordering::Relaxed) {
            return;
        }
        let k = REACHED.fetch_add(1, Ordering::Relaxed) + 1;
        log(&format!("{k} {name}"));
        let Ok(want) = std::env::var(super::CRASH_ENV) else {
            return;
        };
        if want == k.to_string() || want == name {
            die();
        }
    }

    pub fn held_child(work: impl FnOnce()) {
        let Some(path) = std::env::var_os(super::CHILD_HOLD_ENV) else {
            return work();
        };
        let path = std::path::PathBuf::from(path);
        let start = std::time::Instant::now();
        while !path.exists() && start.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        work();
        let _ = std::fs::remove_file(&path);
    }

    pub fn children_steered() -> bool {
        std::env::var_os(super::CRASH_ENV).is_some()
            || std::env::var_os(super::CHILD_HOLD_ENV).is_some()
    }

    pub fn child_crash_armed(name: &str) -> bool {
        let armed = std::env::var(super::CRASH_ENV).is_ok_and(|v| v == name);
        if armed {
            log(&format!("child {name}"));
        }
        armed
    }
}

/// True when the step `name` must fail now.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) -> bool {
    armed::hit(name)
}

/// A side-effect step: the process dies here with SIGKILL when asked to.
#[cfg(feature = "failpoints")]
pub fn crash_point(name: &str) {
    armed::crash_point(name)
}

/// Decided in a parent before `fork`: true when the child named `name`
/// must die at once (with [`die_in_child`]). Not counted as a crash point,
/// so the parent's indices are the same with and without children.
#[cfg(feature = "failpoints")]
pub fn child_crash_armed(name: &str) -> bool {
    armed::child_crash_armed(name)
}

/// True when a test steers detached children (a crash point or a hold is
/// set): the socket closes then go through the forked child, whose hooks
/// these are, and not through the memory-sharing one (`closing.rs`), which
/// runs no code of ours that could look.
#[cfg(feature = "failpoints")]
pub fn children_steered() -> bool {
    armed::children_steered()
}

/// In a detached child ([`crate::netlink::Socket::in_detached_child`]):
/// its steps are not the plugin's, so they are neither counted, logged nor
/// killed (the child is killed as a whole through [`child_crash_armed`]).
#[cfg(feature = "failpoints")]
pub fn enter_child() {
    armed::enter_child()
}

/// In a detached child: runs `work`, held by [`CHILD_HOLD_ENV`] when set.
#[cfg(feature = "failpoints")]
pub fn held_child(work: impl FnOnce()) {
    armed::held_child(work)
}

/// Nothing: failpoints are not compiled in.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn enter_child() {}

/// Runs `work`: failpoints are not compiled in.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn held_child(work: impl FnOnce()) {
    work()
}

/// Always false: failpoints are not compiled in.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) -> bool {
    false
}

/// Nothing: failpoints are not compiled in.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn crash_point(_name: &str) {}

/// Always false: failpoints are not compiled in.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn children_steered() -> bool {
    false
}

/// Always false: failpoints are not compiled in.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn child_crash_armed(_name: &str) -> bool {
    false
}

/// In a forked child: SIGKILL to itself (async-signal-safe: one system
/// call), for a [`child_crash_armed`] child.
pub fn die_in_child() {
    // SAFETY: kill and getpid are async-signal-safe system calls.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}
