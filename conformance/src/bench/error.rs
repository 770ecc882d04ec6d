//! Why one step of a phase failed: an invocation, a filler, a flow, a side's
//! world. Phases record it as the `error` text of their row; only a side's
//! world failing stops the bench ([`super::BenchError::World`]). Every
//! message names what was acted on.

use std::net::SocketAddr;

use crate::topology::TopologyError;

/// One failed step of a bench phase.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A plugin could not be started or measured.
    #[error("{plugin} {verb}: {source}")]
    Invoke {
        plugin: String,
        verb: String,
        source: super::measure::MeasureError,
    },
    /// A plugin exited non-zero; `output` is its stdout (or stderr) on one line.
    #[error("{plugin} {verb}: exit {code:?}: {output}")]
    Exit {
        plugin: String,
        verb: String,
        code: Option<i32>,
        output: String,
    },
    /// A netns, link or tool process of the world could not be made or run.
    #[error("{what}: {source}")]
    Topology { what: String, source: TopologyError },
    /// The calling thread could not enter a netns.
    #[error("entering the netns of {what}: {source}")]
    Netns {
        what: String,
        source: cni::netns::NetnsError,
    },
    /// A conflist could not be encoded or a plugin result decoded.
    #[error("{what}: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    /// The runtime library rejected a conflist.
    #[error("{what}: {source}")]
    Conflist {
        what: String,
        source: Box<cni_runtime::ConfError>,
    },
    /// A chain ADD or DEL through the runtime library failed.
    #[error("{what}: {source}")]
    Chain {
        what: String,
        source: Box<cni_runtime::RuntimeError>,
    },
    /// A TBF counter could not be opened or read.
    #[error("{what}: {source}")]
    Counter {
        what: String,
        source: crate::throughput::MeasureError,
    },
    /// An ADD result lacks a device the step needs.
    #[error("no {device} in the ADD result {result}")]
    NoDevice {
        device: &'static str,
        result: String,
    },
    /// The node address constant does not parse.
    #[error("node address {addr}: {source}")]
    NodeAddress {
        addr: &'static str,
        source: std::net::AddrParseError,
    },
    /// Not one TCP request through a hostPort got its reply.
    #[error("no connection to {to} went through ({failed} failed)")]
    NoConnection { to: SocketAddr, failed: u32 },
    /// Filler pods could not be installed; `first` is the first failure.
    #[error("{failed} of {of} fillers failed, first: pod {pod}: {first}")]
    Fillers {
        failed: usize,
        of: usize,
        pod: usize,
        first: Box<StepError>,
    },
}

impl StepError {
    pub fn topology(what: impl Into<String>, source: TopologyError) -> StepError {
        StepError::Topology {
            what: what.into(),
            source,
        }
    }

    pub fn netns(what: impl Into<String>, source: cni::netns::NetnsError) -> StepError {
        StepError::Netns {
            what: what.into(),
            source,
        }
    }

    pub fn json(what: impl Into<String>, source: serde_json::Error) -> StepError {
        StepError::Json {
            what: what.into(),
            source,
        }
    }

    pub fn conflist(what: impl Into<String>, source: cni_runtime::ConfError) -> StepError {
        StepError::Conflist {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub fn chain(what: impl Into<String>, source: cni_runtime::RuntimeError) -> StepError {
        StepError::Chain {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub fn counter(what: impl Into<String>, source: crate::throughput::MeasureError) -> StepError {
        StepError::Counter {
            what: what.into(),
            source,
        }
    }
}
