//! A libcni-compatible CNI runtime and the conformance suite built on it.
//!
//! Runtime half (what the suite and the CLI build on):
//! - [`conflist`]: `parse_conflist(bytes, Option<&Path>)`, `load_file(path)`,
//!   `load_network(dir, name)` (lexicographic first of *.conflist/*.conf/*.json
//!   with that name), `load_dir(dir)`, `scan_dir(dir)` →
//!   [`conflist::NetworkConfigList`] `{ name, cni_version, disable_check,
//!   disable_gc, plugins: Vec<Map>, bytes, source }`; errors
//!   ([`conflist::ConfError`]) name file, plugin index and field.
//! - [`runtime`]: [`runtime::Runtime`] — `new(plugin_dirs)`,
//!   `with_cache_dir(dir)`, `with_timeout(d)` / `without_timeout()` (default
//!   60 s), `with_exec_netns(path)`, `with_exec(Arc<dyn PluginExec>)`;
//!   `add_network_list(&list, &RuntimeConf) -> Result<AddResult>`,
//!   `check_network_list`, `del_network_list`, `gc_network_list(&list,
//!   &[Attachment])`, `status_network_list(&list)`,
//!   `validate_network_list(&list) -> Result<Vec<String> /*capabilities*/>`,
//!   `version_info(type) -> Result<Vec<String>>`. [`runtime::RuntimeConf`]
//!   `{ container_id, netns, ifname, args, capability_args }`;
//!   [`runtime::AddResult`] `{ raw, result, version }`;
//!   [`runtime::RuntimeError`] (`cni_error()`, `plugin()`, `all()`). Pure
//!   stdin builders: `plugin_stdin`, `gc_stdin`, `status_stdin`.
//! - [`cache`]: [`cache::ResultCache`] (libcni `cniCacheV1` files).
//! - [`exec`]: the [`exec::PluginExec`] seam and [`exec::ProcessExec`].
//! - [`cli`]: the `cni-conformance` command line (`cli::main`).

pub mod cache;
pub mod cli;
pub mod conflist;
pub mod exec;
pub mod runtime;

// Suite half (owned by the suite helper): traffic tools, world building, reports.
pub mod bench;
pub mod demo;
pub mod report;
pub mod scenarios;
pub mod throughput;
pub mod tools;
pub mod topology;
