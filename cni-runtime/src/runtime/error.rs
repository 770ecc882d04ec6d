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
    /// The network name (empty for a bare VERSION query).
    pub network: String,
    /// The plugin's index in the list.
    pub index: usize,
    /// The plugin's `type`.
    pub plugin: String,
    /// The verb it was running.
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
    /// The binary is in none of the plugin directories.
    #[error("{0}")]
    NotFound(NotFound),
    /// The process could not be run to completion.
    #[error("{0}")]
    Exec(ExecError),
    /// The plugin printed a spec error.
    #[error("{}", describe_cni_error(.0))]
    Error(CniError),
    /// A non-zero exit with nothing on stdout.
    #[error(
        "exited with status {code} without printing an error{}",
        stderr_note(stderr)
    )]
    NoErrorJson {
        /// The exit status.
        code: i32,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A signal ended the process.
    #[error("was killed by signal {signal}{}", stderr_note(stderr))]
    Signal {
        /// The signal number.
        signal: i32,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A non-zero exit with something on stdout that is no spec error.
    #[error(
        "exited with status {code} and printed something that is not a CNI error: {stdout:?}{}",
        stderr_note(stderr)
    )]
    Garbage {
        /// The exit status.
        code: i32,
        /// What it printed (shortened).
        stdout: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// Success, but the output is not a valid result (or VERSION answer).
    #[error("printed an invalid result ({reason}): {stdout:?}")]
    BadResult {
        /// Why it is invalid.
        reason: String,
        /// What it printed (shortened).
        stdout: String,
    },
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
    /// One plugin invocation failed.
    #[error("{at}: {failure}")]
    Plugin {
        /// Which plugin, doing what.
        at: PluginRef,
        /// What went wrong.
        failure: Box<PluginFailure>,
    },
    /// The network name, container ID or interface name is invalid.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidAttachment {
        /// Which of the three.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The list's version does not have this verb (CHECK below 0.4.0).
    #[error("network {network:?}: configuration version \"{version}\" does not support the {verb} command")]
    Unsupported {
        /// The network name.
        network: String,
        /// The list's version.
        version: CniVersion,
        /// The verb refused.
        verb: &'static str,
    },
    /// Reading, writing or listing the result cache failed.
    #[error("network {network:?}: {action} the result cache: {source}")]
    Cache {
        /// The network name.
        network: String,
        /// What the runtime was doing.
        action: &'static str,
        /// The cache's error.
        source: CacheError,
    },
    /// The cached result cannot be used as `prevResult`.
    #[error("network {network:?}: cached result: {source}")]
    CachedResult {
        /// The network name.
        network: String,
        /// Why.
        source: ConvertError,
    },
    /// A plugin does not support the list's version (validation).
    #[error(
        "network {network:?}: plugin #{index} type={plugin:?} does not support config version {asked:?}; it supports {}",
        format_versions(supported)
    )]
    VersionMismatch {
        /// The network name.
        network: String,
        /// The plugin's index in the list.
        index: usize,
        /// The plugin's `type`.
        plugin: String,
        /// The list's version.
        asked: String,
        /// What the plugin's VERSION reported.
        supported: Vec<String>,
    },
    /// Several failures of one verb (DEL and GC keep going).
    #[error("{}", format_multiple(context, errors))]
    Multiple {
        /// The network and verb.
        context: String,
        /// Every failure, in the order they happened.
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
