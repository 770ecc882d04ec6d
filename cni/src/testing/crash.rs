//! Crash runs of a real plugin binary (issue #15 §3). The plugin is built
//! with `cni/failpoints` (test builds only) and killed with SIGKILL at each
//! of its side-effect steps in turn — the [`crate::failpoint`] crash points:
//! every netlink send, sysctl write, state or backup file write, rename and
//! removal, nft batch, and the answer about to be printed. After every kill,
//! DEL must succeed and leave the [`World`] exactly as a clean ADD + DEL
//! leaves it (links, addresses, routes, qdiscs and filters, IFBs, the nft
//! ruleset, net sysctls, state files, backups: [`World::snapshot`]), and a
//! fresh ADD (and CHECK, where the plugin has one) must succeed.
//!
//! Three passes per [`Spec`]:
//! - first use: a fresh world per step, so the kill also lands in the
//!   creation of shared things (nft table, state dirs); judged by the
//!   snapshot after crash + DEL + ADD + CHECK + DEL against a clean world's
//!   (names of the world replaced);
//! - steady ADD: one world after a clean ADD + DEL; after crash + DEL the
//!   snapshot must equal the baseline exactly;
//! - steady DEL: ADD, DEL killed at each step, DEL again: baseline.
//!
//! With [`Spec::group`] the kill takes the plugin's whole process group
//! (`kill(0, SIGKILL)`), as a runtime does at its timeout, background
//! children included.

use std::path::Path;

use super::hostile::{ok, Row, Stdin, World};
use crate::failpoint::{CRASH_ENV, CRASH_GROUP_ENV, CRASH_LOG_ENV};

/// What to run and how to kill it.
#[derive(Clone, Copy)]
pub struct Spec {
    /// The plugin type (the config's `type`).
    pub plugin_type: &'static str,
    /// The plugin's test binary (built with the `failpoints` feature).
    pub binary: &'static str,
    /// The ADD (and CHECK, DEL) config of a working attachment.
    pub stdin: Stdin,
    /// Whether the plugin implements CHECK.
    pub check: bool,
    /// Kill the process group instead of the plugin alone.
    pub group: bool,
}

/// What a crash run covered.
#[derive(Debug, Default)]
pub struct Coverage {
    /// Steps (crash point names) of a first ADD on a fresh host.
    pub first_add: Vec<String>,
    /// Steps of an ADD once the plugin's shared state exists.
    pub add: Vec<String>,
    /// Steps of a DEL.
    pub del: Vec<String>,
}

impl Coverage {
    /// The number of kills made.
    pub fn kills(&self) -> usize {
        self.first_add.len() + self.add.len() + self.del.len()
    }
}

fn row(command: &'static str, stdin: Stdin) -> Row {
    ok("crash", command, stdin)
}

impl Spec {
    fn world(&self) -> World {
        World::new(self.plugin_type, Path::new(self.binary))
    }

    fn crash_env(&self, k: usize) -> Vec<(&'static str, String)> {
        let mut env = vec![(CRASH_ENV, k.to_string())];
        if self.group {
            env.push((CRASH_GROUP_ENV, "1".to_string()));
        }
        env
    }

    /// Runs `command` and requires exit 0.
    fn must(&self, w: &World, command: &'static str, why: &str) {
        let (code, out, err) = w.exec(&row(command, self.stdin));
        assert_eq!(
            code,
            Some(0),
            "{}: {command} {why}: {out} {err}",
            self.plugin_type
        );
    }

