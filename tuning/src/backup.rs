//! The backup file: the original value of everything one ADD changes
//! (sysctls and link attributes), keyed by owner (network + container ID +
//! ifname) so DEL restores and GC finds it without runtime state.
//!
//! Layout: `<dataDir>/<network>+<containerID>+<ifname>.json` (ifname bytes
//! outside `[A-Za-z0-9_.-]` are %-escaped; over-long names become a sha256),
//! directory 0700, file 0600, written atomically (temp file + rename, no
//! fsync: backups are worthless after a reboot, which ends every netns). The
//! owner is also stored inside, and GC trusts only that, so files of other
//! formats in the same directory (upstream's `<id>_<ifname>.json`) are never
//! touched. A crash between create and rename leaves `<file>.tmp<pid>`;
//! [`temp_files`] finds those for GC. This module does file I/O only; never
//! the kernel.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use cni::args::Owner;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Marks files written by this plugin.
pub const KIND: &str = "cni.dev/tuning-backup-v1";

/// The originals one attachment's ADD changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    pub kind: String,
    pub network: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    /// The netns the values live in (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// In the order they were applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<SavedSysctl>,
    #[serde(default, skip_serializing_if = "SavedLink::is_empty")]
    pub link: SavedLink,
}

/// A sysctl's original value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSysctl {
    /// The key as configured (re-normalised with the owner's ifname).
    pub key: String,
    /// Its path below /proc/sys, for people reading the file.
    pub path: String,
    pub value: String,
}

/// Original link attributes; `None` = not changed by tuning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLink {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promisc: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allmulti: Option<bool>,
    #[serde(rename = "txQLen", default, skip_serializing_if = "Option::is_none")]
    pub tx_qlen: Option<u32>,
}

impl SavedLink {
    pub fn is_empty(&self) -> bool {
        self == &SavedLink::default()
    }
}

impl Backup {
    pub fn new(owner: &Owner, netns: Option<&Path>) -> Backup {
        Backup {
            kind: KIND.to_string(),
            network: owner.network.clone(),
            container_id: owner.container_id.clone(),
            ifname: owner.ifname.clone(),
            netns: netns.map(|p| p.display().to_string()),
            sysctls: Vec::new(),
            link: SavedLink::default(),
        }
    }

    pub fn owner(&self) -> Owner {
        Owner::new(&self.network, &self.container_id, &self.ifname)
    }

    pub fn is_empty(&self) -> bool {
        self.sysctls.is_empty() && self.link.is_empty()
    }

    /// Adds the originals of `newer` that this backup does not have yet:
    /// a value already saved is the true original and wins.
    pub fn merge_from(&mut self, newer: &Backup) {
        for s in &newer.sysctls {
            if !self.sysctls.iter().any(|o| o.path == s.path) {
                self.sysctls.push(s.clone());
            }
        }
        let (l, n) = (&mut self.link, &newer.link);
        l.mac = l.mac.clone().or_else(|| n.mac.clone());
        l.promisc = l.promisc.or(n.promisc);
        l.mtu = l.mtu.or(n.mtu);
        l.allmulti = l.allmulti.or(n.allmulti);
        l.tx_qlen = l.tx_qlen.or(n.tx_qlen);
        if newer.netns.is_some() {
            self.netns = newer.netns.clone();
        }
    }
}

/// A backup file could not be read, written or removed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("tuning: {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tuning: backup {path} is not a tuning backup: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl From<BackupError> for cni::CniError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Io { .. } => cni::CniError::io(e.to_string()),
            BackupError::Corrupt { .. } => cni::CniError::internal(e.to_string()),
        }
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Io { what, path, source }
}

/// The backup file of `owner` under `data_dir`.
pub fn path_for(data_dir: &Path, owner: &Owner) -> PathBuf {
    let mut ifname = String::new();
    for b in owner.ifname.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-' {
            ifname.push(char::from(b));
        } else {
            ifname.push_str(&format!("%{b:02X}"));
        }
    }
    let name = format!("{}+{}+{ifname}.json", owner.network, owner.container_id);
    if name.len() <= 200 {
        return data_dir.join(name);
    }
    let digest = Sha256::digest(owner.tag().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    data_dir.join(format!("sha256-{hex}.json"))
}

/// Reads the backup of `owner`; `Ok(None)` when there is none.
pub fn load(data_dir: &Path, owner: &Owner) -> Result<Option<Backup>, BackupError> {
    let path = path_for(data_dir, owner);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("reading backup", &path)(e)),
    };
    let backup = decode(&path, &text)?;
    if backup.owner() != *owner {
        return Err(BackupError::Corrupt {
            path,
            reason: format!("it belongs to {}", backup.owner().tag()),
        });
    }
    Ok(Some(backup))
}

