//! Turning plugin output into results or errors: an ADD result labelled with
//! the configuration's version, a failed process's last spec error (or why
//! there is none), and a cached result converted to the list's version.

use cni::{CniError, CniResult, CniVersion, ErrorCode};
use serde_json::Value;

use super::PluginFailure;
use crate::exec::{truncate, ExecOutput};

/// Why a cached result cannot be given to a plugin as `prevResult`.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The cached result is not a valid result of any version.
    #[error("{0}")]
    Invalid(CniError),
    /// It is valid but cannot be expressed in the list's version.
    #[error("failed to convert cached result version {from} to config version {to}: {source}")]
    Convert {
        /// The version the cached result is in.
        from: CniVersion,
        /// The configuration's version.
        to: CniVersion,
        /// Why the conversion failed.
        source: CniError,
    },
}

/// A cached result in `version`'s layout: unchanged when it already is.
pub(crate) fn convert_result(raw: &Value, version: CniVersion) -> Result<Value, ConvertError> {
    let (result, from) = CniResult::from_value(raw, version).map_err(ConvertError::Invalid)?;
    if from == version {
        return Ok(raw.clone());
    }
    result
        .to_value(version)
        .map_err(|source| ConvertError::Convert {
            from,
            to: version,
            source,
        })
}

/// Parses an ADD result; a result without `cniVersion` is labelled with the
/// configuration's version (libcni's fixupResultVersion).
pub(crate) fn parse_result(stdout: &[u8], version: CniVersion) -> Result<Value, PluginFailure> {
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
pub(crate) fn failure_of(out: &ExecOutput) -> PluginFailure {
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
