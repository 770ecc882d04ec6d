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

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cni::skel::valid_identifier;
use cni::types::Attachment;
use cni::{CniError, CniResult, CniVersion, Command, ErrorCode};
use serde_json::{Map, Value};

use crate::cache::{CacheEntry, CacheError, ResultCache};
use crate::conflist::NetworkConfigList;
use crate::exec::{
    truncate, ExecError, ExecOutput, ExecRequest, NotFound, PluginExec, ProcessExec,
};

/// How long a plugin may run before it is killed (CRI-O uses 60 s too).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The per-attachment arguments of ADD, CHECK and DEL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    pub container_id: String,
    /// `CNI_NETNS`; may be empty for DEL.
    pub netns: PathBuf,
    pub ifname: String,
    /// `CNI_ARGS` pairs, in order.
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, `bandwidth`, `mac`, `ips`, …);
    /// each plugin gets only those its `capabilities` enable.
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
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
    pub raw: Value,
    pub result: CniResult,
    pub version: CniVersion,
}

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
    #[error("network {network:?}: cached result: {msg}")]
    CachedResult { network: String, msg: String },
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

    fn join(context: String, mut errors: Vec<RuntimeError>) -> Result<(), RuntimeError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(RuntimeError::Multiple { context, errors }),
        }
    }
}

/// The stdin of plugin `index` for ADD, CHECK or DEL: the plugin object with
/// `name` and `cniVersion` of the list, `prevResult` when given, and
/// `runtimeConfig` holding the capability args this plugin enables (only
/// when there is at least one). Keys come out sorted, as libcni's do.
pub fn plugin_stdin(
    list: &NetworkConfigList,
    index: usize,
    prev_result: Option<&Value>,
    capability_args: &Map<String, Value>,
) -> Vec<u8> {
    let mut conf = base_config(list, index);
    if let Some(prev) = prev_result {
        conf.insert("prevResult".into(), prev.clone());
    }
    let mut rc = Map::new();
    if let Some(Value::Object(caps)) = list.plugins.get(index).and_then(|p| p.get("capabilities")) {
        for (cap, enabled) in caps {
            if enabled.as_bool() == Some(true) {
                if let Some(arg) = capability_args.get(cap) {
                    rc.insert(cap.clone(), arg.clone());
                }
            }
        }
    }
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    to_bytes(conf)
}

/// The stdin of plugin `index` for GC: `name`, `cniVersion`, and the valid
/// attachments under both `cni.dev/valid-attachments` and the legacy
/// `cni.dev/attachments`.
pub fn gc_stdin(list: &NetworkConfigList, index: usize, valid: &[Attachment]) -> Vec<u8> {
    let mut conf = base_config(list, index);
    let attachments = serde_json::to_value(valid).unwrap_or(Value::Array(Vec::new()));
    conf.insert("cni.dev/valid-attachments".into(), attachments.clone());
    conf.insert("cni.dev/attachments".into(), attachments);
    to_bytes(conf)
}

/// The stdin of plugin `index` for STATUS: `name` and `cniVersion` injected.
pub fn status_stdin(list: &NetworkConfigList, index: usize) -> Vec<u8> {
    to_bytes(base_config(list, index))
}

fn base_config(list: &NetworkConfigList, index: usize) -> Map<String, Value> {
    let mut conf = list.plugins.get(index).cloned().unwrap_or_default();
    conf.insert("name".into(), list.name.clone().into());
    conf.insert("cniVersion".into(), list.cni_version.as_str().into());
    conf
}

fn to_bytes(conf: Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(&Value::Object(conf)).unwrap_or_default()
}

