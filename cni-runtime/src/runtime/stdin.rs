//! The exact stdin each plugin receives (pure, snapshot-tested): the plugin
//! object with the list's `name` and `cniVersion`, `prevResult`, the
//! `runtimeConfig` keys its `capabilities` enable, GC's valid attachments;
//! and the attachment checks libcni makes before any verb.

use cni::skel::valid_identifier;
use cni::types::Attachment;
use serde_json::{Map, Value};

use super::RuntimeError;
use crate::conflist::NetworkConfigList;

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
