//! Tuning's first config layer: the stdin fields as serde reads them (Go's
//! key matching via [`cni::gojson`]), every value that can be wrong kept as
//! JSON so the second layer (`config.rs`) can name the field it rejects.
//! The one check made here: duplicate keys inside a `sysctl` object.

use std::fmt;

use cni::CniError;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// The keys of one `sysctl` JSON object in order, duplicates rejected while
/// parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SysctlEntries(pub Vec<(String, Value)>);

impl<'de> Deserialize<'de> for SysctlEntries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = SysctlEntries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of sysctl keys to values")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<SysctlEntries, E> {
                Ok(SysctlEntries::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SysctlEntries, A::Error> {
                let mut out: Vec<(String, Value)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    if out.iter().any(|(seen, _)| seen == &k) {
                        return Err(serde::de::Error::custom(format!(
                            "duplicated sysctl keys are not allowed: {k:?} appears twice"
                        )));
                    }
                    out.push((k, v));
                }
                Ok(SysctlEntries(out))
            }
        }
        d.deserialize_any(EntriesVisitor)
    }
}

/// The stdin fields tuning reads besides the [`RawSettings`]; everything
/// else is ignored. Typed fields that can be wrong are kept as `Value` so
/// errors can name the field.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawConf {
    #[serde(rename = "dataDir", default)]
    pub(super) data_dir: Option<Value>,
    #[serde(rename = "runtimeConfig", default)]
    pub(super) runtime_config: Option<RawRuntimeConfig>,
    #[serde(default)]
    pub(super) args: Option<RawArgs>,
    #[serde(rename = "sysctlAllowlist", default)]
    pub(super) sysctl_allowlist: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawRuntimeConfig {
    #[serde(default)]
    pub(super) mac: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawArgs {
    #[serde(default)]
    pub(super) cni: Option<RawSettings>,
}

/// The settings that stand both at the top level and in `args.cni`. One
/// struct, decoded twice from the top level (once as [`RawConf`], once as
/// this): `#[serde(flatten)]` would hide its field names from gojson's Go
/// matching (exact key, then case-insensitive); decoding the same document
/// twice keeps it, and the two field sets share no name even
/// case-insensitively, so every key still names the field it named in one
/// struct.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawSettings {
    #[serde(default)]
    pub(super) sysctl: Option<SysctlEntries>,
    #[serde(default)]
    pub(super) mac: Option<Value>,
    #[serde(default)]
    pub(super) promisc: Option<Value>,
    #[serde(default)]
    pub(super) mtu: Option<Value>,
    #[serde(default)]
    pub(super) allmulti: Option<Value>,
    #[serde(rename = "txQLen", default)]
    pub(super) tx_qlen: Option<Value>,
}

/// Stdin as the top-level settings and the rest, one parse, two decodes.
pub(super) fn decode_raw(stdin: &[u8]) -> Result<(RawSettings, RawConf), CniError> {
    let invalid = |e: cni::gojson::Error| {
        CniError::invalid_config(format!("tuning: invalid configuration: {e}"))
    };
    let doc = cni::gojson::Document::parse(stdin).map_err(invalid)?;
    let settings = doc.clone().decode().map_err(invalid)?;
    Ok((settings, doc.decode().map_err(invalid)?))
}
