//! Chaining our plugins into the node's network configuration, as pure
//! functions of file names and bytes: which file a runtime loads first, the
//! edited conflist (ours appended, upstream's entries of the same type kept in
//! place with their options and given only the keys they lack), and the undo
//! of exactly those changes. Reads as libcni does (top-level keys exact like a
//! Go map, plugin fields case-insensitive like a Go struct). Owns no I/O.

use cni::version::{parse_semver, CniVersion};

use crate::json::{GoObject, Json, JsonExt, Object};

/// The extensions libcni's `ConfFiles` lists in a conf dir.
pub const CONF_EXTENSIONS: [&str; 3] = [".conf", ".conflist", ".json"];

/// Plugin types that are a Multus master: their network is `delegates[0]`.
const MULTUS_TYPES: [&str; 2] = ["multus", "multus-shim"];

/// Why a file cannot be chained into. Every message names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("{file}: not valid JSON: {reason}")]
    Unparsable { file: String, reason: String },
    #[error("{file}: not a JSON object")]
    NotAnObject { file: String },
    #[error("{file}: no \"plugins\" list, which a conflist must have")]
    NoPlugins { file: String },
    #[error("{file}: plugins[{index}] is not an object")]
    PluginNotAnObject { file: String, index: usize },
    #[error("{file}: a .conf or .json file is loaded as one plugin, and this one has no \"type\"")]
    NoType { file: String },
    #[error(
        "{file}: no cniVersion (runtimes read that as 0.1.0); chained plugins need 0.3.0 or later"
    )]
    NoVersion { file: String },
    #[error("{file}: cniVersion {version:?} is below 0.3.0; chained plugins need a prevResult with interfaces (0.3.0 or later)")]
    VersionTooOld { file: String, version: String },
    #[error("{file}: cniVersion {version:?} is not one our plugins speak ({supported})")]
    VersionUnsupported {
        file: String,
        version: String,
        supported: String,
    },
    #[error("{file}: a Multus master without \"delegates\" (Multus reads its cluster network from another file): chain into that file with --conf-file")]
    MultusWithoutDelegates { file: String },
}

/// The plugins to chain, in order; each an object whose `type` names it.
/// The other keys are the options we need; an existing entry keeps its own
/// values and only gets the keys it lacks.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainSpec {
    pub plugins: Vec<Object>,
}

/// One change `chain` made, enough for `unchain` to take exactly it back.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// We appended this whole entry.
    Appended { plugin: Json },
    /// We added `key` (under `parent`, e.g. `capabilities`) to the first
    /// existing entry of `plugin_type`; `over_null` when it replaced a
    /// `null` (which the undo puts back).
    KeyAdded {
        plugin_type: String,
        parent: Option<String>,
        key: String,
        value: Json,
        over_null: bool,
    },
}

/// What to write after `chain`.
#[derive(Debug, Clone, PartialEq)]
pub struct Chained {
    /// The file to write: the input's name, or `<stem>.conflist` for a
    /// converted `.conf`/`.json`.
    pub file: String,
    /// The whole new content (the input bytes unchanged when `changes` is
    /// empty and nothing was converted).
    pub bytes: Vec<u8>,
    pub changes: Vec<Change>,
    /// The input's name when a single-plugin file became a conflist (the
    /// old file must then go, or runtimes would keep loading it first).
    pub converted_from: Option<String>,
}

impl Chained {
    pub fn is_unchanged(&self) -> bool {
        self.changes.is_empty() && self.converted_from.is_none()
    }
}

/// The file a runtime loads as the node's network: the lexicographically
/// (byte-wise, like Go's `sort.Strings`) first name with a CNI extension.
pub fn primary_file(names: &[String]) -> Option<&str> {
    names
        .iter()
        .filter(|n| is_conf_name(n))
        .min_by(|a, b| a.as_bytes().cmp(b.as_bytes()))
        .map(String::as_str)
}

pub fn is_conf_name(name: &str) -> bool {
    CONF_EXTENSIONS.iter().any(|ext| name.ends_with(ext))
}

/// Chains `spec` into `bytes`, the content of conf file `file`.
pub fn chain(file: &str, bytes: &[u8], spec: &ChainSpec) -> Result<Chained, EditError> {
    let mut doc = parse(file, bytes)?;
    let mut converted_from = None;
    let mut out_file = file.to_string();
    if !file.ends_with(".conflist") && !is_multus(&doc) {
        if spec.plugins.is_empty() {
            return Ok(unchanged(file, bytes));
        }
        doc = Json::Object(conf_to_conflist(file, &doc)?);
        converted_from = Some(file.to_string());
        out_file = format!(
            "{}.conflist",
            file.rsplit_once('.').map_or(file, |(s, _)| s)
        );
    }
    let (label, list) = plugin_list(file, &mut doc)?;
    let changes = chain_into(&label, list, spec)?;
    if changes.is_empty() && converted_from.is_none() {
        return Ok(unchanged(file, bytes));
    }
    Ok(Chained {
        file: out_file,
        bytes: to_bytes(&doc),
        changes,
        converted_from,
    })
}

