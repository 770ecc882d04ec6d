//! Field-by-field validation of a conflist's top level and plugin objects:
//! `name`, `cniVersion`/`cniVersions` (the highest supported wins),
//! `disableCheck`/`disableGC`, each plugin's `type`, and wrapping a single
//! plugin `.conf` into a list. Every error names the file, plugin and field.

use std::fmt;
use std::path::Path;

use cni::skel::valid_identifier;
use cni::version::parse_semver;
use cni::CniVersion;
use serde_json::{Map, Value};

use super::{ConfError, NetworkConfigList};

pub(super) fn invalid(
    file: &str,
    plugin: Option<usize>,
    field: &str,
    msg: impl fmt::Display,
) -> ConfError {
    ConfError::Invalid {
        file: file.to_string(),
        plugin,
        field: field.to_string(),
        msg: msg.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `disableCheck`-style flags: a boolean or the strings "true"/"false" (any case).
pub(super) fn read_bool(
    file: &str,
    top: &Map<String, Value>,
    key: &str,
) -> Result<bool, ConfError> {
    match top.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(Value::String(s)) => Err(invalid(
            file,
            None,
            key,
            format!("invalid value {s:?} (want true or false)"),
        )),
        Some(other) => Err(invalid(
            file,
            None,
            key,
            format!(
                "must be a boolean or \"true\"/\"false\", not {}",
                type_name(other)
            ),
        )),
    }
}

fn supported_list() -> String {
    cni::version::format_list(CniVersion::ALL)
}

pub(super) struct Ctx<'a> {
    pub(super) file: &'a str,
}