fn decode(path: &Path, text: &[u8]) -> Result<Backup, BackupError> {
    let backup: Backup = cni::gojson::from_slice(text).map_err(|e| BackupError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if backup.kind != KIND {
        return Err(BackupError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("kind {:?}", backup.kind),
        });
    }
    Ok(backup)
}

/// The file's content: JSON with one-space indentation, as upstream.
pub fn encode(backup: &Backup) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    match backup.serialize(&mut ser) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => String::new(),
    }
}

/// Writes `backup` atomically: dir 0700, temp file 0600, rename. The
/// directory is created only when the temp file cannot be (first use), so a
/// normal write is open + write + rename + close.
pub fn store(data_dir: &Path, backup: &Backup) -> Result<PathBuf, BackupError> {
    let path = path_for(data_dir, &backup.owner());
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    cni::failpoint::crash_point("tuning backup write");
    let create = || {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
    };
    let mut f = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data_dir)
                .map_err(io("creating backup directory", data_dir))?;
            create()
        }
        other => other,
    }
    .map_err(io("creating backup", &tmp))?;
    // No fsync: a backup is only useful while its netns exists, and no
    // netns survives the crash or reboot that fsync would guard against
    // (and /run is tmpfs). Rename still makes readers see all or nothing.
    let result = f
        .write_all(encode(backup).as_bytes())
        .map_err(io("writing backup", &tmp))
        .and_then(|()| {
            cni::failpoint::crash_point("tuning backup rename");
            fs::rename(&tmp, &path).map_err(io("renaming backup into place", &path))
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

/// Removes the backup of `owner`; a missing file is fine.
pub fn remove(data_dir: &Path, owner: &Owner) -> Result<(), BackupError> {
    let path = path_for(data_dir, owner);
    cni::failpoint::crash_point("tuning backup remove");
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing backup", &path)(e)),
        _ => Ok(()),
    }
}

/// A temp file `store` left behind (a crash between create and rename):
/// `<backup file name>.tmp<pid>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempFile {
    pub path: PathBuf,
    /// The writer's pid, from the name.
    pub pid: u32,
    /// Since the last modification (zero when the clock went backwards).
    pub age: std::time::Duration,
    /// The backup file it was to become (its name without `.tmp<pid>`).
    pub target: String,
    /// For hashed names (`sha256-…`), the `network` inside (`None` when
    /// unreadable, e.g. empty after a crash right after create).
    pub hashed_network: Option<String>,
}

/// A temp file older than this is abandoned whatever its pid says: a writer
/// holds one for microseconds.
pub const TEMP_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

impl TempFile {
    /// Whether it was written for an attachment of `network`: its name
    /// starts with `<network>+`, or (hashed names) its content says so.
    pub fn belongs_to(&self, network: &str) -> bool {
        if self.target.starts_with("sha256-") {
            self.hashed_network.as_deref() == Some(network)
        } else {
            self.target
                .strip_prefix(network)
                .is_some_and(|rest| rest.starts_with('+'))
        }
    }

    /// Safe to remove: its writer is gone, or it is older than [`TEMP_GRACE`].
    pub fn is_abandoned(&self, writer_alive: impl Fn(u32) -> bool) -> bool {
        self.age >= TEMP_GRACE || !writer_alive(self.pid)
    }
}

