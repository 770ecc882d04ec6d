//! The conformance harness on top of [`cni_runtime`]: the `cni-conformance`
//! command line (cnitool-compatible verbs plus `run`, `bench`, `demo`), the
//! scenario suite that runs whole conflists in throwaway network namespaces
//! and checks the kernel and real traffic, the benchmark and the demo.
//!
//! - [`cli`]: the `cni-conformance` command line (`cli::main`).
//! - [`scenarios`]: the suite (`run_suite`), reported through [`report`].
//! - [`bench`], [`demo`]: latency measurements and the narrated demo.
//! - [`topology`], [`tools`]: world building and the traffic tools the suite
//!   runs inside namespaces.

pub mod bench;
pub mod cli;
pub mod demo;
pub mod report;
pub mod scenarios;
pub mod tools;
pub mod topology;
