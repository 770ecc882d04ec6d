//! The one error type at the plugin boundary: the spec's `{code, msg, details}`
//! with an enum of the spec's codes. Plugins convert their own errors into it
//! in one place; nothing here prints.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::version::CniVersion;

/// Error codes defined by the CNI specification (plus 999, the catch-all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: the requested cniVersion is not supported.
    IncompatibleVersion,
    /// 2: a field of the configuration is not supported.
    UnsupportedField,
    /// 3: the container is unknown or does not exist.
    UnknownContainer,
    /// 4: an environment variable is missing or invalid.
    InvalidEnvironment,
    /// 5: an I/O failure.
    Io,
    /// 6: stdin could not be decoded.
    Decode,
    /// 7: the network configuration is invalid.
    InvalidNetworkConfig,
    /// 11: try again later (a transient condition).
    TryAgainLater,
    /// 50: the plugin is not available (STATUS).
    PluginNotAvailable,
    /// 51: the plugin's connectivity is limited (STATUS).
    LimitedConnectivity,
    /// 999: an internal error.
    Internal,
    /// Any other code (plugin-specific ones are ≥ 100).
    Other(u32),
}

impl ErrorCode {
    /// The spec's numeric code.
    pub fn as_u32(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidNetworkConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::PluginNotAvailable => 50,
            ErrorCode::LimitedConnectivity => 51,
            ErrorCode::Internal => 999,
            ErrorCode::Other(n) => n,
        }
    }

    /// The code for a number; numbers the spec does not name are [`ErrorCode::Other`].
    pub fn from_u32(n: u32) -> ErrorCode {
        match n {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironment,
            5 => ErrorCode::Io,
            6 => ErrorCode::Decode,
            7 => ErrorCode::InvalidNetworkConfig,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::PluginNotAvailable,
            51 => ErrorCode::LimitedConnectivity,
            999 => ErrorCode::Internal,
            n => ErrorCode::Other(n),
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.as_u32())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ErrorCode::from_u32(u32::deserialize(d)?))
    }
}

/// Go's `ErrInvalidNetNS` code (used by skel's own-netns guard).
pub const INVALID_NETNS: u32 = 8;

/// A spec error: what a plugin prints on stdout when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniError {
    /// The spec's error code.
    pub code: ErrorCode,
    /// A short message: what was being done to what, and why it failed.
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    /// Longer details (may be empty).
    pub details: String,
}

impl CniError {
    /// An error with `code` and `msg` and no details.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The same error with `details`.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Code 7: the network configuration is invalid.
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        CniError::new(ErrorCode::InvalidNetworkConfig, msg)
    }

    /// Code 4: an environment variable is missing or malformed.
    pub fn invalid_env(msg: impl Into<String>) -> Self {
        CniError::new(ErrorCode::InvalidEnvironment, msg)
    }

    /// Code 999: a failure that has no more specific code.
    pub fn internal(msg: impl Into<String>) -> Self {
        CniError::new(ErrorCode::Internal, msg)
    }

    /// Code 8 (Go's `ErrInvalidNetNS`, not in the spec's table): CNI_NETNS
    /// is unusable, e.g. it is the plugin's own netns.
    pub fn invalid_netns(msg: impl Into<String>) -> Self {
        CniError::new(ErrorCode::Other(INVALID_NETNS), msg)
    }

    /// Code 5: an I/O failure.
    pub fn io(msg: impl Into<String>) -> Self {
        CniError::new(ErrorCode::Io, msg)
    }

    /// Prefixes the message with what was being done: `context: msg`.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    /// The spec JSON, labelled with the version the caller asked for.
    pub fn to_json(&self, version: CniVersion) -> String {
        let mut obj = serde_json::Map::new();
        obj.insert("cniVersion".into(), version.as_str().into());
        obj.insert("code".into(), self.code.as_u32().into());
        obj.insert("msg".into(), self.msg.clone().into());
        if !self.details.is_empty() {
            obj.insert("details".into(), self.details.clone().into());
        }
        to_indented(&serde_json::Value::Object(obj))
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "{}; {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for CniError {}

/// JSON with four-space indentation, as every CNI tool prints it.
pub fn to_indented<T: Serialize>(value: &T) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    match value.serialize(&mut ser) {
        Ok(()) => String::from_utf8(buf).unwrap_or_default(),
        Err(e) => format!("{{\"code\": 999, \"msg\": \"encoding output: {e}\"}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for n in [1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 999, 123] {
            assert_eq!(ErrorCode::from_u32(n).as_u32(), n);
        }
    }

    #[test]
    fn json_has_version_code_msg_and_optional_details() {
        let e = CniError::invalid_config("bad").with_details("why");
        let v: serde_json::Value = serde_json::from_str(&e.to_json(CniVersion::V1_0_0)).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["code"], 7);
        assert_eq!(v["msg"], "bad");
        assert_eq!(v["details"], "why");
        let bare = CniError::internal("x").to_json(CniVersion::V1_1_0);
        assert!(!bare.contains("details"));
    }

    #[test]
    fn context_prefixes_message() {
        let e = CniError::internal("file exists").context("create qdisc");
        assert_eq!(e.msg, "create qdisc: file exists");
    }
}