/// Takes back `changes` from `bytes` (a file `chain` wrote and others may
/// have edited since): removes our appended entries that are still as we
/// wrote them and the keys we added that still hold our values. `None` when
/// there is nothing to take back.
pub fn unchain(file: &str, bytes: &[u8], changes: &[Change]) -> Result<Option<Vec<u8>>, EditError> {
    let mut doc = parse(file, bytes)?;
    if !file.ends_with(".conflist") && !is_multus(&doc) {
        return Ok(None);
    }
    let (_, list) = plugin_list(file, &mut doc)?;
    let mut changed = false;
    for change in changes.iter().rev() {
        changed |= undo(list, change);
    }
    Ok(changed.then(|| to_bytes(&doc)))
}

fn unchanged(file: &str, bytes: &[u8]) -> Chained {
    Chained {
        file: file.to_string(),
        bytes: bytes.to_vec(),
        changes: Vec::new(),
        converted_from: None,
    }
}

fn parse(file: &str, bytes: &[u8]) -> Result<Json, EditError> {
    let doc: Json = serde_json::from_slice(bytes).map_err(|e| EditError::Unparsable {
        file: file.to_string(),
        reason: e.to_string(),
    })?;
    if doc.as_object().is_none() {
        return Err(EditError::NotAnObject {
            file: file.to_string(),
        });
    }
    Ok(doc)
}

fn to_bytes(doc: &Json) -> Vec<u8> {
    // Serializing our own tree of strings, numbers and pairs cannot fail.
    let mut out = serde_json::to_vec_pretty(doc).unwrap_or_default();
    out.push(b'\n');
    out
}

fn plugin_type(plugin: &Json) -> Option<&str> {
    plugin.as_object()?.get_struct_field("type")?.as_str()
}

/// A single-plugin file (or a conflist's first plugin) of a Multus type.
fn is_multus(doc: &Json) -> bool {
    let Some(obj) = doc.as_object() else {
        return false;
    };
    let first = match obj.get_map_key("plugins") {
        Some(Json::Array(plugins)) => plugins.first(),
        _ => Some(doc),
    };
    first
        .and_then(plugin_type)
        .is_some_and(|t| MULTUS_TYPES.contains(&t))
}

/// libcni's `ConfListFromConf`: `{cniVersion, name, plugins: [the conf]}`
/// with name and version read as the conf's struct fields.
fn conf_to_conflist(file: &str, conf: &Json) -> Result<Object, EditError> {
    let obj = conf.as_object().ok_or_else(|| EditError::NotAnObject {
        file: file.to_string(),
    })?;
    if plugin_type(conf).is_none_or(str::is_empty) {
        return Err(EditError::NoType {
            file: file.to_string(),
        });
    }
    let field = |name: &str| {
        obj.get_struct_field(name)
            .cloned()
            .unwrap_or(Json::String(String::new()))
    };
    let version = obj.get_struct_field("cniVersion").cloned();
    check_version(file, version.as_ref())?;
    Ok(vec![
        ("cniVersion".into(), field("cniVersion")),
        ("name".into(), field("name")),
        ("plugins".into(), Json::Array(vec![conf.clone()])),
    ])
}

/// The list our plugins go into, with a label naming it in errors: the
/// conflist's `plugins`, or the Multus master's `delegates[0]` plugins (a
/// single-plugin delegate becomes a conflist in place).
fn plugin_list<'a>(
    file: &str,
    doc: &'a mut Json,
) -> Result<(String, &'a mut Vec<Json>), EditError> {
    let (label, target) = if is_multus(doc) {
        let label = format!("{file} (delegates[0])");
        let delegate = multus_delegate(doc).ok_or_else(|| EditError::MultusWithoutDelegates {
            file: file.to_string(),
        })?;
        if delegate
            .as_object()
            .is_some_and(|d| d.get_map_key("plugins").is_none())
        {
            *delegate = Json::Object(conf_to_conflist(&label, delegate)?);
        }
        (label, delegate)
    } else {
        (file.to_string(), doc)
    };
    let obj = target
        .as_object_mut()
        .ok_or_else(|| EditError::NotAnObject {
            file: label.clone(),
        })?;
    check_version(&label, obj.get_map_key("cniVersion"))?;
    let index = obj
        .iter()
        .rposition(|(k, _)| k == "plugins")
        .ok_or_else(|| EditError::NoPlugins {
            file: label.clone(),
        })?;
    match &mut obj[index].1 {
        Json::Array(plugins) => Ok((label, plugins)),
        _ => Err(EditError::NoPlugins { file: label }),
    }
}

