//! Shared fixtures for tuning's privileged tests: a private container netns
//! with a veth `eth0` (its peer in a second private netns), a per-test data
//! dir, the real plugin binary run the way a runtime runs it, and readers of
//! the link and sysctl state through iproute2 (independent of our code).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};

use cni::testing::{unique_name, veth_pair, Invocation, PluginRun, TestNetns};
use cni::CniVersion;
use serde_json::{json, Value};

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_tuning");

pub use tempfile::TempDir;

/// A directory removed on drop, named after the test's `tag`.
pub fn temp_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tuning-it-{tag}-"))
        .tempdir()
        .unwrap()
}

/// The plugin's dataDir inside a [`TempDir`].
pub struct DataDir(pub PathBuf);

/// Link attributes as `ip -j link show` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    pub mac: String,
    pub mtu: u64,
    pub promisc: bool,
    pub allmulti: bool,
    pub txqlen: u64,
}

pub struct World {
    pub ctr: TestNetns,
    pub peer: TestNetns,
    /// Holds `data/` (the dataDir, created by the plugin itself).
    pub root: TempDir,
    pub data: DataDir,
    pub container_id: String,
}

impl World {
    pub fn new() -> World {
        let ctr = TestNetns::new("tu");
        let peer = TestNetns::new("tp");
        let root = temp_dir("td");
        veth_pair(&ctr, "eth0", &peer, "veth0");
        World {
            ctr,
            peer,
            data: DataDir(root.path().join("data")),
            root,
            container_id: unique_name("c"),
        }
    }

    pub fn data_dir(&self) -> String {
        self.data.0.display().to_string()
    }

    pub fn netns_path(&self) -> String {
        self.ctr.path().display().to_string()
    }

    pub fn link(&self) -> LinkView {
        self.link_named("eth0")
    }

    pub fn link_named(&self, name: &str) -> LinkView {
        let out = self.ctr.exec(&["ip", "-j", "link", "show", name]);
        let v: Value = serde_json::from_str(&out).unwrap();
        let l = &v[0];
        let flags: Vec<&str> = l["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        LinkView {
            mac: l["address"].as_str().unwrap().to_string(),
            mtu: l["mtu"].as_u64().unwrap(),
            promisc: flags.contains(&"PROMISC"),
            allmulti: flags.contains(&"ALLMULTI"),
            // iproute2 omits txqlen when it is 0.
            txqlen: l["txqlen"].as_u64().unwrap_or(0),
        }
    }

    pub fn sysctl(&self, path: &str) -> String {
        self.ctr
            .exec(&["cat", &format!("/proc/sys/{path}")])
            .trim_end()
            .to_string()
    }

    pub fn set_sysctl(&self, path: &str, value: &str) {
        self.ctr.exec(&[
            "sh",
            "-c",
            &format!("printf %s '{value}' > /proc/sys/{path}"),
        ]);
    }

    pub fn invocation(&self, command: &str) -> Invocation {
        let mut inv = Invocation::new(command);
        inv.container_id = self.container_id.clone();
        inv.netns = self.netns_path();
        inv.ifname = "eth0".into();
        // Hermetic: never consult the host's /etc/cni/tuning/allowlist.conf.
        inv.extra_env.insert(
            "TUNING_ALLOWLIST_FILE".into(),
            self.root
                .path()
                .join("no-allowlist.conf")
                .display()
                .to_string(),
        );
        inv
    }

    /// The plugin's stdin: `name`, `type`, `cniVersion`, `dataDir`, a
    /// prevResult for `version`, and `fields` merged on top.
    pub fn conf(&self, version: CniVersion, fields: Value) -> String {
        let mut c = json!({
            "cniVersion": version.as_str(),
            "name": "tunnet",
            "type": "tuning",
            "dataDir": self.data_dir(),
            "prevResult": prev_result(version, &self.netns_path(), &self.link().mac),
        });
        for (k, v) in fields.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c.to_string()
    }

    pub fn run(&self, command: &str, conf: &str) -> PluginRun {
        self.invocation(command).run(Path::new(PLUGIN), conf)
    }

    pub fn backups(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.data.0)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// A prevResult as a main plugin of `version` would return it.
pub fn prev_result(version: CniVersion, sandbox: &str, mac: &str) -> Value {
    match version {
        CniVersion::V0_1_0 | CniVersion::V0_2_0 => json!({
            "cniVersion": version.as_str(),
            "ip4": {"ip": "10.1.2.3/24", "gateway": "10.1.2.1"},
            "dns": {}
        }),
        CniVersion::V0_3_0 | CniVersion::V0_3_1 | CniVersion::V0_4_0 => json!({
            "cniVersion": version.as_str(),
            "interfaces": [
                {"name": "veth0"},
                {"name": "eth0", "mac": mac, "sandbox": sandbox}
            ],
            "ips": [{"version": "4", "interface": 1, "address": "10.1.2.3/24", "gateway": "10.1.2.1"}],
            "dns": {}
        }),
        _ => json!({
            "cniVersion": version.as_str(),
            "interfaces": [
                {"name": "veth0"},
                {"name": "eth0", "mac": mac, "sandbox": sandbox}
            ],
            "ips": [{"interface": 1, "address": "10.1.2.3/24", "gateway": "10.1.2.1"}]
        }),
    }
}

pub fn assert_fails(run: &PluginRun, code: u64, needle: &str) -> Value {
    assert_ne!(run.code, 0, "expected failure: {}", run.stdout);
    let v = run.json();
    assert_eq!(v["code"], code, "{}", run.stdout);
    let text = format!(
        "{} {}",
        v["msg"].as_str().unwrap_or_default(),
        v["details"].as_str().unwrap_or_default()
    );
    assert!(text.contains(needle), "{needle:?} not in {text}");
    v
}
