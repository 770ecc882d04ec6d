//! The result cache, file-compatible with libcni's `cniCacheV1` layout:
//! `<cacheDir>/results/<network>-<containerID>-<ifname>`, directories 0700,
//! files 0600, `config` = base64 of the conflist bytes, plus cniArgs,
//! capabilityArgs, netns and the final ADD result. Files written by
//! containerd/CRI-O are readable here and ours by them. Writes are atomic
//! (temp file + fsync + rename), so a crash never leaves a 0-byte file.
//! Owns only file I/O under the cache directory; never runs plugins.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// libcni's default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";
/// The `kind` of the current cache format.
pub const KIND_V1: &str = "cniCacheV1";

/// One cached attachment (what ADD stored).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    /// `CNI_CONTAINERID` of the attachment.
    pub container_id: String,
    /// The network name.
    pub network: String,
    /// `CNI_IFNAME` of the attachment.
    pub ifname: String,
    /// The conflist bytes used for ADD.
    pub config: Vec<u8>,
    /// `CNI_NETNS` given to ADD.
    pub netns: String,
    /// `CNI_ARGS` pairs given to ADD, in order.
    pub cni_args: Vec<(String, String)>,
    /// The capability arguments given to ADD.
    pub capability_args: Map<String, Value>,
    /// The final ADD result, as the last plugin printed it.
    pub result: Option<Value>,
    /// True when the file held a bare result (pre-cniCacheV1 libcni).
    pub legacy: bool,
}

/// The on-disk shape; field order is libcni's.
#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    kind: String,
    #[serde(rename = "containerId", default)]
    container_id: String,
    #[serde(default, with = "go_bytes")]
    config: Vec<u8>,
    #[serde(rename = "ifName", default)]
    ifname: String,
    #[serde(rename = "networkName", default)]
    network: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    netns: String,
    #[serde(
        rename = "cniArgs",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    cni_args: Vec<(String, String)>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Map::is_empty",
        deserialize_with = "null_as_default"
    )]
    capability_args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Go encodes `[]byte` as standard padded base64 (`null` for nil).
mod go_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Vec::new()),
            Some(s) => base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A cache file that exists but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading, writing, listing or removing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is neither a `cniCacheV1` entry nor a bare result.
    #[error("{}: not a cache file: {msg}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// The key would not name one file under `results/`.
    #[error("cache file name needs a network name ({network:?}), container ID ({container_id:?}) and interface name ({ifname:?}) without '/'")]
    BadKey {
        /// The network name.
        network: String,
        /// The container ID.
        container_id: String,
        /// The interface name.
        ifname: String,
    },
}

/// The result cache rooted at a cache directory (`/var/lib/cni` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultCache {
    dir: PathBuf,
}

impl Default for ResultCache {
    fn default() -> Self {
        ResultCache::new(DEFAULT_CACHE_DIR)
    }
}

