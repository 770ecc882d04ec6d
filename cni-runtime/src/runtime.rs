//! libcni semantics over a network configuration list: the per-plugin stdin
//! (name, cniVersion, prevResult, runtimeConfig filtered by capabilities, GC's
//! valid attachments), ADD in order, CHECK in order with the cached result,
//! DEL in reverse with the cached result, GC (stale cached attachments
//! deleted, then GC to every plugin), STATUS, VERSION-based validation, and
//! turning plugin output into results or clear errors naming plugin and verb.
//! Processes are run only through [`PluginExec`]; the cache only through
//! [`ResultCache`]. Builds stdin with pure functions (snapshot-tested).
//!
//! Deliberate differences from libcni: DEL keeps going past a failing plugin
//! and reports every failure (the cache is kept so DEL can be retried) rather
//! than stopping at the first (user-demand R6/R8); plugin processes have a
//! default 60 s timeout (R9).

mod error;
mod output;
mod stdin;
mod version;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cni::types::Attachment;
use cni::{CniResult, CniVersion, Command};
use serde_json::{Map, Value};

use crate::cache::{CacheEntry, ResultCache};
use crate::conflist::NetworkConfigList;
use crate::exec::{truncate, ExecOutput, ExecRequest, PluginExec, ProcessExec};
pub use error::{PluginFailure, PluginRef, RuntimeError};
pub use output::ConvertError;
use output::{convert_result, failure_of, parse_result};
pub use stdin::{gc_stdin, plugin_stdin, status_stdin, validate_attachment};