/// Checks container ID and interface name the way libcni does before ADD
/// (they also name the cache file, so every verb checks them).
pub fn validate_attachment(
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<(), RuntimeError> {
    let bad = |field, value: &str, reason: &str| {
        Err(RuntimeError::InvalidAttachment {
            field,
            value: value.into(),
            reason: reason.into(),
        })
    };
    if network.is_empty() {
        return bad("network name", network, "must not be empty");
    }
    if !valid_identifier(network) {
        return bad(
            "network name",
            network,
            "allowed: letters, digits, '_', '.', '-' (first a letter or digit)",
        );
    }
    if container_id.is_empty() {
        return bad("container ID", container_id, "must not be empty");
    }
    if !valid_identifier(container_id) {
        return bad(
            "container ID",
            container_id,
            "allowed: letters, digits, '_', '.', '-' (first a letter or digit)",
        );
    }
    if ifname.is_empty() {
        return bad("interface name", ifname, "must not be empty");
    }
    if ifname.len() > 15 {
        return bad("interface name", ifname, "longer than 15 bytes");
    }
    if ifname == "." || ifname == ".." {
        return bad("interface name", ifname, "must not be . or ..");
    }
    if ifname
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return bad(
            "interface name",
            ifname,
            "must not contain '/', ':' or whitespace",
        );
    }
    Ok(())
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

    /// Run every plugin process inside this netns (setns before exec), so a
    /// throwaway "host" netns stands in for the real host.
    pub fn with_exec_netns(mut self, netns: PathBuf) -> Runtime {
        self.exec_netns = Some(netns);
        self
    }

    /// Use another way of running plugins.
    pub fn with_exec(mut self, exec: Arc<dyn PluginExec>) -> Runtime {
        self.exec = exec;
        self
    }

    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }

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

    /// libcni's ValidateNetworkList: every plugin exists and its VERSION
    /// lists the configuration's version. Returns the enabled capabilities
    /// (sorted, deduplicated); otherwise every problem found.
    pub fn validate_network_list(
        &self,
        list: &NetworkConfigList,
    ) -> Result<Vec<String>, RuntimeError> {
        let mut errors = Vec::new();
        let mut caps = std::collections::BTreeSet::new();
        let asked = list.cni_version.as_str();
        for index in 0..list.plugins.len() {
            let at = self.at(list, index, Command::Version);
            match self.version_of(&at) {
                Ok(supported) if supported.iter().any(|v| v == asked) => {}
                Ok(supported) => errors.push(RuntimeError::VersionMismatch {
                    network: list.name.clone(),
                    index,
                    plugin: at.plugin.clone(),
                    asked: asked.to_string(),
                    supported,
                }),
                Err(e) => errors.push(e),
            }
            if let Some(Value::Object(c)) = list.plugins[index].get("capabilities") {
                caps.extend(
                    c.iter()
                        .filter(|(_, on)| on.as_bool() == Some(true))
                        .map(|(k, _)| k.clone()),
                );
            }
        }
        RuntimeError::join(format!("network {:?}: validation", list.name), errors)?;
        Ok(caps.into_iter().collect())
    }

    /// The versions a plugin binary reports (VERSION). A plugin that does not
    /// know VERSION is taken to support only 0.1.0, as libcni does.
    pub fn version_info(&self, plugin_type: &str) -> Result<Vec<String>, RuntimeError> {
        self.version_of(&PluginRef {
            network: String::new(),
            index: 0,
            plugin: plugin_type.to_string(),
            verb: Command::Version,
        })
    }

    fn version_of(&self, at: &PluginRef) -> Result<Vec<String>, RuntimeError> {
        let stdin = format!(r#"{{"cniVersion":"{}"}}"#, CniVersion::CURRENT);
        let out = match self.invoke(at, None, stdin.as_bytes()) {
            Ok(out) => out,
            Err(e)
                if e.cni_error()
                    .is_some_and(|c| c.msg == "unknown CNI_COMMAND: VERSION") =>
            {
                return Ok(vec!["0.1.0".into()])
            }
            Err(e) => return Err(e),
        };
        let bad = |reason: &str| RuntimeError::Plugin {
            at: at.clone(),
            failure: Box::new(PluginFailure::BadResult {
                reason: reason.into(),
                stdout: truncate(&String::from_utf8_lossy(&out.stdout), 400),
            }),
        };
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|_| bad("not JSON"))?;
        match v.get("supportedVersions") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("supportedVersions holds a non-string"))
                })
                .collect(),
            None if v.get("cniVersion").is_some() => Ok(vec!["0.1.0".into()]),
            _ => Err(bad("no supportedVersions")),
        }
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
            .map_err(|msg| RuntimeError::CachedResult {
                network: list.name.clone(),
                msg,
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

/// A cached result in `version`'s layout: unchanged when it already is.
pub fn convert_result(raw: &Value, version: CniVersion) -> Result<Value, String> {
    let (result, from) = CniResult::from_value(raw, version).map_err(|e| e.to_string())?;
    if from == version {
        return Ok(raw.clone());
    }
    result.to_value(version).map_err(|e| {
        format!("failed to convert cached result version {from} to config version {version}: {e}")
    })
}

/// Parses an ADD result; a result without `cniVersion` is labelled with the
/// configuration's version (libcni's fixupResultVersion).
fn parse_result(stdout: &[u8], version: CniVersion) -> Result<Value, PluginFailure> {
    let text = String::from_utf8_lossy(stdout);
    let bad = |reason: String| PluginFailure::BadResult {
        reason,
        stdout: truncate(&text, 400),
    };
    if text.trim().is_empty() {
        return Err(bad("no output".into()));
    }
    let mut value: Value =
        serde_json::from_slice(stdout).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Some(obj) = value.as_object_mut() else {
        return Err(bad("not a JSON object".into()));
    };
    let labelled = obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !labelled {
        obj.insert("cniVersion".into(), version.as_str().into());
    }
    CniResult::from_value(&value, version).map_err(|e| bad(e.to_string()))?;
    Ok(value)
}

/// Interprets a failed process: the last spec error object on stdout (a Go
/// plugin can print its result and then an error), or why there is none.
fn failure_of(out: &ExecOutput) -> PluginFailure {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let (Some(code), None) = (out.exit_code, out.signal) else {
        return PluginFailure::Signal {
            signal: out.signal.unwrap_or(0),
            stderr,
        };
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.trim().is_empty() {
        return PluginFailure::NoErrorJson { code, stderr };
    }
    let mut last = None;
    for item in serde_json::Deserializer::from_slice(&out.stdout).into_iter::<Value>() {
        match item {
            Ok(v) => {
                if let Some(e) = as_cni_error(&v) {
                    last = Some(e);
                }
            }
            Err(_) => {
                last = None;
                break;
            }
        }
    }
    match last {
        Some(e) => PluginFailure::Error(e),
        None => PluginFailure::Garbage {
            code,
            stdout: truncate(stdout.trim(), 400),
            stderr,
        },
    }
}

fn as_cni_error(v: &Value) -> Option<CniError> {
    let obj = v.as_object()?;
    let code = obj.get("code").and_then(Value::as_u64);
    let msg = obj.get("msg").and_then(Value::as_str);
    if code.is_none() && msg.is_none() {
        return None;
    }
    let code = u32::try_from(code.unwrap_or(0)).unwrap_or(0);
    Some(
        CniError::new(ErrorCode::from_u32(code), msg.unwrap_or_default()).with_details(
            obj.get("details")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        ),
    )
}

#[cfg(test)]
mod tests;