impl ResultCache {
    /// The cache rooted at `dir` (entries in `dir/results/`).
    pub fn new(dir: impl Into<PathBuf>) -> ResultCache {
        ResultCache { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the result files are: `<dir>/results`.
    pub fn results_dir(&self) -> PathBuf {
        self.dir.join("results")
    }

    /// `<dir>/results/<network>-<containerID>-<ifname>`.
    pub fn path(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<PathBuf, CacheError> {
        let bad = |s: &str| s.is_empty() || s.contains('/') || s == "." || s == "..";
        if bad(network) || bad(container_id) || bad(ifname) {
            return Err(CacheError::BadKey {
                network: network.into(),
                container_id: container_id.into(),
                ifname: ifname.into(),
            });
        }
        Ok(self
            .results_dir()
            .join(format!("{network}-{container_id}-{ifname}")))
    }

    /// Writes `entry` atomically with libcni's permissions.
    pub fn write(&self, entry: &CacheEntry) -> Result<PathBuf, CacheError> {
        let path = self.path(&entry.network, &entry.container_id, &entry.ifname)?;
        let bytes = encode(entry).map_err(|e| CacheError::Corrupt {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| CacheError::Io { path: p, source }
        };
        let dir = self.results_dir();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io(&dir))?;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let tmp = dir.join(format!(
            ".{}.tmp-{}-{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(&tmp))?;
            f.write_all(&bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
            // Make the rename durable (best effort).
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(path.clone())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// The entry for one attachment; `None` when there is no file. A file
    /// that is not `cniCacheV1` but is JSON is read as a bare legacy result.
    pub fn read(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CacheEntry>, CacheError> {
        let path = self.path(network, container_id, ifname)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::Io { path, source }),
        };
        decode(&bytes, &path, Some((network, container_id, ifname))).map(Some)
    }

    /// Removes one attachment's file; a missing file is fine.
    pub fn remove(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<(), CacheError> {
        let path = self.path(network, container_id, ifname)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CacheError::Io { path, source }),
        }
    }

    /// Every `cniCacheV1` entry (sorted by file name), like libcni's
    /// GetCachedAttachments: unreadable files, legacy results and entries
    /// without network or ifname are skipped.
    pub fn attachments(&self) -> Result<Vec<CacheEntry>, CacheError> {
        let dir = self.results_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(CacheError::Io { path: dir, source }),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .collect();
        paths.sort();
        Ok(paths
            .iter()
            .filter_map(|p| {
                let bytes = std::fs::read(p).ok()?;
                let entry = decode(&bytes, p, None).ok()?;
                (!entry.legacy && !entry.network.is_empty() && !entry.ifname.is_empty())
                    .then_some(entry)
            })
            .collect())
    }
}

/// The file bytes for `entry` (compact JSON, libcni's key order).
pub fn encode(entry: &CacheEntry) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&CacheFile {
        kind: KIND_V1.into(),
        container_id: entry.container_id.clone(),
        config: entry.config.clone(),
        ifname: entry.ifname.clone(),
        network: entry.network.clone(),
        netns: entry.netns.clone(),
        cni_args: entry.cni_args.clone(),
        capability_args: entry.capability_args.clone(),
        result: entry.result.clone(),
    })
}

/// Parses cache file bytes. `key` (network, container, ifname) fills in a
/// legacy bare result's identity.
pub fn decode(
    bytes: &[u8],
    path: &Path,
    key: Option<(&str, &str, &str)>,
) -> Result<CacheEntry, CacheError> {
    let corrupt = |msg: String| CacheError::Corrupt {
        path: path.to_path_buf(),
        msg,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(corrupt("the file is empty".into()));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    // libcni's cache struct is read by Go: `Kind`, `ContainerID`, … match too.
    let is_v1 = value
        .as_object()
        .and_then(|o| cni::gojson::get(o, "kind"))
        .and_then(Value::as_str)
        == Some(KIND_V1);
    if is_v1 {
        if let Ok(f) = cni::gojson::from_slice::<CacheFile>(bytes) {
            return Ok(CacheEntry {
                container_id: f.container_id,
                network: f.network,
                ifname: f.ifname,
                config: f.config,
                netns: f.netns,
                cni_args: f.cni_args,
                capability_args: f.capability_args,
                result: f.result,
                legacy: false,
            });
        }
    }
    // libcni: anything else is a bare result from before cniCacheV1.
    if !value.is_object() {
        return Err(corrupt(
            "neither a cniCacheV1 entry nor a result object".into(),
        ));
    }
    let (network, container_id, ifname) = key.unwrap_or(("", "", ""));
    Ok(CacheEntry {
        container_id: container_id.into(),
        network: network.into(),
        ifname: ifname.into(),
        config: Vec::new(),
        netns: String::new(),
        cni_args: Vec::new(),
        capability_args: Map::new(),
        result: Some(value),
        legacy: true,
    })
}

/// `config` of an entry as text (for messages and tests).
pub fn config_text(entry: &CacheEntry) -> String {
    String::from_utf8_lossy(&entry.config).into_owned()
}

/// Base64 as libcni writes `config` (exposed for fixtures).
pub fn go_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use crate::test_dir::Dir;

    fn entry() -> CacheEntry {
        let mut caps = Map::new();
        caps.insert("mac".into(), "c2:11:22:33:44:55".into());
        CacheEntry {
            container_id: "ctr9".into(),
            network: "lcnet".into(),
            ifname: "eth0".into(),
            config: br#"{"cniVersion":"1.1.0","name":"lcnet","plugins":[{"type":"ptp"}]}"#.to_vec(),
            netns: "/var/run/netns/x".into(),
            cni_args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAME".into(), "p".into()),
            ],
            capability_args: caps,
            result: Some(
                serde_json::json!({"cniVersion":"1.1.0","ips":[{"address":"10.1.0.2/24"}]}),
            ),
            legacy: false,
        }
    }

    #[test]
    fn round_trip_with_libcni_permissions_and_key_order() {
        let d = Dir::new("rt");
        let cache = ResultCache::new(&d.0);
        let path = cache.write(&entry()).unwrap();
        assert_eq!(path, d.0.join("results/lcnet-ctr9-eth0"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&d.0.join("results")), 0o700);
        let text = std::fs::read_to_string(&path).unwrap();
        let keys = [
            "\"kind\"",
            "\"containerId\"",
            "\"config\"",
            "\"ifName\"",
            "\"networkName\"",
            "\"netns\"",
            "\"cniArgs\"",
            "\"capabilityArgs\"",
            "\"result\"",
        ];
        let positions: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.contains(&format!("\"config\":\"{}\"", go_base64(&entry().config))));
        assert!(text.contains(r#""cniArgs":[["IgnoreUnknown","1"],["K8S_POD_NAME","p"]]"#));
        assert_eq!(cache.read("lcnet", "ctr9", "eth0").unwrap(), Some(entry()));
        // no temp files left behind
        let names: Vec<_> = std::fs::read_dir(d.0.join("results")).unwrap().collect();
        assert_eq!(names.len(), 1);
        cache.remove("lcnet", "ctr9", "eth0").unwrap();
        assert_eq!(cache.read("lcnet", "ctr9", "eth0").unwrap(), None);
        cache.remove("lcnet", "ctr9", "eth0").unwrap();
    }

    #[test]
    fn empty_optional_fields_are_omitted_like_go_omitempty() {
        let mut e = entry();
        e.netns.clear();
        e.cni_args.clear();
        e.capability_args.clear();
        e.result = None;
        let text = String::from_utf8(encode(&e).unwrap()).unwrap();
        for k in ["netns", "cniArgs", "capabilityArgs", "result"] {
            assert!(!text.contains(k), "{text}");
        }
    }

    /// A file as libcni writes it (anchors §7.6: ptp → tuning(mac) → portmap),
    /// written by hand: Go key order, base64 `config`, nulls where Go has nil.
    #[test]
    fn reads_a_libcni_written_file() {
        let conflist = r#"{"cniVersion":"1.1.0","name":"lcnet","plugins":[{"type":"ptp","ipam":{"type":"host-local","subnet":"10.77.0.0/24"}},{"type":"tuning","capabilities":{"mac":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}"#;
        let file = format!(
            r#"{{"kind":"cniCacheV1","containerId":"ctr9","config":"{}","ifName":"eth0","networkName":"lcnet","netns":"/var/run/netns/lcns","cniArgs":[["IgnoreUnknown","1"],["K8S_POD_NAME","p"]],"capabilityArgs":{{"mac":"c2:b0:57:49:47:f1","portMappings":[{{"containerPort":80,"hostPort":8080,"protocol":"tcp"}}]}},"result":{{"cniVersion":"1.1.0","interfaces":[{{"mac":"c2:b0:57:49:47:f1","name":"veth5e2a4f2b"}},{{"mac":"c2:b0:57:49:47:f1","name":"eth0","sandbox":"/var/run/netns/lcns"}}],"ips":[{{"address":"10.77.0.2/24","gateway":"10.77.0.1","interface":1}}]}}}}"#,
            go_base64(conflist.as_bytes())
        );
        let d = Dir::new("libcni");
        std::fs::create_dir_all(d.0.join("results")).unwrap();
        std::fs::write(d.0.join("results/lcnet-ctr9-eth0"), file).unwrap();
        let cache = ResultCache::new(&d.0);
        let e = cache.read("lcnet", "ctr9", "eth0").unwrap().unwrap();
        assert!(!e.legacy);
        assert_eq!(config_text(&e), conflist);
        assert_eq!(e.netns, "/var/run/netns/lcns");
        assert_eq!(e.cni_args[1], ("K8S_POD_NAME".into(), "p".into()));
        assert_eq!(e.capability_args["portMappings"][0]["hostPort"], 8080);
        assert_eq!(
            e.result.as_ref().unwrap()["ips"][0]["address"],
            "10.77.0.2/24"
        );
        assert_eq!(cache.attachments().unwrap(), vec![e]);

        // Go writes null for nil slices/maps when not omitted by older versions
        let nulls = r#"{"kind":"cniCacheV1","containerId":"c","config":null,"ifName":"eth1","networkName":"n","cniArgs":null,"capabilityArgs":null}"#;
        let e = decode(nulls.as_bytes(), Path::new("/x"), None).unwrap();
        assert!(e.config.is_empty() && e.cni_args.is_empty() && e.result.is_none());
    }

    #[test]
    fn go_cased_keys_and_nulls_read_as_go_reads_them() {
        let file = format!(
            r#"{{"Kind":"cniCacheV1","ContainerID":"ctr9","Config":"{}","IfName":"eth0","NetworkName":"lcnet","Netns":null,"CniArgs":null,"CapabilityArgs":{{"portMappings":[]}},"Result":null}}"#,
            go_base64(b"{}")
        );
        let e = decode(file.as_bytes(), Path::new("/x"), None).unwrap();
        assert!(!e.legacy, "a Go-cased cniCacheV1 file is not a bare result");
        assert_eq!(
            (
                e.container_id.as_str(),
                e.ifname.as_str(),
                e.network.as_str()
            ),
            ("ctr9", "eth0", "lcnet")
        );
        assert_eq!(e.config, b"{}");
        assert!(e.netns.is_empty() && e.cni_args.is_empty() && e.result.is_none());
        assert!(e.capability_args.contains_key("portMappings"));
    }

    #[test]
    fn a_bare_result_is_a_legacy_entry_and_garbage_is_an_error() {
        let d = Dir::new("legacy");
        let cache = ResultCache::new(&d.0);
        std::fs::create_dir_all(cache.results_dir()).unwrap();
        std::fs::write(
            cache.results_dir().join("n-c-eth0"),
            r#"{"cniVersion":"0.4.0","ips":[]}"#,
        )
        .unwrap();
        let e = cache.read("n", "c", "eth0").unwrap().unwrap();
        assert!(e.legacy);
        assert_eq!(e.result.unwrap()["cniVersion"], "0.4.0");
        assert!(
            cache.attachments().unwrap().is_empty(),
            "legacy entries are not attachments"
        );

        std::fs::write(cache.results_dir().join("n-c-eth0"), "").unwrap();
        let err = cache.read("n", "c", "eth0").unwrap_err();
        assert!(
            err.to_string()
                .ends_with("n-c-eth0: not a cache file: the file is empty"),
            "{err}"
        );
        std::fs::write(cache.results_dir().join("n-c-eth0"), "{\"kind\":").unwrap();
        assert!(matches!(
            cache.read("n", "c", "eth0"),
            Err(CacheError::Corrupt { .. })
        ));
    }

    #[test]
    fn attachments_skip_temp_broken_and_incomplete_files() {
        let d = Dir::new("scan");
        let cache = ResultCache::new(&d.0);
        cache.write(&entry()).unwrap();
        let mut other = entry();
        other.container_id = "ctr1".into();
        other.network = "other".into();
        cache.write(&other).unwrap();
        let r = cache.results_dir();
        std::fs::write(r.join(".lcnet-x-eth0.tmp-1-1"), b"{").unwrap();
        std::fs::write(r.join("broken-a-eth0"), b"").unwrap();
        std::fs::write(
            r.join("noif-a-eth0"),
            br#"{"kind":"cniCacheV1","containerId":"a","networkName":"noif"}"#,
        )
        .unwrap();
        let found: Vec<String> = cache
            .attachments()
            .unwrap()
            .iter()
            .map(|e| e.network.clone())
            .collect();
        assert_eq!(found, vec!["lcnet", "other"]);
        assert!(ResultCache::new(d.0.join("missing"))
            .attachments()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn keys_with_slashes_are_refused() {
        let cache = ResultCache::default();
        assert_eq!(
            cache.path("net", "ctr", "eth0").unwrap(),
            PathBuf::from("/var/lib/cni/results/net-ctr-eth0")
        );
        assert!(matches!(
            cache.path("net", "../../etc", "eth0"),
            Err(CacheError::BadKey { .. })
        ));
        assert!(cache.path("", "c", "eth0").is_err());
    }

    #[test]
    fn an_unwritable_cache_dir_is_an_error_naming_the_path() {
        let d = Dir::new("ro");
        std::fs::write(&d.0, b"a file, not a directory").unwrap();
        let err = ResultCache::new(&d.0).write(&entry()).unwrap_err();
        assert!(
            err.to_string().contains(&d.0.display().to_string()),
            "{err}"
        );
        let _ = std::fs::remove_file(&d.0);
    }
}