    /// Runs `command` successfully with the crash log on; the steps it
    /// passed, in order.
    fn steps(&self, w: &World, command: &'static str) -> Vec<String> {
        let log = log_path(command);
        let _ = std::fs::remove_file(&log);
        let env = [(CRASH_LOG_ENV, log.display().to_string())];
        let (code, out, err) = w.exec_with(&row(command, self.stdin), &env);
        assert_eq!(
            code,
            Some(0),
            "{}: {command}: {out} {err}",
            self.plugin_type
        );
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(k, _)| k.parse::<usize>().is_ok())
            .map(|(_, name)| name.to_string())
            .collect()
    }

    /// Runs `command` killed at step `k`; records a failure unless it died
    /// by a signal (a run that took another path and never got there).
    fn killed(&self, w: &World, command: &'static str, k: usize, step: &str, f: &mut Vec<String>) {
        let (code, out, err) = w.exec_with(&row(command, self.stdin), &self.crash_env(k));
        if code.is_some() {
            f.push(format!(
                "{command} was to die at step {k} ({step}) but exited {code:?}: {out} {err}"
            ));
        }
    }

    /// A fresh ADD works (and CHECK passes), then DEL.
    fn fresh_attachment(&self, w: &World, after: &str) {
        self.must(w, "ADD", after);
        if self.check {
            self.must(w, "CHECK", after);
        }
        self.must(w, "DEL", after);
    }

    /// The test `test`: all three passes when privileged (see
    /// [`super::privileged`]), with what they covered on stderr.
    pub fn test(&self, test: &str) {
        if super::privileged(test) {
            let cov = self.run();
            eprintln!(
                "{} (group={}): {} kills: {cov:?}",
                self.plugin_type,
                self.group,
                cov.kills()
            );
        }
    }

    /// All three passes; panics with every failed step.
    pub fn run(&self) -> Coverage {
        let mut failures = Vec::new();
        let mut cov = Coverage::default();

        // First use: a clean world's end state, then one world per step.
        let reference = {
            let w = self.world();
            cov.first_add = self.steps(&w, "ADD");
            self.must(&w, "DEL", "after the first ADD");
            normalized(&w)
        };
        for (i, step) in cov.first_add.iter().enumerate() {
            let k = i + 1;
            let w = self.world();
            self.killed(&w, "ADD", k, step, &mut failures);
            let what = format!("after the first ADD died at step {k} ({step})");
            self.must(&w, "DEL", &what);
            self.fresh_attachment(&w, &what);
            let got = normalized(&w);
            if got != reference {
                failures.push(format!(
                    "{what}: {}",
                    super::hostile::diff(&reference, &got)
                ));
            }
        }

        // Steady state.
        let w = self.world();
        self.must(&w, "ADD", "warming up");
        self.must(&w, "DEL", "warming up");
        let base = w.snapshot();
        cov.add = self.steps(&w, "ADD");
        self.must(&w, "DEL", "after a clean ADD");
        self.must(&w, "ADD", "before counting DEL's steps");
        cov.del = self.steps(&w, "DEL");
        let judge = |what: String, failures: &mut Vec<String>| {
            let now = w.snapshot();
            if now != base {
                failures.push(format!("{what}: {}", super::hostile::diff(&base, &now)));
            }
        };
        judge("a clean ADD + DEL".into(), &mut failures);
        for (i, step) in cov.add.iter().enumerate() {
            let k = i + 1;
            self.killed(&w, "ADD", k, step, &mut failures);
            let what = format!("DEL after ADD died at step {k} ({step})");
            self.must(&w, "DEL", &what);
            judge(what.clone(), &mut failures);
            self.fresh_attachment(&w, &what);
            judge(format!("ADD + DEL {what}"), &mut failures);
        }
        for (i, step) in cov.del.iter().enumerate() {
            let k = i + 1;
            self.must(&w, "ADD", "before a DEL that dies");
            self.killed(&w, "DEL", k, step, &mut failures);
            let what = format!("DEL after DEL died at step {k} ({step})");
            self.must(&w, "DEL", &what);
            judge(what.clone(), &mut failures);
        }
        assert!(
            failures.is_empty(),
            "{} ({} kills, group={}): {} failures:\n{}",
            self.plugin_type,
            cov.kills(),
            self.group,
            failures.len(),
            failures.join("\n")
        );
        assert!(
            cov.first_add.len() >= cov.add.len() && !cov.add.is_empty() && !cov.del.is_empty(),
            "{}: no crash points reached: {cov:?}",
            self.plugin_type
        );
        cov
    }

    /// ADD, CHECK and DEL with the forked background child named `child`
    /// killed as soon as it exists: each verb still succeeds and DEL leaves
    /// the baseline. Returns how many children were killed.
    pub fn run_child_killed(&self, child: &str) -> usize {
        let w = self.world();
        self.must(&w, "ADD", "warming up");
        self.must(&w, "DEL", "warming up");
        let base = w.snapshot();
        let log = log_path("child");
        let env = [
            (CRASH_ENV, child.to_string()),
            (CRASH_LOG_ENV, log.display().to_string()),
        ];
        let mut verbs = vec!["ADD"];
        if self.check {
            verbs.push("CHECK");
        }
        verbs.push("DEL");
        for verb in verbs {
            let (code, out, err) = w.exec_with(&row(verb, self.stdin), &env);
            assert_eq!(
                code,
                Some(0),
                "{}: {verb} with its child killed: {out} {err}",
                self.plugin_type
            );
        }
        let now = w.snapshot();
        assert!(
            now == base,
            "{}: DEL with killed children left: {}",
            self.plugin_type,
            super::hostile::diff(&base, &now)
        );
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let killed = text
            .lines()
            .filter(|l| l.strip_prefix("child ") == Some(child))
            .count();
        let _ = std::fs::remove_file(&log);
        assert!(killed > 0, "{}: no {child:?} was forked", self.plugin_type);
        self.fresh_attachment(&w, "after children were killed");
        killed
    }
}

/// Where a crash log goes: outside the world (its snapshot must not see it).
fn log_path(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}-{what}.log", super::unique_name("cl")))
}

/// The world's snapshot with its own names (netns, veth, temp dir, netns
/// inode, netns cookie) replaced and IPv6 link-local addresses left out,
/// so that two worlds in the same state compare equal.
fn normalized(w: &World) -> String {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(w.host.path())
        .map(|m| m.ino().to_string())
        .unwrap_or_default();
    let mut s = w.snapshot();
    for (from, to) in [
        (w.tmp.display().to_string(), "@TMP@".to_string()),
        (w.host.path().display().to_string(), "@HOSTNS@".into()),
        (w.pod.path().display().to_string(), "@PODNS@".into()),
        (w.host.name.clone(), "@HOSTNS@".into()),
        (w.pod.name.clone(), "@PODNS@".into()),
        (w.host_veth.clone(), "@VETH@".into()),
        // Directory names and the identity file's content.
        (ino, "@INO@".into()),
    ] {
        if !from.is_empty() {
            s = s.replace(&from, &to);
        }
    }
    // Link-local addresses come from the veths' first (random) MACs;
    // portmap's identity file holds the netns cookie (and its length).
    let mut out = String::new();
    let mut identity = false;
    for l in s.lines().filter(|l| !l.contains("fe80::")) {
        if identity {
            out += "  @COOKIE@\n";
            identity = false;
        } else if let Some((path, _)) = l.split_once("/identity ") {
            out += &format!("{path}/identity\n");
            identity = true;
        } else {
            out += &format!("{l}\n");
        }
    }
    out
}
