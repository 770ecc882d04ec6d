//! Network configuration lists: parsing and validating `.conflist` / `.conf` /
//! `.json` files the way libcni does (cniVersion/cniVersions selection,
//! disableCheck/disableGC, single-plugin `.conf` wrapped into a list) and
//! picking a network by name from a directory (lexicographic first wins).
//! Every rejection names the file, the plugin index and the field. Pure apart
//! from reading the files it is asked to read; never executes a plugin.

mod fields;

use std::path::{Path, PathBuf};

use cni::CniVersion;
use fields::{invalid, read_bool, Ctx};
use serde_json::{Map, Value};

/// One network: its name, selected version and the raw plugin objects.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    /// The network name (`name`), a valid spec identifier.
    pub name: String,
    /// The selected version (`cniVersion`, or the highest supported entry of
    /// `cniVersions`); absent ⇒ 0.1.0 as the spec says.
    pub cni_version: CniVersion,
    /// `disableCheck`: CHECK succeeds without asking the plugins.
    pub disable_check: bool,
    /// `disableGC`: GC does nothing.
    pub disable_gc: bool,
    /// Plugin objects exactly as written (unknown keys kept).
    pub plugins: Vec<Map<String, Value>>,
    /// The conflist bytes (for a wrapped single-plugin `.conf`, the
    /// synthesized list, as libcni caches it).
    pub bytes: Vec<u8>,
    /// The file it came from, if any.
    pub source: Option<PathBuf>,
}