/// Removes the temp files a killed writer left for `owner`'s backup (a
/// crash between create and rename in [`store`]); a live writer's stay.
/// DEL calls it, so a crashed ADD leaves nothing on disk after DEL.
pub fn remove_abandoned_temps(data_dir: &Path, owner: &Owner) -> Result<(), BackupError> {
    let path = path_for(data_dir, owner);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(());
    };
    for temp in temp_files(data_dir)? {
        if temp.target != name || !temp.is_abandoned(process_alive) {
            continue;
        }
        match fs::remove_file(&temp.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("removing abandoned backup temp", &temp.path)(e))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether process `pid` exists (signal 0; EPERM still means it exists).
/// Pid 0 and values above `i32::MAX` name no single process: not alive.
pub fn process_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Every temp file of `store`'s naming in `data_dir` (`*.json.tmp<pid>`).
pub fn temp_files(data_dir: &Path) -> Result<Vec<TempFile>, BackupError> {
    let entries = match fs::read_dir(data_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("listing backups in", data_dir)(e)),
    };
    let now = std::time::SystemTime::now();
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("listing backups in", data_dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, pid)) = name.rsplit_once(".json.tmp") else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let path = entry.path();
        // Not following symlinks: only regular files are ours.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        let hashed_network = if stem.starts_with("sha256-") {
            fs::read(&path)
                .ok()
                .and_then(|text| decode(&path, &text).ok())
                .map(|b| b.network)
        } else {
            None
        };
        out.push(TempFile {
            target: format!("{stem}.json"),
            path,
            pid,
            age,
            hashed_network,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Every tuning backup in `data_dir` (other files are skipped), with its path.
pub fn list(data_dir: &Path) -> Result<Vec<(PathBuf, Backup)>, BackupError> {
    let entries = match fs::read_dir(data_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("listing backups in", data_dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("listing backups in", data_dir))?;
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Ok(text) = fs::read(&path) else { continue };
        if let Ok(b) = decode(&path, &text) {
            out.push((path, b));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("tuning-backup-{tag}-"))
            .tempdir()
            .unwrap()
    }

    fn sample(owner: &Owner) -> Backup {
        let mut b = Backup::new(owner, Some(Path::new("/run/netns/x")));
        b.sysctls.push(SavedSysctl {
            key: "net.core.somaxconn".into(),
            path: "net/core/somaxconn".into(),
            value: "4096".into(),
        });
        b.link.mtu = Some(1500);
        b
    }

    #[test]
    fn file_names_are_safe_and_distinct() {
        let d = Path::new("/d");
        assert_eq!(
            path_for(d, &Owner::new("net", "ctr_1", "eth0.100")),
            PathBuf::from("/d/net+ctr_1+eth0.100.json")
        );
        assert_eq!(
            path_for(d, &Owner::new("net", "c", "a+b%c")),
            PathBuf::from("/d/net+c+a%2Bb%25c.json")
        );
        let long = "n".repeat(250);
        let p = path_for(d, &Owner::new(&long, "c", "eth0"));
        assert!(p.file_name().unwrap().len() < 80, "{p:?}");
        assert_ne!(
            path_for(d, &Owner::new("a", "b", "c")),
            path_for(d, &Owner::new("a", "b", "d"))
        );
    }

    #[test]
    fn store_load_remove_round_trip_with_modes() {
        let tmp = temp_dir("rt");
        let dir = tmp.path().join("nested");
        let owner = Owner::new("net", "ctr", "eth0");
        assert_eq!(load(&dir, &owner).unwrap(), None);
        let path = store(&dir, &sample(&owner)).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load(&dir, &owner).unwrap(), Some(sample(&owner)));
        // No temp files left.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        remove(&dir, &owner).unwrap();
        remove(&dir, &owner).unwrap();
        assert_eq!(load(&dir, &owner).unwrap(), None);
    }

    #[test]
    fn list_skips_foreign_files() {
        let tmp = temp_dir("list");
        let dir = tmp.path().to_path_buf();
        fs::write(dir.join("ctr_eth0.json"), r#"{"mtu":1500}"#).unwrap();
        fs::write(dir.join("junk.json"), "not json").unwrap();
        fs::write(dir.join("notes.txt"), "x").unwrap();
        store(&dir, &sample(&Owner::new("net", "a", "eth0"))).unwrap();
        store(&dir, &sample(&Owner::new("other", "b", "eth0"))).unwrap();
        let found: Vec<String> = list(&dir)
            .unwrap()
            .into_iter()
            .map(|(_, b)| b.owner().tag())
            .collect();
        assert_eq!(found, ["net/a/eth0", "other/b/eth0"]);
        assert!(list(&dir.join("missing")).unwrap().is_empty());
    }

    #[test]
    fn process_alive_never_signals_a_group() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(0));
        assert!(!process_alive(u32::MAX));
        assert!(!process_alive(999_999_999));
    }

    #[test]
    fn merge_keeps_the_first_originals() {
        let owner = Owner::new("net", "ctr", "eth0");
        let mut first = sample(&owner);
        let mut second = Backup::new(&owner, None);
        second.sysctls.push(SavedSysctl {
            key: "net/core/somaxconn".into(),
            path: "net/core/somaxconn".into(),
            value: "10".into(),
        });
        second.link.mtu = Some(1300);
        second.link.mac = Some("02:00:00:00:00:01".into());
        first.merge_from(&second);
        assert_eq!(first.sysctls.len(), 1);
        assert_eq!(first.sysctls[0].value, "4096");
        assert_eq!(first.link.mtu, Some(1500));
        assert_eq!(first.link.mac.as_deref(), Some("02:00:00:00:00:01"));
    }

    #[test]
    fn load_rejects_a_file_of_another_owner() {
        let tmp = temp_dir("owner");
        let dir = tmp.path().join("data");
        let owner = Owner::new("net", "ctr", "eth0");
        let path = store(&dir, &sample(&owner)).unwrap();
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace("\"net\"", "\"zzz\"");
        fs::write(&path, text).unwrap();
        assert!(matches!(
            load(&dir, &owner),
            Err(BackupError::Corrupt { .. })
        ));
    }
}