impl Ctx<'_> {
    fn name(&self, top: &Map<String, Value>) -> Result<String, ConfError> {
        match top.get("name") {
            None => Err(invalid(self.file, None, "name", "missing")),
            Some(Value::String(s)) if s.is_empty() => {
                Err(invalid(self.file, None, "name", "must not be empty"))
            }
            Some(Value::String(s)) if !valid_identifier(s) => Err(invalid(
                self.file,
                None,
                "name",
                format!("invalid characters in {s:?} (allowed: letters, digits, '_', '.', '-'; first a letter or digit)"),
            )),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(invalid(
                self.file,
                None,
                "name",
                format!("must be a string, not {}", type_name(other)),
            )),
        }
    }

    /// `cniVersion` plus `cniVersions`: entries newer than 1.1.0 are dropped,
    /// the highest remaining wins; absent everywhere ⇒ 0.1.0.
    fn version(&self, top: &Map<String, Value>) -> Result<CniVersion, ConfError> {
        let single = match top.get("cniVersion") {
            None => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(invalid(
                    self.file,
                    None,
                    "cniVersion",
                    format!("must be a string, not {}", type_name(other)),
                ))
            }
        };
        let current = parse_semver(CniVersion::CURRENT.as_str()).unwrap_or((1, 1, 0));
        let Some(many) = top.get("cniVersions") else {
            return match single {
                None => Ok(CniVersion::V0_1_0),
                Some(s) => self.cni_version(&s),
            };
        };
        let Value::Array(items) = many else {
            return Err(invalid(
                self.file,
                None,
                "cniVersions",
                format!("must be an array of strings, not {}", type_name(many)),
            ));
        };
        let mut candidates: Vec<CniVersion> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            candidates.extend(self.cni_versions_entry(i, item, current)?);
        }
        if let Some(s) = single {
            match parse_semver(&s) {
                Some(sem) if sem > current => {}
                _ => candidates.push(self.cni_version(&s)?),
            }
        }
        candidates.into_iter().max().ok_or_else(|| {
            invalid(
                self.file,
                None,
                "cniVersions",
                format!(
                    "no entry this runtime supports (supported: {})",
                    supported_list()
                ),
            )
        })
    }

    /// The top-level `cniVersion`, which must be one we support.
    fn cni_version(&self, s: &str) -> Result<CniVersion, ConfError> {
        s.parse().map_err(|_| {
            invalid(
                self.file,
                None,
                "cniVersion",
                format!(
                    "unsupported version {s:?} (supported: {})",
                    supported_list()
                ),
            )
        })
    }

    /// Entry `i` of `cniVersions`: `None` when newer than this runtime
    /// (ignored, as libcni does), an error when not a known version.
    fn cni_versions_entry(
        &self,
        i: usize,
        item: &Value,
        current: (u64, u64, u64),
    ) -> Result<Option<CniVersion>, ConfError> {
        let field = format!("cniVersions[{i}]");
        let Value::String(s) = item else {
            return Err(invalid(
                self.file,
                None,
                &field,
                format!("must be a string, not {}", type_name(item)),
            ));
        };
        let Some(sem) = parse_semver(s) else {
            return Err(invalid(
                self.file,
                None,
                &field,
                format!("{s:?} is not a version (want major.minor.patch)"),
            ));
        };
        if sem > current {
            return Ok(None);
        }
        s.parse().map(Some).map_err(|_| {
            invalid(
                self.file,
                None,
                &field,
                format!("unknown version {s:?} (supported: {})", supported_list()),
            )
        })
    }

    pub(super) fn plugins(
        &self,
        top: &Map<String, Value>,
    ) -> Result<Vec<Map<String, Value>>, ConfError> {
        let raw = top.get("plugins").unwrap_or(&Value::Null);
        let Value::Array(items) = raw else {
            return Err(invalid(
                self.file,
                None,
                "plugins",
                format!("must be an array of plugin objects, not {}", type_name(raw)),
            ));
        };
        if items.is_empty() {
            return Err(invalid(self.file, None, "plugins", "must not be empty"));
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Value::Object(obj) = item else {
                return Err(invalid(
                    self.file,
                    Some(i),
                    &format!("plugins[{i}]"),
                    format!("must be an object, not {}", type_name(item)),
                ));
            };
            self.plugin_object(obj, Some(i), &format!("plugins[{i}]."))?;
            out.push(obj.clone());
        }
        Ok(out)
    }

    /// Checks `type` and `capabilities` of one plugin object; `prefix` is the
    /// field path prefix (`plugins[i].` or empty for a single-plugin conf).
    pub(super) fn plugin_object(
        &self,
        obj: &Map<String, Value>,
        index: Option<usize>,
        prefix: &str,
    ) -> Result<(), ConfError> {
        let type_field = format!("{prefix}type");
        match obj.get("type") {
            None => return Err(invalid(self.file, index, &type_field, "missing")),
            Some(Value::String(t)) if t.is_empty() => {
                return Err(invalid(self.file, index, &type_field, "must not be empty"))
            }
            Some(Value::String(t)) if t.contains('/') || t == "." || t == ".." => {
                return Err(invalid(
                    self.file,
                    index,
                    &type_field,
                    format!("{t:?} must be a plugin binary name, not a path"),
                ))
            }
            Some(Value::String(_)) => {}
            Some(other) => {
                return Err(invalid(
                    self.file,
                    index,
                    &type_field,
                    format!("must be a string, not {}", type_name(other)),
                ))
            }
        }
        if let Some(caps) = obj.get("capabilities") {
            let field = format!("{prefix}capabilities");
            let Value::Object(caps) = caps else {
                return Err(invalid(
                    self.file,
                    index,
                    &field,
                    format!("must be an object of booleans, not {}", type_name(caps)),
                ));
            };
            for (k, v) in caps {
                if !v.is_boolean() {
                    return Err(invalid(
                        self.file,
                        index,
                        &format!("{field}.{k}"),
                        format!("must be a boolean, not {}", type_name(v)),
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn list(
        &self,
        top: &Map<String, Value>,
        plugins: Vec<Map<String, Value>>,
        bytes: Vec<u8>,
        source: Option<&Path>,
    ) -> Result<NetworkConfigList, ConfError> {
        Ok(NetworkConfigList {
            name: self.name(top)?,
            cni_version: self.version(top)?,
            disable_check: read_bool(self.file, top, "disableCheck")?,
            disable_gc: read_bool(self.file, top, "disableGC")?,
            plugins,
            bytes,
            source: source.map(Path::to_path_buf),
        })
    }

    /// A legacy single-plugin conf becomes a one-element list, the way
    /// libcni's ConfListFromConf does (name and cniVersion lifted).
    pub(super) fn wrap_single(
        &self,
        top: Map<String, Value>,
        source: Option<&Path>,
    ) -> Result<NetworkConfigList, ConfError> {
        self.plugin_object(&top, None, "")?;
        let name = self.name(&top)?;
        let cni_version = self.version(&top)?;
        let mut wrapped = Map::new();
        wrapped.insert("cniVersion".into(), cni_version.as_str().into());
        wrapped.insert("name".into(), name.clone().into());
        wrapped.insert(
            "plugins".into(),
            Value::Array(vec![Value::Object(top.clone())]),
        );
        let bytes = serde_json::to_vec(&Value::Object(wrapped)).map_err(|e| ConfError::Json {
            file: self.file.to_string(),
            msg: e.to_string(),
        })?;
        Ok(NetworkConfigList {
            name,
            cni_version,
            disable_check: false,
            disable_gc: false,
            plugins: vec![top],
            bytes,
            source: source.map(Path::to_path_buf),
        })
    }
}
