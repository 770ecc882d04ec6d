//! The cnitool-compatible verbs: each is one `cni-runtime` call on the
//! network (by name from NETCONFPATH, or a file) and the attachment built
//! from cnitool's environment (its container ID, CNI_ARGS and CAP_ARGS
//! parsing, Go's filepath.Abs for the netns path). Prints JSON as cnitool
//! does.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cni::types::Attachment;
use cni_runtime::{
    load_file, load_network, NetworkConfigList, ProcessExec, Runtime, RuntimeConf, EXTENSIONS,
};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use super::{AttachArgs, CliError, RuntimeOpts};

/// A cnitool argument or environment variable that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// The working directory (to make the netns path absolute) is unknown.
    #[error("working directory: {0}")]
    WorkingDir(std::io::Error),
    /// CNI_ARGS is not `K=V;K=V`.
    #[error("invalid CNI_ARGS pair {0:?} (want KEY=VALUE;KEY=VALUE)")]
    CniArgs(String),
    /// CAP_ARGS is not a JSON object.
    #[error("CAP_ARGS: must be a JSON object")]
    CapArgsNotObject,
    /// CAP_ARGS is not JSON.
    #[error("CAP_ARGS: not valid JSON: {0}")]
    CapArgsJson(serde_json::Error),
    /// `--valid` is not `CONTAINERID:IFNAME`.
    #[error("--valid {0:?}: want CONTAINERID:IFNAME")]
    Valid(String),
}

/// `add`: ADD the network's plugins in order; prints the result.
pub(super) fn add(a: &AttachArgs) -> Result<Option<String>, CliError> {
    let (rt, list, conf) = attach(a)?;
    let out = rt.add_network_list(&list, &conf)?;
    Ok(Some(cni::error::to_indented(&out.raw)))
}

/// `check`: CHECK with the cached result; prints nothing.
pub(super) fn check(a: &AttachArgs) -> Result<Option<String>, CliError> {
    let (rt, list, conf) = attach(a)?;
    rt.check_network_list(&list, &conf)?;
    Ok(None)
}

/// `del`: DEL in reverse order; prints nothing.
pub(super) fn del(a: &AttachArgs) -> Result<Option<String>, CliError> {
    let (rt, list, conf) = attach(a)?;
    rt.del_network_list(&list, &conf)?;
    Ok(None)
}

/// `gc`: GC keeping the `--valid` attachments.
pub(super) fn gc(
    network: &str,
    valid: &[String],
    opts: &RuntimeOpts,
) -> Result<Option<String>, CliError> {
    let valid = valid
        .iter()
        .map(|v| parse_attachment(v))
        .collect::<Result<Vec<_>, _>>()?;
    let list = network_list(network, opts)?;
    runtime_of(opts).gc_network_list(&list, &valid)?;
    Ok(None)
}

/// `status`: STATUS to every plugin.
pub(super) fn status(network: &str, opts: &RuntimeOpts) -> Result<Option<String>, CliError> {
    let list = network_list(network, opts)?;
    runtime_of(opts).status_network_list(&list)?;
    Ok(None)
}

/// `validate`: every plugin exists and supports the version; prints the
/// network's summary with its capabilities.
pub(super) fn validate(network: &str, opts: &RuntimeOpts) -> Result<Option<String>, CliError> {
    let list = network_list(network, opts)?;
    let caps = runtime_of(opts).validate_network_list(&list)?;
    let out = json!({
        "name": list.name,
        "cniVersion": list.cni_version.as_str(),
        "plugins": list.plugin_types(),
        "capabilities": caps,
        "source": list.source.as_ref().map(|p| p.display().to_string()),
    });
    Ok(Some(cni::error::to_indented(&out)))
}

/// `version`: the versions a plugin reports.
pub(super) fn version(plugin: &str, opts: &RuntimeOpts) -> Result<Option<String>, CliError> {
    let versions = runtime_of(opts).version_info(plugin)?;
    Ok(Some(cni::error::to_indented(
        &json!({"plugin": plugin, "supportedVersions": versions}),
    )))
}

fn runtime_of(opts: &RuntimeOpts) -> Runtime {
    let dirs: Vec<PathBuf> = std::env::split_paths(&opts.cni_path)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    let mut rt = Runtime::new(dirs)
        .with_cache_dir(opts.cache_dir.clone())
        .with_exec(Arc::new(ProcessExec {
            forward_stderr: true,
        }));
    rt = if opts.timeout > 0.0 && opts.timeout.is_finite() {
        rt.with_timeout(Duration::from_secs_f64(opts.timeout))
    } else {
        rt.without_timeout()
    };
    if let Some(ns) = &opts.exec_netns {
        rt = rt.with_exec_netns(ns.clone());
    }
    rt
}

/// A network by name from NETCONFPATH, or a conflist file given by path.
fn network_list(network: &str, opts: &RuntimeOpts) -> Result<NetworkConfigList, CliError> {
    let as_path = Path::new(network);
    let looks_like_file = network.contains('/')
        || EXTENSIONS
            .iter()
            .any(|e| network.ends_with(&format!(".{e}")));
    if looks_like_file && as_path.is_file() {
        return Ok(load_file(as_path)?);
    }
    Ok(load_network(&opts.netconfpath, network)?)
}

fn attach(a: &AttachArgs) -> Result<(Runtime, NetworkConfigList, RuntimeConf), CliError> {
    let list = network_list(&a.network, &a.runtime)?;
    let netns = absolute(&a.netns)?;
    let container_id = match a.container_id.as_deref() {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => cnitool_container_id(&netns),
    };
    let args = match a.cni_args.as_deref() {
        None | Some("") => Vec::new(),
        Some(s) => parse_cni_args(s)?,
    };
    let capability_args = match a.cap_args.as_deref() {
        None | Some("") => Map::new(),
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(ArgsError::CapArgsNotObject.into()),
            Err(e) => return Err(ArgsError::CapArgsJson(e).into()),
        },
    };
    let conf = RuntimeConf {
        container_id,
        netns,
        ifname: a.ifname.clone(),
        args,
        capability_args,
    };
    Ok((runtime_of(&a.runtime), list, conf))
}

/// cnitool's container ID: `cnitool-` + hex of the first 10 bytes of the
/// SHA-512 of the absolute netns path.
pub fn cnitool_container_id(netns: &Path) -> String {
    let digest = Sha512::digest(netns.as_os_str().as_encoded_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}

/// Go's filepath.Abs: joined with the working directory and cleaned
/// lexically (symlinks are not resolved).
pub fn absolute(path: &Path) -> Result<PathBuf, ArgsError> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(ArgsError::WorkingDir)?
            .join(path)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// cnitool's CNI_ARGS parsing: `K=V` pairs separated by `;`, both non-empty.
pub fn parse_cni_args(s: &str) -> Result<Vec<(String, String)>, ArgsError> {
    s.split(';')
        .map(|pair| {
            let mut kv = pair.split('=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(v), None) if !k.is_empty() && !v.is_empty() => {
                    Ok((k.to_string(), v.to_string()))
                }
                _ => Err(ArgsError::CniArgs(pair.to_string())),
            }
        })
        .collect()
}

pub(super) fn parse_attachment(s: &str) -> Result<Attachment, ArgsError> {
    match s.split_once(':') {
        Some((id, ifname)) if !id.is_empty() && !ifname.is_empty() => Ok(Attachment {
            container_id: id.to_string(),
            ifname: ifname.to_string(),
        }),
        _ => Err(ArgsError::Valid(s.to_string())),
    }
}