impl NetworkConfigList {
    /// `type` of plugin `index`.
    pub fn plugin_type(&self, index: usize) -> &str {
        self.plugins
            .get(index)
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Every plugin `type`, in order.
    pub fn plugin_types(&self) -> Vec<&str> {
        (0..self.plugins.len())
            .map(|i| self.plugin_type(i))
            .collect()
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// A configuration file could not be read.
    #[error("{}: reading: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A configuration directory could not be listed.
    #[error("{}: listing network configurations: {source}", dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not JSON.
    #[error("{file}: not valid JSON: {msg}")]
    Json {
        /// The file (or `<network configuration>` for bytes without one).
        file: String,
        /// serde_json's message.
        msg: String,
    },
    /// A field with a wrong type or value. `field` is a path such as
    /// `cniVersions[2]` or `plugins[1].type`.
    #[error("{file}: {field}: {msg}")]
    Invalid {
        /// The file.
        file: String,
        /// The index of the plugin object, when the field is in one.
        plugin: Option<usize>,
        /// The field's path.
        field: String,
        /// What is wrong with it.
        msg: String,
    },
    /// No file in the directory defines the network asked for.
    #[error("{}", not_found_message(dir, name, broken))]
    NotFound {
        /// The directory searched.
        dir: PathBuf,
        /// The network name asked for.
        name: String,
        /// Files that could not be read or parsed (one of them may have been
        /// the network asked for).
        broken: Vec<String>,
    },
}

fn not_found_message(dir: &Path, name: &str, broken: &[String]) -> String {
    let mut msg = format!(
        "no network configuration named {name:?} in {} (looked at *.conflist, *.conf, *.json)",
        dir.display()
    );
    if !broken.is_empty() {
        msg.push_str("; these files could not be used: ");
        msg.push_str(&broken.join("; "));
    }
    msg
}

impl ConfError {
    /// The field path of an `Invalid` error.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The plugin index of an `Invalid` error about a plugin object.
    pub fn plugin_index(&self) -> Option<usize> {
        match self {
            ConfError::Invalid { plugin, .. } => *plugin,
            _ => None,
        }
    }
}

/// File extensions a directory scan considers.
pub const EXTENSIONS: &[&str] = &["conflist", "conf", "json"];

/// Parses a conflist (or a single-plugin conf, which is wrapped into a list).
pub fn parse_conflist(bytes: &[u8], source: Option<&Path>) -> Result<NetworkConfigList, ConfError> {
    let file = source
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<network configuration>".into());
    let value: Value = serde_json::from_slice(bytes).map_err(|e| ConfError::Json {
        file: file.clone(),
        msg: e.to_string(),
    })?;
    let Value::Object(top) = value else {
        return Err(invalid(&file, None, "(top level)", "must be a JSON object"));
    };
    let ctx = Ctx { file: &file };
    if top.contains_key("plugins") {
        let plugins = ctx.plugins(&top)?;
        ctx.list(&top, plugins, bytes.to_vec(), source)
    } else if top.contains_key("type") {
        ctx.wrap_single(top, source)
    } else {
        Err(invalid(
            &file,
            None,
            "plugins",
            "missing (a single-plugin configuration needs a top-level \"type\" instead)",
        ))
    }
}

/// Reads and parses one file, appending plugin objects from
/// `<dir>/<network name>/*.conf` unless `loadOnlyInlinedPlugins` is true
/// (libcni ≥ 1.3 behaviour).
pub fn load_file(path: &Path) -> Result<NetworkConfigList, ConfError> {
    let bytes = std::fs::read(path).map_err(|source| ConfError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut list = parse_conflist(&bytes, Some(path))?;
    let top: Map<String, Value> = serde_json::from_slice(&bytes).unwrap_or_default();
    let file = path.display().to_string();
    let inline_only = read_bool(&file, &top, "loadOnlyInlinedPlugins")?;
    if !inline_only && top.contains_key("plugins") {
        if let Some(dir) = path.parent() {
            list.plugins.extend(subdir_plugins(dir, &list.name)?);
        }
    }
    Ok(list)
}

/// Plugin objects from `<dir>/<name>/*.conf`, sorted by file name.
fn subdir_plugins(dir: &Path, name: &str) -> Result<Vec<Map<String, Value>>, ConfError> {
    let sub = dir.join(name);
    if !sub.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for path in config_files(&sub, &["conf"])? {
        let bytes = std::fs::read(&path).map_err(|source| ConfError::Read {
            path: path.clone(),
            source,
        })?;
        let file = path.display().to_string();
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| ConfError::Json {
            file: file.clone(),
            msg: e.to_string(),
        })?;
        let Value::Object(obj) = value else {
            return Err(invalid(&file, None, "(top level)", "must be a JSON object"));
        };
        Ctx { file: &file }.plugin_object(&obj, None, "")?;
        out.push(obj);
    }
    Ok(out)
}

/// Files in `dir` with one of `exts`, sorted by name (not recursive).
pub fn config_files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, ConfError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ConfError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let ext_ok = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| exts.contains(&e));
        if ext_ok && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Every file of the directory parsed, in lexicographic order; a broken file
/// is an `Err` entry in place (so one stray file does not hide the others).
pub fn scan_dir(dir: &Path) -> Result<Vec<Result<NetworkConfigList, ConfError>>, ConfError> {
    Ok(config_files(dir, EXTENSIONS)?
        .iter()
        .map(|p| load_file(p))
        .collect())
}

/// Every network of the directory in lexicographic file order; the first
/// broken file is an error (strict, what `validate` of a directory wants).
pub fn load_dir(dir: &Path) -> Result<Vec<NetworkConfigList>, ConfError> {
    scan_dir(dir)?.into_iter().collect()
}

/// The network named `name`: the lexicographically first file of `dir`
/// (any of `.conflist`, `.conf`, `.json`) that parses and carries that name.
/// When none does, the error lists the files that could not be parsed.
pub fn load_network(dir: &Path, name: &str) -> Result<NetworkConfigList, ConfError> {
    let mut broken = Vec::new();
    for item in scan_dir(dir)? {
        match item {
            Ok(list) if list.name == name => return Ok(list),
            Ok(_) => {}
            Err(e) => broken.push(e.to_string()),
        }
    }
    Err(ConfError::NotFound {
        dir: dir.to_path_buf(),
        name: name.to_string(),
        broken,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::skel::valid_identifier;

    fn parse(s: &str) -> Result<NetworkConfigList, ConfError> {
        parse_conflist(
            s.as_bytes(),
            Some(Path::new("/etc/cni/net.d/10-test.conflist")),
        )
    }

    fn err(s: &str) -> ConfError {
        match parse(s) {
            Ok(l) => panic!("expected an error, got {l:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_a_chain_and_keeps_unknown_keys() {
        let l = parse(
            r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[
                {"type":"ptp","ipam":{"type":"host-local"},"zzz":1},
                {"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .unwrap();
        assert_eq!(l.name, "k8s");
        assert_eq!(l.cni_version, CniVersion::V1_0_0);
        assert_eq!(l.plugin_types(), vec!["ptp", "portmap"]);
        assert_eq!(l.plugins[0]["zzz"], 1);
        assert!(!l.disable_check && !l.disable_gc);
        assert_eq!(
            l.source.as_deref(),
            Some(Path::new("/etc/cni/net.d/10-test.conflist"))
        );
    }

    #[test]
    fn cni_versions_highest_supported_wins() {
        let l = parse(
            r#"{"cniVersion":"1.0.0","cniVersions":["0.4.0","1.1.0","2.0.0"],"name":"n","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(l.cni_version, CniVersion::V1_1_0);
        // cniVersion newer than ours is dropped when cniVersions is present
        let l = parse(
            r#"{"cniVersion":"3.0.0","cniVersions":["0.3.1"],"name":"n","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(l.cni_version, CniVersion::V0_3_1);
        // only cniVersions
        let l = parse(r#"{"cniVersions":["0.4.0","1.0.0"],"name":"n","plugins":[{"type":"x"}]}"#)
            .unwrap();
        assert_eq!(l.cni_version, CniVersion::V1_0_0);
    }

    #[test]
    fn missing_version_is_0_1_0() {
        let l = parse(r#"{"name":"n","plugins":[{"type":"x"}]}"#).unwrap();
        assert_eq!(l.cni_version, CniVersion::V0_1_0);
    }

    #[test]
    fn disable_flags_accept_bools_and_strings() {
        for (raw, want) in [
            ("true", true),
            ("false", false),
            ("\"TRUE\"", true),
            ("\"False\"", false),
        ] {
            let l = parse(&format!(
                r#"{{"cniVersion":"1.1.0","name":"n","disableCheck":{raw},"disableGC":{raw},"plugins":[{{"type":"x"}}]}}"#
            ))
            .unwrap();
            assert_eq!((l.disable_check, l.disable_gc), (want, want), "{raw}");
        }
        let e =
            err(r#"{"cniVersion":"1.1.0","name":"n","disableGC":"yes","plugins":[{"type":"x"}]}"#);
        assert_eq!(e.field(), Some("disableGC"));
        assert!(e.to_string().contains("\"yes\""), "{e}");
        let e =
            err(r#"{"cniVersion":"1.1.0","name":"n","disableCheck":1,"plugins":[{"type":"x"}]}"#);
        assert_eq!(e.field(), Some("disableCheck"));
    }

    #[test]
    fn single_plugin_conf_is_wrapped() {
        let l = parse_conflist(
            br#"{"cniVersion":"0.4.0","name":"single","type":"bridge","bridge":"cni0"}"#,
            Some(Path::new("/x/10-single.conf")),
        )
        .unwrap();
        assert_eq!(l.name, "single");
        assert_eq!(l.cni_version, CniVersion::V0_4_0);
        assert_eq!(l.plugin_types(), vec!["bridge"]);
        assert_eq!(l.plugins[0]["bridge"], "cni0");
        let wrapped: Value = serde_json::from_slice(&l.bytes).unwrap();
        assert_eq!(wrapped["plugins"][0]["type"], "bridge");
        assert_eq!(wrapped["name"], "single");
        assert_eq!(wrapped["cniVersion"], "0.4.0");
    }

    /// Every rejection: (input, field path, plugin index, text in message).
    #[test]
    fn every_validation_error_names_file_index_and_field() {
        // One rejection per row (a table, hence unformatted). The list's own
        // fields, before a valid `plugins`: (fields, path, text in message).
        #[rustfmt::skip]
        let list_fields: &[(&str, &str, &str)] = &[
            (r#""cniVersion":"1.0.0""#, "name", "missing"),
            (r#""cniVersion":"1.0.0","name":"""#, "name", "empty"),
            (r#""cniVersion":"1.0.0","name":3"#, "name", "a number"),
            (r#""cniVersion":"1.0.0","name":"a b""#, "name", "invalid characters"),
            (r#""cniVersion":1,"name":"n""#, "cniVersion", "must be a string"),
            (r#""cniVersion":"9.9.9","name":"n""#, "cniVersion", "unsupported version \"9.9.9\""),
            (r#""cniVersions":"1.0.0","name":"n""#, "cniVersions", "array"),
            (r#""cniVersions":["1.0.0",5],"name":"n""#, "cniVersions[1]", "must be a string"),
            (r#""cniVersions":["1.0"],"name":"n""#, "cniVersions[0]", "not a version"),
            (r#""cniVersions":["0.5.0"],"name":"n""#, "cniVersions[0]", "unknown version"),
            (r#""cniVersions":["2.0.0"],"name":"n""#, "cniVersions", "no entry"),
        ];
        // `plugins` of an otherwise valid list: (its value, path, index, text).
        #[rustfmt::skip]
        let plugins: &[(&str, &str, Option<usize>, &str)] = &[
            (r#"{}"#, "plugins", None, "an object"),
            (r#"[]"#, "plugins", None, "empty"),
            (r#"[{"type":"x"},7]"#, "plugins[1]", Some(1), "must be an object"),
            (r#"[{"type":"x"},{"ipam":{}}]"#, "plugins[1].type", Some(1), "missing"),
            (r#"[{"type":""}]"#, "plugins[0].type", Some(0), "empty"),
            (r#"[{"type":["x"]}]"#, "plugins[0].type", Some(0), "an array"),
            (r#"[{"type":"../bin/sh"}]"#, "plugins[0].type", Some(0), "not a path"),
            (r#"[{"type":"x"},{"type":"y","capabilities":[]}]"#, "plugins[1].capabilities", Some(1), "object of booleans"),
            (r#"[{"type":"x","capabilities":{"mac":"yes"}}]"#, "plugins[0].capabilities.mac", Some(0), "boolean"),
        ];
        // Whole inputs: (input, path, index, text).
        let mut cases: Vec<(String, &str, Option<usize>, &str)> = vec![
            (r#"[1]"#.to_string(), "(top level)", None, "JSON object"),
            (
                r#"{"cniVersion":"1.0.0","name":"n"}"#.to_string(),
                "plugins",
                None,
                "missing",
            ),
        ];
        for (fields, field, text) in list_fields {
            let input = format!(r#"{{{fields},"plugins":[{{"type":"x"}}]}}"#);
            cases.push((input, field, None, text));
        }
        for (value, field, index, text) in plugins {
            let input = format!(r#"{{"cniVersion":"1.0.0","name":"n","plugins":{value}}}"#);
            cases.push((input, field, *index, text));
        }
        for (input, field, index, text) in &cases {
            let e = err(input);
            let msg = e.to_string();
            assert_eq!(e.field(), Some(*field), "{input}: {msg}");
            assert_eq!(e.plugin_index(), *index, "{input}: {msg}");
            assert!(
                msg.starts_with("/etc/cni/net.d/10-test.conflist: "),
                "{msg}"
            );
            assert!(msg.contains(field), "{msg}");
            assert!(msg.contains(text), "{input}: {msg} lacks {text}");
        }
    }

    #[test]
    fn invalid_json_names_the_file() {
        let e = err("{\"name\": ");
        assert!(matches!(e, ConfError::Json { .. }));
        assert!(
            e.to_string()
                .starts_with("/etc/cni/net.d/10-test.conflist: not valid JSON"),
            "{e}"
        );
    }

    #[test]
    fn single_conf_type_errors_name_the_field() {
        let e =
            parse_conflist(br#"{"name":"n","type":""}"#, Some(Path::new("/d/a.conf"))).unwrap_err();
        assert_eq!(e.field(), Some("type"));
        assert!(e.to_string().starts_with("/d/a.conf: type: "), "{e}");
    }

    #[test]
    fn identifiers_follow_the_spec() {
        for ok in ["a", "A1", "k8s-pod.net_1", "0abc"] {
            assert!(valid_identifier(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "a:b", "é"] {
            assert!(!valid_identifier(bad), "{bad}");
        }
    }

    use crate::test_dir::Dir;

    fn list_json(name: &str, t: &str) -> String {
        format!(r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[{{"type":"{t}"}}]}}"#)
    }

    #[test]
    fn directory_scan_is_lexicographic_across_extensions() {
        let d = Dir::new("scan");
        d.write("30-a.conflist", &list_json("net", "third"));
        d.write(
            "20-b.conf",
            r#"{"cniVersion":"0.4.0","name":"net","type":"second"}"#,
        );
        d.write("10-c.json", &list_json("other", "first"));
        d.write("05-ignored.txt", &list_json("net", "nope"));
        d.write("99-later.conflist", &list_json("later", "x"));
        let all = load_dir(&d.0).unwrap();
        let names: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, vec!["other", "net", "net", "later"]);
        let net = load_network(&d.0, "net").unwrap();
        assert_eq!(net.plugin_types(), vec!["second"]);
        assert!(net.source.unwrap().ends_with("20-b.conf"));
    }

    #[test]
    fn a_broken_file_does_not_hide_others_but_is_reported_when_not_found() {
        let d = Dir::new("broken");
        d.write(
            "00-broken.conflist",
            r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"ipam":{}}]}"#,
        );
        d.write("10-good.conflist", &list_json("good", "ptp"));
        assert_eq!(load_network(&d.0, "good").unwrap().name, "good");
        let e = load_network(&d.0, "net").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("no network configuration named \"net\""),
            "{msg}"
        );
        assert!(
            msg.contains("00-broken.conflist: plugins[0].type: missing"),
            "{msg}"
        );
        let strict = load_dir(&d.0).unwrap_err();
        assert_eq!(strict.field(), Some("plugins[0].type"));
    }

    #[test]
    fn plugins_from_the_network_subdirectory_are_appended() {
        let d = Dir::new("subdir");
        d.write("10-net.conflist", &list_json("net", "ptp"));
        d.write("net/20-b.conf", r#"{"type":"tuning"}"#);
        d.write("net/10-a.conf", r#"{"type":"portmap"}"#);
        let l = load_network(&d.0, "net").unwrap();
        assert_eq!(l.plugin_types(), vec!["ptp", "portmap", "tuning"]);
        d.write(
            "10-net.conflist",
            r#"{"cniVersion":"1.0.0","name":"net","loadOnlyInlinedPlugins":true,"plugins":[{"type":"ptp"}]}"#,
        );
        assert_eq!(
            load_network(&d.0, "net").unwrap().plugin_types(),
            vec!["ptp"]
        );
        d.write("net/30-bad.conf", r#"{"notype":1}"#);
        d.write("10-net.conflist", &list_json("net", "ptp"));
        let e = load_network(&d.0, "net").unwrap_err();
        assert!(e.to_string().contains("30-bad.conf: type: missing"), "{e}");
    }

    #[test]
    fn missing_directory_is_an_error_naming_it() {
        let e = load_network(Path::new("/nonexistent/cni/net.d"), "x").unwrap_err();
        assert!(
            e.to_string().starts_with("/nonexistent/cni/net.d: listing"),
            "{e}"
        );
    }
}
