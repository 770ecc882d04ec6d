//! A libcni-compatible CNI runtime and the conformance suite built on it.
//! Runtime half: `conflist` (load/validate), `exec` (run plugin processes),
//! `cache` (libcni-compatible result cache), `runtime` (ADD/CHECK/DEL/GC/STATUS
//! semantics), `cli` (the `cni-conformance` command line).

pub mod cache;
pub mod cli;
pub mod conflist;
pub mod exec;
pub mod runtime;

// Suite half (owned by the suite helper): traffic tools, world building, reports.
pub mod report;
pub mod scenarios;
pub mod tools;
pub mod topology;
