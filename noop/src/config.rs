//! The noop plugin's own configuration fields and where its debug file is
//! named. Pure: parses stdin bytes and the raw `CNI_ARGS` string; never
//! opens a file.

use std::path::PathBuf;

use cni::args::CniArgs;
use cni::CniError;
use serde::Deserialize;
use serde_json::Value;

/// Validated noop configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoopConfig {
    /// `debugFile`: the test-double debug file (CNI_ARGS `DEBUG=` wins).
    pub debug_file: Option<PathBuf>,
    /// `commandLog`: a JSON array file every invocation is appended to.
    pub command_log: Option<PathBuf>,
    /// `bridgeNfCallIptables`: make sure bridged traffic traverses
    /// iptables/ip6tables (what kubelet's no-op network plugin did).
    pub bridge_nf_call_iptables: bool,
}

fn invalid(field: &str, want: &str, got: &Value) -> CniError {
    CniError::invalid_config(format!("noop: {field} must be {want}, got {got}"))
}

/// noop's own stdin fields, matched as Go matches keys ([`cni::gojson`]);
/// kept as `Value` so a wrong type is a message naming the field.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    #[serde(default)]
    debug_file: Option<Value>,
    #[serde(default)]
    command_log: Option<Value>,
    #[serde(default)]
    bridge_nf_call_iptables: Option<Value>,
}

fn opt_path(v: Option<Value>, field: &str) -> Result<Option<PathBuf>, CniError> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(PathBuf::from(s))),
        Some(other) => Err(invalid(field, "a file path string", &other)),
    }
}

impl NoopConfig {
    /// Reads the noop fields from the plugin's stdin (skel has already
    /// checked it is a JSON object with a name and a supported version).
    pub fn parse(stdin: &[u8]) -> Result<NoopConfig, CniError> {
        let raw: RawConf = cni::gojson::from_slice(stdin)
            .map_err(|e| CniError::invalid_config(format!("noop: configuration: {e}")))?;
        let bridge_nf_call_iptables = match raw.bridge_nf_call_iptables {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(other) => return Err(invalid("bridgeNfCallIptables", "a boolean", &other)),
        };
        Ok(NoopConfig {
            debug_file: opt_path(raw.debug_file, "debugFile")?,
            command_log: opt_path(raw.command_log, "commandLog")?,
            bridge_nf_call_iptables,
        })
    }

    /// The debug file for this invocation: `DEBUG=<path>` in CNI_ARGS, else
    /// `debugFile`. `None` means production (pass-through) mode. A malformed
    /// CNI_ARGS is an error (code 4) because DEBUG cannot be read from it.
    pub fn debug_path(&self, cni_args: &str) -> Result<Option<PathBuf>, CniError> {
        let args = CniArgs::parse(cni_args)?;
        match args.get("DEBUG") {
            Some("") => Err(CniError::invalid_env(
                "noop: CNI_ARGS DEBUG is empty; it must name the debug file",
            )),
            Some(path) => Ok(Some(PathBuf::from(path))),
            None => Ok(self.debug_file.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_rejects_wrong_types() {
        let c = NoopConfig::parse(
            br#"{"name":"n","debugFile":"/tmp/d.json","commandLog":"/tmp/log.json","bridgeNfCallIptables":true}"#,
        )
        .unwrap();
        assert_eq!(c.debug_file, Some(PathBuf::from("/tmp/d.json")));
        assert_eq!(c.command_log, Some(PathBuf::from("/tmp/log.json")));
        assert!(c.bridge_nf_call_iptables);
        assert_eq!(
            NoopConfig::parse(br#"{"name":"n"}"#).unwrap(),
            NoopConfig::default()
        );
        for (bad, field) in [
            (r#"{"bridgeNfCallIptables":"yes"}"#, "bridgeNfCallIptables"),
            (r#"{"debugFile":3}"#, "debugFile"),
            (r#"{"commandLog":[]}"#, "commandLog"),
        ] {
            let e = NoopConfig::parse(bad.as_bytes()).unwrap_err();
            assert_eq!(e.code, cni::ErrorCode::InvalidNetworkConfig);
            assert!(e.msg.contains(field), "{e}");
        }
    }

    #[test]
    fn every_field_is_read_in_go_and_mixed_casing() {
        let want = NoopConfig::parse(
            br#"{"debugFile":"/tmp/d.json","commandLog":"/tmp/l.json","bridgeNfCallIptables":true}"#,
        )
        .unwrap();
        for text in [
            r#"{"DebugFile":"/tmp/d.json","CommandLog":"/tmp/l.json","BridgeNfCallIptables":true}"#,
            r#"{"DEBUGFILE":"/tmp/d.json","commandlog":"/tmp/l.json","bRiDgEnFcAlLiPtAbLeS":true}"#,
        ] {
            assert_eq!(NoopConfig::parse(text.as_bytes()).unwrap(), want, "{text}");
        }
        // null is absent.
        assert_eq!(
            NoopConfig::parse(br#"{"debugFile":null,"bridgeNfCallIptables":null}"#).unwrap(),
            NoopConfig::default()
        );
    }

    #[test]
    fn debug_path_prefers_cni_args() {
        let c = NoopConfig {
            debug_file: Some("/conf.json".into()),
            ..Default::default()
        };
        assert_eq!(
            c.debug_path("IgnoreUnknown=1;DEBUG=/args.json").unwrap(),
            Some(PathBuf::from("/args.json"))
        );
        assert_eq!(c.debug_path("").unwrap(), Some(PathBuf::from("/conf.json")));
        assert_eq!(
            NoopConfig::default().debug_path("K8S_POD_NAME=x").unwrap(),
            None
        );
        let e = c.debug_path("DEBUG").unwrap_err();
        assert_eq!(e.code, cni::ErrorCode::InvalidEnvironment);
        assert!(c.debug_path("DEBUG=").is_err());
    }
}