/// How long a plugin may run before it is killed (CRI-O uses 60 s too).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The per-attachment arguments of ADD, CHECK and DEL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`; may be empty for DEL.
    pub netns: PathBuf,
    /// `CNI_IFNAME`: the interface name inside the container.
    pub ifname: String,
    /// `CNI_ARGS` pairs, in order.
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, `bandwidth`, `mac`, `ips`, …);
    /// each plugin gets only those its `capabilities` enable.
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
    /// An attachment without CNI_ARGS or capability arguments.
    pub fn new(container_id: &str, netns: impl Into<PathBuf>, ifname: &str) -> RuntimeConf {
        RuntimeConf {
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: ifname.into(),
            ..RuntimeConf::default()
        }
    }

    /// `CNI_ARGS` as the environment carries it: `K=V;K=V`.
    pub fn cni_args_string(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// The outcome of ADD: the last plugin's result as printed (raw, lossless),
/// and the same in canonical form with the version it was labelled with.
#[derive(Debug, Clone, PartialEq)]
pub struct AddResult {
    /// The result exactly as the last plugin printed it (what is cached).
    pub raw: Value,
    /// The same, parsed.
    pub result: CniResult,
    /// The version the result is labelled with.
    pub version: CniVersion,
}

/// Runs network configuration lists against plugin binaries.
#[derive(Debug, Clone)]
pub struct Runtime {
    plugin_dirs: Vec<PathBuf>,
    cache: ResultCache,
    timeout: Option<Duration>,
    exec: Arc<dyn PluginExec>,
    exec_netns: Option<PathBuf>,
}

impl Runtime {
    /// Plugins from `plugin_dirs` (first match wins), cache in /var/lib/cni,
    /// real processes, 60 s timeout.
    pub fn new(plugin_dirs: Vec<PathBuf>) -> Runtime {
        Runtime {
            plugin_dirs,
            cache: ResultCache::default(),
            timeout: Some(DEFAULT_TIMEOUT),
            exec: Arc::new(ProcessExec::default()),
            exec_netns: None,
        }
    }

    /// Cache under `dir` (files in `dir/results/`).
    pub fn with_cache_dir(mut self, dir: PathBuf) -> Runtime {
        self.cache = ResultCache::new(dir);
        self
    }

    /// Kill a plugin that runs longer than `t`.
    pub fn with_timeout(mut self, t: Duration) -> Runtime {
        self.timeout = Some(t);
        self
    }

    /// Never kill a slow plugin.
    pub fn without_timeout(mut self) -> Runtime {
        self.timeout = None;
        self
    }

    /// Run every plugin process inside this netns (spawned by a thread that
    /// entered it), so a throwaway "host" netns stands in for the real host.
    pub fn with_exec_netns(mut self, netns: PathBuf) -> Runtime {
        self.exec_netns = Some(netns);
        self
    }

    /// Use another way of running plugins.
    pub fn with_exec(mut self, exec: Arc<dyn PluginExec>) -> Runtime {
        self.exec = exec;
        self
    }

    /// The plugin directories, searched in order.
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }

    /// The result cache this runtime reads and writes.
    pub fn cache(&self) -> &ResultCache {
        &self.cache
    }

    /// ADD every plugin in order, each getting the previous one's result as
    /// `prevResult`; on success the final result is cached. The first failure
    /// stops the chain (nothing cached; the caller should DEL).
    pub fn add_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<AddResult, RuntimeError> {
        validate_attachment(&list.name, &rt.container_id, &rt.ifname)?;
        let mut prev: Option<Value> = None;
        for index in 0..list.plugins.len() {
            let stdin = plugin_stdin(list, index, prev.as_ref(), &rt.capability_args);
            let at = self.at(list, index, Command::Add);
            let out = self.invoke(&at, Some(rt), &stdin)?;
            prev = Some(
                parse_result(&out.stdout, list.cni_version).map_err(|failure| {
                    RuntimeError::Plugin {
                        at: at.clone(),
                        failure: Box::new(failure),
                    }
                })?,
            );
        }
        let raw = prev.unwrap_or_else(|| Value::Object(Map::new()));
        let (result, version) =
            CniResult::from_value(&raw, list.cni_version).map_err(|e| RuntimeError::Plugin {
                at: self.at(list, list.plugins.len().saturating_sub(1), Command::Add),
                failure: Box::new(PluginFailure::BadResult {
                    reason: e.to_string(),
                    stdout: truncate(&raw.to_string(), 400),
                }),
            })?;
        let entry = CacheEntry {
            container_id: rt.container_id.clone(),
            network: list.name.clone(),
            ifname: rt.ifname.clone(),
            config: list.bytes.clone(),
            netns: rt.netns.display().to_string(),
            cni_args: rt.args.clone(),
            capability_args: rt.capability_args.clone(),
            result: Some(raw.clone()),
            legacy: false,
        };
        self.cache
            .write(&entry)
            .map_err(|source| RuntimeError::Cache {
                network: list.name.clone(),
                action: "ADD succeeded but DEL is needed: writing",
                source,
            })?;
        Ok(AddResult {
            raw,
            result,
            version,
        })
    }

    /// CHECK every plugin in order with the cached result as `prevResult`
    /// (none when nothing is cached). Refused below 0.4.0; a no-op with
    /// `disableCheck`. Stops at the first failure.
    pub fn check_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<(), RuntimeError> {
        if !list.cni_version.allows_check() {
            return Err(RuntimeError::Unsupported {
                network: list.name.clone(),
                version: list.cni_version,
                verb: "CHECK",
            });
        }
        if list.disable_check {
            return Ok(());
        }
        validate_attachment(&list.name, &rt.container_id, &rt.ifname)?;
        let prev = self.cached_prev_result(list, rt)?;
        for index in 0..list.plugins.len() {
            let stdin = plugin_stdin(list, index, prev.as_ref(), &rt.capability_args);
            self.invoke(&self.at(list, index, Command::Check), Some(rt), &stdin)?;
        }
        Ok(())
    }

    /// DEL every plugin in reverse order with the cached result as
    /// `prevResult` (from 0.4.0; an unreadable cache means no prevResult).
    /// Keeps going past failures and reports them all; the cache file is
    /// removed only when every plugin succeeded.
    pub fn del_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<(), RuntimeError> {
        validate_attachment(&list.name, &rt.container_id, &rt.ifname)?;
        let prev = if list.cni_version.allows_check() {
            self.cached_prev_result(list, rt).ok().flatten()
        } else {
            None
        };
        let mut errors = Vec::new();
        for index in (0..list.plugins.len()).rev() {
            let stdin = plugin_stdin(list, index, prev.as_ref(), &rt.capability_args);
            if let Err(e) = self.invoke(&self.at(list, index, Command::Del), Some(rt), &stdin) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            // A read-only cache must not make DEL fail forever.
            let _ = self.cache.remove(&list.name, &rt.container_id, &rt.ifname);
        }
        RuntimeError::join(format!("network {:?}: DEL", list.name), errors)
    }

    /// GC: DEL (with the cached netns, CNI_ARGS and capability args) every
    /// cached attachment of this network that is not in `valid`; then, for
    /// 1.1.0 lists, GC to every plugin with the valid attachments. A no-op
    /// with `disableGC`. Keeps going past failures and reports them all.
    pub fn gc_network_list(
        &self,
        list: &NetworkConfigList,
        valid: &[Attachment],
    ) -> Result<(), RuntimeError> {
        if list.disable_gc {
            return Ok(());
        }
        let mut errors = Vec::new();
        let cached = self
            .cache
            .attachments()
            .map_err(|source| RuntimeError::Cache {
                network: list.name.clone(),
                action: "GC: listing",
                source,
            })?;
        for entry in cached.iter().filter(|e| e.network == list.name) {
            let is_valid = valid
                .iter()
                .any(|a| a.container_id == entry.container_id && a.ifname == entry.ifname);
            if is_valid {
                continue;
            }
            let rt = RuntimeConf {
                container_id: entry.container_id.clone(),
                netns: PathBuf::from(&entry.netns),
                ifname: entry.ifname.clone(),
                args: entry.cni_args.clone(),
                capability_args: entry.capability_args.clone(),
            };
            if let Err(e) = self.del_network_list(list, &rt) {
                errors.push(RuntimeError::Multiple {
                    context: format!(
                        "deleting stale attachment {} {}",
                        entry.container_id, entry.ifname
                    ),
                    errors: vec![e],
                });
            }
        }
        if list.cni_version.allows_gc_and_status() {
            for index in 0..list.plugins.len() {
                let stdin = gc_stdin(list, index, valid);
                if let Err(e) = self.invoke(&self.at(list, index, Command::Gc), None, &stdin) {
                    errors.push(e);
                }
            }
        }
        RuntimeError::join(format!("network {:?}: GC", list.name), errors)
    }

    /// STATUS to every plugin in order (1.1.0 lists only; older ones succeed
    /// without asking). The first failure is returned.
    pub fn status_network_list(&self, list: &NetworkConfigList) -> Result<(), RuntimeError> {
        if !list.cni_version.allows_gc_and_status() {
            return Ok(());
        }
        for index in 0..list.plugins.len() {
            let stdin = status_stdin(list, index);
            self.invoke(&self.at(list, index, Command::Status), None, &stdin)?;
        }
        Ok(())
    }

    fn at(&self, list: &NetworkConfigList, index: usize, verb: Command) -> PluginRef {
        PluginRef {
            network: list.name.clone(),
            index,
            plugin: list.plugin_type(index).to_string(),
            verb,
        }
    }

    /// The cached result converted to the list's version; `None` when there
    /// is no cache file. Errors for files that cannot be used.
    fn cached_prev_result(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<Option<Value>, RuntimeError> {
        let entry = self
            .cache
            .read(&list.name, &rt.container_id, &rt.ifname)
            .map_err(|source| RuntimeError::Cache {
                network: list.name.clone(),
                action: "reading",
                source,
            })?;
        let Some(raw) = entry.and_then(|e| e.result) else {
            return Ok(None);
        };
        convert_result(&raw, list.cni_version)
            .map(Some)
            .map_err(|source| RuntimeError::CachedResult {
                network: list.name.clone(),
                source,
            })
    }

    /// Finds and runs one plugin; a non-zero exit becomes a `PluginFailure`.
    fn invoke(
        &self,
        at: &PluginRef,
        rt: Option<&RuntimeConf>,
        stdin: &[u8],
    ) -> Result<ExecOutput, RuntimeError> {
        let fail = |failure| RuntimeError::Plugin {
            at: at.clone(),
            failure: Box::new(failure),
        };
        let path = self
            .exec
            .find(&at.plugin, &self.plugin_dirs)
            .map_err(|e| fail(PluginFailure::NotFound(e)))?;
        let env = self.env(at.verb, rt);
        let out = self
            .exec
            .run(&ExecRequest {
                plugin: &path,
                env: &env,
                stdin,
                timeout: self.timeout,
                netns: self.exec_netns.as_deref(),
            })
            .map_err(|e| fail(PluginFailure::Exec(e)))?;
        if out.success() {
            Ok(out)
        } else {
            Err(fail(failure_of(&out)))
        }
    }

    fn env(&self, verb: Command, rt: Option<&RuntimeConf>) -> Vec<(String, String)> {
        let path = std::env::join_paths(&self.plugin_dirs)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (id, netns, ifname, args) = match (verb, rt) {
            (_, Some(rt)) => (
                rt.container_id.clone(),
                rt.netns.display().to_string(),
                rt.ifname.clone(),
                rt.cni_args_string(),
            ),
            (Command::Version, None) => {
                (String::new(), "dummy".into(), "dummy".into(), String::new())
            }
            (_, None) => Default::default(),
        };
        vec![
            ("CNI_COMMAND".into(), verb.as_str().into()),
            ("CNI_CONTAINERID".into(), id),
            ("CNI_NETNS".into(), netns),
            ("CNI_ARGS".into(), args),
            ("CNI_IFNAME".into(), ifname),
            ("CNI_PATH".into(), path),
        ]
    }
}

#[cfg(test)]
mod tests;
