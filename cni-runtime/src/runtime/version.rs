//! VERSION-based validation: which versions a plugin binary reports, and
//! libcni's ValidateNetworkList (every plugin exists and supports the list's
//! version), which also collects the capabilities the list enables.

use cni::{CniVersion, Command};
use serde_json::Value;

use super::{PluginFailure, PluginRef, Runtime, RuntimeError};
use crate::conflist::NetworkConfigList;
use crate::exec::truncate;

impl Runtime {
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
}
