//! Throwaway objects for the workspace's tests and the conformance harness
//! (plugins never use this): short unique names, and a named network
//! namespace (`/run/netns/<name>`) deleted on drop together with the
//! per-netns state our plugins keep for a netns that played the host. Not
//! behind the `testing` feature because the harness binary needs it too.

use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `n` in base 36 (`0-9a-z`): the shortest digits for names that must fit
/// in an interface name (15 bytes).
pub fn base36(mut n: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = String::new();
    loop {
        out.insert(0, char::from(DIGITS[(n % 36) as usize]));
        n /= 36;
        if n == 0 {
            return out;
        }
    }
}

/// A named netns created with `ip netns add`, deleted (`ip netns del`) on
/// drop, also when the test or scenario that made it failed.
#[derive(Debug)]
pub struct NamedNetns {
    /// The name under `/run/netns/`.
    pub name: String,
}

impl NamedNetns {
    /// Creates `/run/netns/<name>`; the error carries `ip`'s stderr.
    pub fn create(name: &str) -> io::Result<NamedNetns> {
        let out = Command::new("ip")
            .args(["netns", "add", name])
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "ip netns add {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(NamedNetns { name: name.into() })
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        // portmap keeps a lock file, indexes and a flush queue per host
        // netns inode; a netns that played the host takes them along, or
        // every run leaves files on the real host.
        if let Ok(meta) = std::fs::metadata(self.path()) {
            use std::os::unix::fs::MetadataExt;
            let base = format!("/run/cni-portmap/netns-{}", meta.ino());
            let _ = std::fs::remove_dir_all(&base);
            let _ = std::fs::remove_file(format!("{base}.lock"));
            let _ = std::fs::remove_dir_all(format!("{base}.udp"));
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_digits() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(1_679_615), "zzzz");
    }
}
