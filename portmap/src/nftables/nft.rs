//! The `nft` runner: the only place that spawns nft. Feeds a JSON batch to
//! `nft -j -f -` with all three streams piped, so nft's error text reaches
//! the CNI error (the `nftables` crate's helpers lose it, P7). Knows nothing
//! about portmap's objects.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Why an nft invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// nft could not be run.
    #[error("running {program}: {source}")]
    Spawn {
        /// The program run.
        program: String,
        /// Why it could not run.
        source: std::io::Error,
    },
    /// nft ran and refused the batch.
    #[error("nft: {stderr}")]
    Failed {
        /// nft's error text, one line.
        stderr: String,
    },
}

impl NftError {
    /// A referenced table, chain, map or element does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, NftError::Failed { stderr } if stderr.contains("No such file or directory"))
    }

    /// Something `create`d already exists.
    pub fn is_exists(&self) -> bool {
        matches!(self, NftError::Failed { stderr } if stderr.contains("File exists"))
    }
}

/// How to run nft.
#[derive(Debug, Clone)]
pub struct Nft {
    program: PathBuf,
}

impl Default for Nft {
    fn default() -> Self {
        Nft {
            program: PathBuf::from("nft"),
        }
    }
}

impl Nft {
    /// Applies one atomic batch; returns nft's stdout.
    pub fn apply(&self, batch: &Value) -> Result<String, NftError> {
        let program = self.program.display().to_string();
        let spawn_err = |source| NftError::Spawn {
            program: program.clone(),
            source,
        };
        cni::failpoint::crash_point("nft batch");
        let mut child = Command::new(&self.program)
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let text = batch.to_string();
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(text.as_bytes()).map_err(spawn_err)?;
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stderr = stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| l.trim_start_matches("internal:0:0-0: "))
                .collect::<Vec<_>>()
                .join("; ");
            let stderr = if stderr.is_empty() {
                format!("exited with {}", out.status)
            } else {
                stderr
            };
            Err(NftError::Failed { stderr })
        }
    }

    /// Whether the program is an executable file on `PATH` (or at its
    /// path), found without running it.
    pub fn installed(&self) -> bool {
        use std::os::unix::fs::PermissionsExt;
        let executable = |p: &std::path::Path| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        if self.program.components().count() > 1 {
            return executable(&self.program);
        }
        std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| executable(&dir.join(&self.program)))
        })
    }
}
