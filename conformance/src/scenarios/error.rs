//! The one error type of the suite's checks ([`CheckError`]): why a check
//! failed or a world could not be built, with the object acted on (the
//! pod's verb, the plugin binary, the conflist, the netns) in the message.
//! A failed check's text is the FAIL reason in the report; nothing here
//! decides what a check expects.

use std::path::PathBuf;

use cni_runtime::{ConfError, RuntimeError};

use crate::topology::TopologyError;

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckError {
    /// A runtime verb (ADD, CHECK, DEL, GC, STATUS) on a network failed.
    #[error("{verb}: {source}")]
    Runtime {
        verb: &'static str,
        source: Box<RuntimeError>,
    },
    /// A conflist the suite wrote did not load.
    #[error("conflist {}: {source}", path.display())]
    Conflist {
        path: PathBuf,
        source: Box<ConfError>,
    },
    /// A plugin run directly could not be started, awaited or read.
    #[error("{what} {}: {source}", plugin.display())]
    Exec {
        what: &'static str,
        plugin: PathBuf,
        source: std::io::Error,
    },
    /// A file the suite reads or removes.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// A plugin run directly did not finish in time.
    #[error("{} did not finish within {secs}s", plugin.display())]
    Hung { plugin: PathBuf, secs: u64 },
    /// A throughput measurement could not be made or was out of bounds.
    #[error(transparent)]
    Measure(#[from] crate::throughput::MeasureError),
    /// Building, probing or reading a world's namespaces failed.
    #[error(transparent)]
    World(#[from] TopologyError),
    /// What the kernel, the wire, a plugin or the runtime showed is not what
    /// the check expects (the text says both).
    #[error("{0}")]
    Unexpected(String),
    /// An inner failure, with what was being done when it happened.
    #[error("{what}: {source}")]
    Within {
        what: String,
        source: Box<CheckError>,
    },
}

impl CheckError {
    /// What was seen is not what the check expects.
    pub fn unexpected(what: impl Into<String>) -> CheckError {
        CheckError::Unexpected(what.into())
    }

    /// This failure, with what was being done (`from the host to 10.0.0.1`).
    pub fn within(self, what: impl Into<String>) -> CheckError {
        CheckError::Within {
            what: what.into(),
            source: Box::new(self),
        }
    }

    /// What a runtime verb (`ADD`, `GC`, …) failed with.
    pub fn runtime(verb: &'static str) -> impl FnOnce(RuntimeError) -> CheckError {
        move |source| CheckError::Runtime {
            verb,
            source: Box::new(source),
        }
    }

    /// An I/O failure, with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CheckError {
        let what = what.into();
        move |source| CheckError::Io { what, source }
    }

    /// A world failure, with what was being done.
    pub fn world(what: impl Into<String>) -> impl FnOnce(TopologyError) -> CheckError {
        let what = what.into();
        move |e| CheckError::World(e).within(what)
    }
}

/// What a check or a step of one returns.
pub(crate) type Checked<T> = Result<T, CheckError>;
