//! Shared helpers of the runtime and CLI integration tests: temporary
//! directories (tempfile) with file-writing helpers, shell-script plugins,
//! locating our `noop` binary, and ptp + host-local conflists whose IPAM state stays in a temp dir.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A directory under the system temp dir (`cni-conf-<tag>-XXXXXX`, from
/// the `tempfile` crate), removed on drop, with file-writing helpers.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cni-conf-{tag}-"))
            .tempdir()
            .unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// An executable `#!/bin/sh` script.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.write(name, &format!("#!/bin/sh\n{body}\n"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
}

/// A script plugin that logs `COMMAND name CONTAINERID IFNAME ARGS` to
/// `<dir>/log`, saves its stdin to `<dir>/stdin.<COMMAND>.<name>`, answers
/// ADD with its prevResult (or a fixed result), and VERSION with `versions`.
pub fn recording_plugin(dir: &TempDir, name: &str, versions: &str) -> PathBuf {
    dir.script(
        name,
        &format!(
            r#"d=$(dirname "$0")
stdin=$(cat)
echo "$CNI_COMMAND {name} $CNI_CONTAINERID $CNI_IFNAME $CNI_ARGS" >> "$d/log"
printf '%s' "$stdin" > "$d/stdin.$CNI_COMMAND.{name}"
case "$CNI_COMMAND" in
ADD) echo '{{"cniVersion":"1.0.0","interfaces":[{{"name":"eth0","sandbox":"'"$CNI_NETNS"'"}}],"ips":[{{"address":"10.9.0.2/24","interface":0}}]}}' ;;
VERSION) echo '{{"cniVersion":"1.0.0","supportedVersions":[{versions}]}}' ;;
esac"#
        ),
    )
}

/// The lines of `<dir>/log`.
pub fn log_lines(dir: &TempDir) -> Vec<String> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Our `noop` plugin next to the test binary's profile dir
/// (target/<profile>/noop). `None` (with a printed reason) when it was not
/// built; under CI its absence is a failure (the test command builds the
/// workspace first).
pub fn noop_dir(test: &str) -> Option<PathBuf> {
    let profile_dir = cni::testing::workspace_bin_dir();
    if profile_dir.join("noop").is_file() {
        return Some(profile_dir);
    }
    let reason = format!(
        "{} not built (run `cargo build --workspace` first)",
        profile_dir.join("noop").display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {reason}");
    }
    eprintln!("SKIP {test}: {reason}");
    None
}

/// Debian's reference plugins.
pub const DEBIAN_CNI: &str = "/usr/lib/cni";

/// A ptp (+ host-local, state in `ipam_dir`) conflist, optionally followed
/// by our noop.
pub fn ptp_conflist(
    name: &str,
    version: &str,
    subnet: &str,
    ipam_dir: &Path,
    noop: bool,
) -> String {
    let noop = if noop { r#",{"type":"noop"}"# } else { "" };
    format!(
        r#"{{"cniVersion":"{version}","name":"{name}","plugins":[{{"type":"ptp","mtu":1400,"ipam":{{"type":"host-local","subnet":"{subnet}","dataDir":"{}"}}}}{noop}]}}"#,
        ipam_dir.display()
    )
}
