//! What the runtime fails with: which plugin of which network was doing what
//! ([`PluginRef`]), what went wrong with that one invocation
//! ([`PluginFailure`]), and [`RuntimeError`], whose `Display` is the whole
//! message a user sees (network, plugin index, type, verb, the plugin's own
//! error and its stderr).

use std::fmt;

use cni::{CniError, CniVersion, Command};

use super::ConvertError;
use crate::cache::CacheError;
use crate::exec::{truncate, ExecError, NotFound};

/// Which plugin of which network was doing what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    pub network: String,
    pub index: usize,
    pub plugin: String,
    pub verb: Command,
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "network {:?}: plugin #{} type={:?} failed ({})",
            self.network,
            self.index,
            self.plugin,
            self.verb.as_str()
        )
    }
}

/// What went wrong with one plugin invocation.
#[derive(Debug, thiserror::Error)]
pub enum PluginFailure {
    #[error("{0}")]
    NotFound(NotFound),
    #[error("{0}")]
    Exec(ExecError),
    /// The plugin printed a spec error.
    #[error("{}", describe_cni_error(.0))]
    Error(CniError),
    #[error(
        "exited with status {code} without printing an error{}",
        stderr_note(stderr)
    )]
    NoErrorJson { code: i32, stderr: String },
    #[error("was killed by signal {signal}{}", stderr_note(stderr))]
    Signal { signal: i32, stderr: String },
    #[error(
        "exited with status {code} and printed something that is not a CNI error: {stdout:?}{}",
        stderr_note(stderr)
    )]
    Garbage {
        code: i32,
        stdout: String,
        stderr: String,
    },
    #[error("printed an invalid result ({reason}): {stdout:?}")]
    BadResult { reason: String, stdout: String },
}

fn describe_cni_error(e: &CniError) -> String {
    if e.details.is_empty() {
        format!("code {}: {}", e.code.as_u32(), e.msg)
    } else {
        format!("code {}: {}; {}", e.code.as_u32(), e.msg, e.details)
    }
}

fn stderr_note(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        " (stderr empty)".into()
    } else {
        format!(" (stderr: {:?})", truncate(s, 400))
    }
}

/// Everything the runtime can fail with. `Display` is the full message.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{at}: {failure}")]
    Plugin {
        at: PluginRef,
        failure: Box<PluginFailure>,
    },
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidAttachment {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("network {network:?}: configuration version \"{version}\" does not support the {verb} command")]
    Unsupported {
        network: String,
        version: CniVersion,
        verb: &'static str,
    },
    #[error("network {network:?}: {action} the result cache: {source}")]
    Cache {
        network: String,
        action: &'static str,
        source: CacheError,
    },
    #[error("network {network:?}: cached result: {source}")]
    CachedResult {
        network: String,
        source: ConvertError,
    },
    #[error(
        "network {network:?}: plugin #{index} type={plugin:?} does not support config version {asked:?}; it supports {}",
        format_versions(supported)
    )]
    VersionMismatch {
        network: String,
        index: usize,
        plugin: String,
        asked: String,
        supported: Vec<String>,
    },
    #[error("{}", format_multiple(context, errors))]
    Multiple {
        context: String,
        errors: Vec<RuntimeError>,
    },
}

fn format_versions(v: &[String]) -> String {
    let quoted: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

fn format_multiple(context: &str, errors: &[RuntimeError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .enumerate()
        .map(|(i, e)| format!("({}) {e}", i + 1))
        .collect();
    format!("{context}: {} errors: {}", errors.len(), parts.join("; "))
}

impl RuntimeError {
    /// The spec error a plugin printed, when that is what failed.
    pub fn cni_error(&self) -> Option<&CniError> {
        match self {
            RuntimeError::Plugin { failure, .. } => match failure.as_ref() {
                PluginFailure::Error(e) => Some(e),
                _ => None,
            },
            RuntimeError::Multiple { errors, .. } => errors.iter().find_map(|e| e.cni_error()),
            _ => None,
        }
    }

    /// The plugin invocation that failed, if a plugin did.
    pub fn plugin(&self) -> Option<&PluginRef> {
        match self {
            RuntimeError::Plugin { at, .. } => Some(at),
            RuntimeError::Multiple { errors, .. } => errors.iter().find_map(|e| e.plugin()),
            _ => None,
        }
    }

    /// Every error (one, or each of a `Multiple`).
    pub fn all(&self) -> Vec<&RuntimeError> {
        match self {
            RuntimeError::Multiple { errors, .. } => errors.iter().flat_map(|e| e.all()).collect(),
            e => vec![e],
        }
    }

    pub(super) fn join(context: String, mut errors: Vec<RuntimeError>) -> Result<(), RuntimeError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(RuntimeError::Multiple { context, errors }),
        }
    }
}
