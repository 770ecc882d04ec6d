//! Builds the image from deploy/Containerfile where a container build tool
//! is available (buildah, from Debian; scripts/setup.sh installs it) and
//! checks what it holds: exactly the six static binaries, runnable in an
//! image with no libc and no shell. No registry is reachable here, so the
//! test takes the release binaries `scripts/build.sh` built (the
//! Containerfile's `prebuilt` stage) instead of pulling a Rust base image;
//! the final stage is the one that ships. Skips, printing why, when there is
//! no build tool or the release binaries are not built.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const SHIPPED: [&str; 6] = [
    "portmap",
    "bandwidth",
    "tuning",
    "loopback",
    "noop",
    "cni-install",
];

fn release_dir() -> PathBuf {
    match std::env::var_os("CNI_CONFORMANCE_PLUGINS") {
        Some(d) => PathBuf::from(d),
        None => cni::testing::workspace_bin_dir()
            .parent()
            .unwrap()
            .join("release"),
    }
}

/// Why the image cannot be built here, if it cannot.
fn skip_reason(release: &Path) -> Option<String> {
    if Command::new("buildah").arg("--version").output().is_err() {
        let docker = match Command::new("docker").arg("info").output() {
            Ok(o) if o.status.success() => {
                "a docker daemon is reachable but this test uses buildah"
            }
            Ok(_) => "the docker client is installed but no docker daemon runs",
            Err(_) => "no docker client either",
        };
        return Some(format!(
            "buildah is not installed (apt-get install buildah); {docker}"
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Some("buildah's chroot isolation needs root here".into());
    }
    SHIPPED.iter().find(|b| !release.join(b).exists()).map(|b| {
        format!(
            "{} is not built (run scripts/build.sh)",
            release.join(b).display()
        )
    })
}

struct Buildah {
    root: tempfile::TempDir,
}

impl Buildah {
    fn run(&self, args: &[&str]) -> String {
        let root = self.root.path();
        let out = Command::new("buildah")
            .arg("--root")
            .arg(root.join("storage"))
            .arg("--runroot")
            .arg(root.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "buildah {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

#[test]
fn containerfile_builds_an_image_of_only_the_static_binaries() {
    let release = release_dir();
    if let Some(reason) = skip_reason(&release) {
        eprintln!("SKIP containerfile_builds_an_image_of_only_the_static_binaries: {reason}");
        return;
    }
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir(ctx.path().join("out")).unwrap();
    let mut total = 0;
    for b in SHIPPED {
        std::fs::copy(release.join(b), ctx.path().join("out").join(b)).unwrap();
        total += std::fs::metadata(release.join(b)).unwrap().len();
    }
    let containerfile = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/Containerfile");
    let buildah = Buildah {
        root: tempfile::tempdir().unwrap(),
    };
    let ctx_path = ctx.path().to_str().unwrap();
    buildah.run(&[
        "build",
        "--isolation",
        "chroot",
        "--build-arg",
        "BINARIES=prebuilt",
        "-f",
        containerfile,
        "-t",
        "localhost/cni-chain-plugins:test",
        ctx_path,
    ]);
    let config = buildah.run(&[
        "inspect",
        "--format",
        "{{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}}",
        "localhost/cni-chain-plugins:test",
    ]);
    assert_eq!(config, "[/opt/cni-install/bin/cni-install] [run]");
    let container = buildah.run(&["from", "localhost/cni-chain-plugins:test"]);
    let mnt = PathBuf::from(buildah.run(&["mount", &container]));
    let mut files: Vec<String> = walk(&mnt)
        .iter()
        .map(|p| p.strip_prefix(&mnt).unwrap().display().to_string())
        .collect();
    files.sort();
    let mut want: Vec<String> = SHIPPED
        .iter()
        .map(|b| format!("opt/cni-install/bin/{b}"))
        .collect();
    want.sort();
    assert_eq!(files, want, "the image holds exactly the shipped binaries");
    // Static: they run in a root with no libc, no loader, no shell.
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new("chroot")
            .arg(&mnt)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        run(&["/opt/cni-install/bin/cni-install", "--version"], &[]),
        "cni-install 0.1.0"
    );
    for plugin in &SHIPPED[..5] {
        let answer = run(
            &[&format!("/opt/cni-install/bin/{plugin}")],
            &[("CNI_COMMAND", "VERSION")],
        );
        assert!(
            answer.contains("\"supportedVersions\""),
            "{plugin}: {answer}"
        );
    }
    let size = buildah.run(&[
        "images",
        "--format",
        "{{.Size}}",
        "localhost/cni-chain-plugins:test",
    ]);
    eprintln!("image localhost/cni-chain-plugins:test: {size} (binaries: {total} bytes)");
    buildah.run(&["umount", &container]);
    buildah.run(&["rm", &container]);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
