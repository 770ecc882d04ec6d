//! A libcni-compatible CNI runtime and the conformance suite built on it.
//! Runtime half: `conflist` (load/validate), `exec` (run plugin processes),
//! `cache` (libcni-compatible result cache), `runtime` (ADD/CHECK/DEL/GC/STATUS
//! semantics), `cli` (the `cni-conformance` command line).

pub mod conflist;