/// `delegates[0]` of the Multus master: the file itself, or its conflist's
/// first plugin.
fn multus_delegate(doc: &mut Json) -> Option<&mut Json> {
    let top = doc.as_object_mut()?;
    let master = match top.iter().rposition(|(k, _)| k == "plugins") {
        Some(i) => match &mut top[i].1 {
            Json::Array(plugins) => plugins.first_mut()?.as_object_mut()?,
            _ => return None,
        },
        None => top,
    };
    let i = master.struct_field_index("delegates")?;
    match &mut master[i].1 {
        Json::Array(delegates) => delegates.first_mut().filter(|d| d.as_object().is_some()),
        _ => None,
    }
}

fn check_version(file: &str, version: Option<&Json>) -> Result<(), EditError> {
    let file = file.to_string();
    let version = match version {
        None | Some(Json::Null) => return Err(EditError::NoVersion { file }),
        Some(Json::String(v)) => v.clone(),
        Some(other) => serde_json::to_string(other).unwrap_or_default(),
    };
    if let Ok(v) = version.parse::<CniVersion>() {
        if CniVersion::SINCE_0_3_0.contains(&v) {
            return Ok(());
        }
    }
    if parse_semver(&version).is_some_and(|v| v < (0, 3, 0)) {
        return Err(EditError::VersionTooOld { file, version });
    }
    let supported = CniVersion::SINCE_0_3_0
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Err(EditError::VersionUnsupported {
        file,
        version,
        supported,
    })
}

fn chain_into(
    label: &str,
    list: &mut Vec<Json>,
    spec: &ChainSpec,
) -> Result<Vec<Change>, EditError> {
    for (index, plugin) in list.iter().enumerate() {
        if plugin.as_object().is_none() {
            return Err(EditError::PluginNotAnObject {
                file: label.to_string(),
                index,
            });
        }
    }
    let mut changes = Vec::new();
    for wanted in &spec.plugins {
        let Some(ty) = wanted.get_struct_field("type").and_then(Json::as_str) else {
            continue;
        };
        match list.iter_mut().find(|p| plugin_type(p) == Some(ty)) {
            Some(existing) => {
                if let Some(obj) = existing.as_object_mut() {
                    add_missing_keys(ty, obj, wanted, &mut changes);
                }
            }
            None => {
                let plugin = Json::Object(wanted.clone());
                list.push(plugin.clone());
                changes.push(Change::Appended { plugin });
            }
        }
    }
    Ok(changes)
}

/// Gives an existing entry the keys of `wanted` it lacks (Go struct field
/// lookup; `null` is absent). `capabilities` is a Go map: its keys are exact.
fn add_missing_keys(ty: &str, existing: &mut Object, wanted: &Object, changes: &mut Vec<Change>) {
    for (key, value) in wanted.iter() {
        if key == "type" {
            continue;
        }
        let slot = existing.struct_field_index(key);
        let present = slot.map(|i| &mut existing[i]).filter(|(_, v)| !v.is_null());
        match (present, key.as_str(), value) {
            (Some((their_key, Json::Object(theirs))), "capabilities", Json::Object(ours)) => {
                for (cap, on) in ours.iter() {
                    if theirs.get_map_key(cap).is_none() {
                        theirs.set(cap, on.clone());
                        changes.push(Change::KeyAdded {
                            plugin_type: ty.to_string(),
                            parent: Some(their_key.clone()),
                            key: cap.clone(),
                            value: on.clone(),
                            over_null: false,
                        });
                    }
                }
            }
            (Some(_), _, _) => {}
            (None, _, _) => {
                let name = match slot {
                    Some(i) => {
                        existing[i].1 = value.clone();
                        existing[i].0.clone()
                    }
                    None => {
                        existing.push((key.clone(), value.clone()));
                        key.clone()
                    }
                };
                changes.push(Change::KeyAdded {
                    plugin_type: ty.to_string(),
                    parent: None,
                    key: name,
                    value: value.clone(),
                    over_null: slot.is_some(),
                });
            }
        }
    }
}

fn undo(list: &mut Vec<Json>, change: &Change) -> bool {
    match change {
        Change::Appended { plugin } => match list.iter().rposition(|p| p == plugin) {
            Some(i) => {
                list.remove(i);
                true
            }
            None => false,
        },
        Change::KeyAdded {
            plugin_type,
            parent,
            key,
            value,
            over_null,
        } => {
            let Some(obj) = list
                .iter_mut()
                .find(|p| plugin_type_is(p, plugin_type))
                .and_then(Json::as_object_mut)
            else {
                return false;
            };
            let holder = match parent {
                None => Some(obj),
                Some(p) => obj
                    .iter_mut()
                    .rev()
                    .find(|(k, _)| k == p)
                    .and_then(|(_, v)| v.as_object_mut()),
            };
            let Some(holder) = holder else { return false };
            match holder.iter().rposition(|(k, v)| k == key && v == value) {
                Some(i) if *over_null => {
                    holder[i].1 = Json::Null;
                    true
                }
                Some(i) => {
                    holder.remove(i);
                    true
                }
                None => false,
            }
        }
    }
}

fn plugin_type_is(plugin: &Json, ty: &str) -> bool {
    plugin_type(plugin) == Some(ty)
}
