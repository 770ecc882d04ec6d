//! Every effect on the host's files: atomic replacement (temp name in the
//! same dir, fsync, rename, fsync of the dir), copying plugin binaries
//! without disturbing a running copy (always a rename over the old file,
//! never a write into it), skipping identical files, verifying each copy with
//! the CNI VERSION command before it replaces anything, listing a conf dir
//! and the readiness file. Decides nothing about content.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::InstallError;

/// Prefix and suffix of our temp files: hidden, and without a CNI extension,
/// so no runtime ever loads one as a network.
const TEMP_PREFIX: &str = ".cni-install-";
const TEMP_SUFFIX: &str = ".tmp";

/// True for the names of the temp files we write (and rename away).
pub fn is_our_temp_file(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}

fn io_err(what: String) -> impl FnOnce(io::Error) -> InstallError {
    move |source| InstallError::Io { what, source }
}

/// What `copy_plugin` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyOutcome {
    Copied,
    AlreadyIdentical,
}

/// Replaces `dir/name` with `bytes` atomically: a reader sees the old file or
/// the new one, never a part. Mode (and, where we may, owner) follow the file
/// named by `like`, else `mode`.
pub fn write_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    like: Option<&Path>,
    mode: u32,
) -> Result<(), InstallError> {
    let target = dir.join(name);
    let like_meta = like.and_then(|p| fs::metadata(p).ok());
    let mode = like_meta.as_ref().map_or(mode, |m| m.mode() & 0o7777);
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(io_err(format!("creating a temp file in {}", dir.display())))?;
    let what = || format!("writing {}", tmp_path_display(dir));
    tmp.write_all(bytes).map_err(io_err(what()))?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(io_err(what()))?;
    if let Some(meta) = &like_meta {
        keep_owner(tmp.as_file(), meta, &target);
    }
    tmp.as_file().sync_all().map_err(io_err(what()))?;
    tmp.persist(&target).map_err(|e| InstallError::Io {
        what: format!("renaming into {}", target.display()),
        source: e.error,
    })?;
    sync_dir(dir)
}

fn tmp_path_display(dir: &Path) -> String {
    format!("{}/{TEMP_PREFIX}*{TEMP_SUFFIX}", dir.display())
}

/// Gives the new file the old file's owner when it differs from ours. Needs
/// CAP_CHOWN, which the DaemonSet does not grant: without it the new file is
/// ours (root's), and we say so.
fn keep_owner(file: &File, old: &fs::Metadata, target: &Path) {
    let Ok(ours) = file.metadata() else { return };
    if ours.uid() == old.uid() && ours.gid() == old.gid() {
        return;
    }
    if let Err(e) = std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid())) {
        eprintln!(
            "cni-install: {} stays owned by {}:{} (was {}:{}): {e}",
            target.display(),
            ours.uid(),
            ours.gid(),
            old.uid(),
            old.gid()
        );
    }
}

/// fsync of a directory, so a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), InstallError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing {}", dir.display())))
}

/// Copies `source` to `bin_dir/name`: skips it when the content is already
/// there; otherwise writes a temp file beside the target, runs it with
/// VERSION, and only then renames it over the old one (a runtime executing
/// the old binary keeps its inode; writing into it would fail with ETXTBSY
/// or corrupt it).
pub fn copy_plugin(source: &Path, bin_dir: &Path, name: &str) -> Result<CopyOutcome, InstallError> {
    let target = bin_dir.join(name);
    let bytes = fs::read(source).map_err(io_err(format!("reading {}", source.display())))?;
    if let Ok(existing) = fs::read(&target) {
        if existing == bytes {
            let meta =
                fs::metadata(&target).map_err(io_err(format!("reading {}", target.display())))?;
            if meta.mode() & 0o111 != 0o111 {
                fs::set_permissions(&target, Permissions::from_mode(0o755))
                    .map_err(io_err(format!("chmod {}", target.display())))?;
            }
            return Ok(CopyOutcome::AlreadyIdentical);
        }
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(bin_dir)
        .map_err(io_err(format!(
            "creating a temp file in {}",
            bin_dir.display()
        )))?;
    let what = || format!("writing {}", tmp_path_display(bin_dir));
    tmp.write_all(&bytes).map_err(io_err(what()))?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(0o755))
        .map_err(io_err(what()))?;
    tmp.as_file().sync_all().map_err(io_err(what()))?;
    // Close our write descriptor before executing the file (ETXTBSY).
    let tmp_path = tmp.into_temp_path();
    verify_plugin(&tmp_path, name)?;
    tmp_path.persist(&target).map_err(|e| InstallError::Io {
        what: format!("renaming into {}", target.display()),
        source: e.error,
    })?;
    sync_dir(bin_dir)?;
    Ok(CopyOutcome::Copied)
}

/// Runs `path` as a runtime does for VERSION (empty environment but
/// `CNI_COMMAND`, a config on stdin) and checks the answer lists versions.
pub fn verify_plugin(path: &Path, name: &str) -> Result<(), InstallError> {
    let fail = |reason: String| InstallError::Verify {
        plugin: name.to_string(),
        reason,
    };
    let mut child = spawn_retrying_busy(
        Command::new(path)
            .env_clear()
            .env("CNI_COMMAND", "VERSION")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin may not read stdin for VERSION; a closed pipe is fine.
        let _ = stdin.write_all(br#"{"cniVersion":"1.0.0"}"#);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("waiting for it: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "VERSION exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format!("VERSION printed no JSON ({e})")))?;
    match answer.get("supportedVersions").and_then(|v| v.as_array()) {
        Some(list) if !list.is_empty() => Ok(()),
        _ => Err(fail(format!(
            "VERSION answer has no supportedVersions: {answer}"
        ))),
    }
}

/// Spawns `cmd`, retrying while the kernel says ETXTBSY: a process forked
/// by another thread between our write and our exec may briefly hold a copy
/// of the (close-on-exec) write descriptor.
fn spawn_retrying_busy(cmd: &mut Command) -> io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc_etxtbsy()) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn libc_etxtbsy() -> i32 {
    nix::errno::Errno::ETXTBSY as i32
}

/// The names of the regular files (or links to them) in a conf dir.
pub fn list_dir(dir: &Path) -> Result<Vec<String>, InstallError> {
    let entries = fs::read_dir(dir).map_err(io_err(format!("listing {}", dir.display())))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(format!("listing {}", dir.display())))?;
        if entry.path().is_dir() {
            continue;
        }
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// The content of `dir/name`; `None` when it is gone.
pub fn read_if_present(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, InstallError> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(InstallError::Io {
            what: format!("reading {}", path.display()),
            source: e,
        }),
    }
}

/// Removes `path`; already gone is fine.
pub fn remove_if_present(path: &Path) -> Result<(), InstallError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(InstallError::Io {
            what: format!("removing {}", path.display()),
            source: e,
        }),
    }
}

/// Writes the readiness file (creating its dir) with `content`.
pub fn write_readiness(path: &Path, content: &str) -> Result<(), InstallError> {
    let (dir, name) = split(path)?;
    fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    write_atomic(&dir, &name, content.as_bytes(), None, 0o644)
}

fn split(path: &Path) -> Result<(PathBuf, String), InstallError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| InstallError::Io {
            what: format!("using {} as a file name", path.display()),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
    Ok((dir.to_path_buf(), name.to_string()))
}
