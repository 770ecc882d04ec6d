//! A libcni-compatible CNI runtime: what a container runtime needs to run a
//! network configuration list against plugin binaries.
//!
//! - Conflists: [`parse_conflist`], [`load_file`], [`load_network`] (the
//!   lexicographic first of `*.conflist`/`*.conf`/`*.json` with that name),
//!   [`load_dir`], [`scan_dir`] → [`NetworkConfigList`]; errors
//!   ([`ConfError`]) name the file, the plugin index and the field.
//! - [`Runtime`]: `add_network_list`, `check_network_list`,
//!   `del_network_list`, `gc_network_list`, `status_network_list`,
//!   `validate_network_list` and `version_info`, with the per-attachment
//!   [`RuntimeConf`]; ADD returns an [`AddResult`], every verb fails with a
//!   [`RuntimeError`] naming network, plugin index, type and verb.
//! - [`ResultCache`]: libcni's `cniCacheV1` result files, readable by
//!   containerd and CRI-O and theirs by us.
//! - [`PluginExec`]: the seam that runs plugin processes ([`ProcessExec`]).
//! - Pure stdin builders ([`plugin_stdin`], [`gc_stdin`], [`status_stdin`]),
//!   the exact bytes each plugin receives.
//!
//! Owns CNI runtime semantics only; knows nothing of the conformance suite
//! built on it (`conformance/`).
#![warn(missing_docs)]

mod cache;
mod conflist;
mod exec;
mod runtime;
#[cfg(test)]
mod test_dir;

pub use cache::{
    config_text, decode, encode, go_base64, CacheEntry, CacheError, ResultCache, DEFAULT_CACHE_DIR,
    KIND_V1,
};
pub use conflist::{
    config_files, load_dir, load_file, load_network, parse_conflist, scan_dir, ConfError,
    NetworkConfigList, EXTENSIONS,
};
pub use exec::{
    find_in_path, truncate, ExecError, ExecOutput, ExecRequest, NotFound, PluginExec, ProcessExec,
};
pub use runtime::{
    gc_stdin, plugin_stdin, status_stdin, validate_attachment, AddResult, ConvertError,
    PluginFailure, PluginRef, Runtime, RuntimeConf, RuntimeError, DEFAULT_TIMEOUT,
};
