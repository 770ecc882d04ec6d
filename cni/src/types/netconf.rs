//! The fields every plugin's configuration shares. Plugins parse their own
//! fields from the same stdin bytes; this type only carries the common ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::gojson;

/// Common network configuration (one plugin's stdin).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetConf {
    #[serde(rename = "cniVersion", default)]
    /// `cniVersion` as written.
    pub cni_version: String,
    #[serde(default)]
    /// The network's `name`.
    pub name: String,
    #[serde(rename = "type", default)]
    /// `type`: the plugin binary's name.
    pub plugin_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    /// `capabilities` the plugin declares.
    pub capabilities: BTreeMap<String, bool>,
    #[serde(
        rename = "runtimeConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    /// `runtimeConfig`: the capability arguments the runtime passes.
    pub runtime_config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `args`: the conventional extra arguments.
    pub args: Option<Value>,
    #[serde(
        rename = "prevResult",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    /// `prevResult`: the previous plugin's result in a chain.
    pub prev_result: Option<Value>,
    /// GC only: the attachments the runtime still considers valid.
    #[serde(
        rename = "cni.dev/valid-attachments",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The pre-1.1.0-final name of `cni.dev/valid-attachments`.
    #[serde(
        rename = "cni.dev/attachments",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub legacy_attachments: Option<Vec<Attachment>>,
}

impl NetConf {
    /// `args.cni.<key>` (the `args` convention of CONVENTIONS.md: runtimes
    /// put per-attachment values such as `ips`, `labels` or `mac` there).
    /// `None` when `args`, `args.cni` or the key is absent or not an object.
    /// Keys match as Go's `encoding/json` matches them ([`gojson::get`]).
    pub fn args_cni(&self, key: &str) -> Option<&Value> {
        let cni = gojson::get(self.args.as_ref()?.as_object()?, "cni")?;
        gojson::get(cni.as_object()?, key)
    }

    /// The valid attachments a GC request carries (either spelling).
    pub fn gc_attachments(&self) -> Vec<Attachment> {
        self.valid_attachments
            .clone()
            .or_else(|| self.legacy_attachments.clone())
            .unwrap_or_default()
    }
}

/// One attachment of a container to a network: what GC keeps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    /// The attachment's container ID.
    pub container_id: String,
    /// The attachment's interface name.
    pub ifname: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_args_cni_keys() {
        let conf: NetConf = serde_json::from_str(
            r#"{"name":"n","args":{"cni":{"mac":"c2:11:22:33:44:55","ips":["10.0.0.2/24"]},"other":1}}"#,
        )
        .unwrap();
        assert_eq!(
            conf.args_cni("mac"),
            Some(&Value::from("c2:11:22:33:44:55"))
        );
        assert!(conf.args_cni("ips").unwrap().is_array());
        assert_eq!(conf.args_cni("labels"), None);
        let go: NetConf = gojson::from_str(
            r#"{"Name":"n","Args":{"CNI":{"MAC":"c2:11:22:33:44:55","mac":null}}}"#,
        )
        .unwrap();
        assert_eq!(go.args_cni("mac"), Some(&Value::from("c2:11:22:33:44:55")));
        let no_cni: NetConf = serde_json::from_str(r#"{"name":"n","args":{"cni":5}}"#).unwrap();
        assert_eq!(no_cni.args_cni("mac"), None);
        assert_eq!(NetConf::default().args_cni("mac"), None);
    }

    #[test]
    fn gc_attachments_accept_both_spellings() {
        let new: NetConf = serde_json::from_str(
            r#"{"name":"n","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#,
        )
        .unwrap();
        let old: NetConf = serde_json::from_str(
            r#"{"name":"n","cni.dev/attachments":[{"containerID":"c1","ifname":"eth0"}]}"#,
        )
        .unwrap();
        let want = vec![Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        }];
        assert_eq!(new.gc_attachments(), want);
        assert_eq!(old.gc_attachments(), want);
        assert!(NetConf::default().gc_attachments().is_empty());
    }
}
