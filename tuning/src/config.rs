//! Tuning's configuration: the raw stdin fields (serde) and their validation
//! into a typed [`Config`], with upstream's precedence (`mac` < CNI_ARGS
//! `MAC` < `runtimeConfig.mac` < `args.cni.mac`; other `args.cni` values
//! override their top-level counterparts; `args.cni.sysctl` is merged into
//! `sysctl`). Pure: no files, no kernel; every rejection is code 7 naming the
//! field.
//!
//! Keys are matched as Go matches them ([`cni::gojson`]: exact, then
//! case-insensitive; the last of several keys naming a field wins; `null` is
//! absent), so `"RuntimeConfig":{"Mac":…}` sets the MAC as it does upstream.
//! Deliberately stricter than Go: duplicate keys inside a `sysctl` object
//! are an error (Go keeps the last one, so a config that sets a sysctl twice
//! applies a value its author may not have meant, and DEL could restore the
//! wrong original), and so are two keys that normalise to the same
//! `/proc/sys` path (`net.core.somaxconn` and `net/core/somaxconn`).
//!
//! Deliberate differences from upstream, all stricter or more predictable:
//! - `promisc: false` written explicitly turns promiscuous mode off (and CHECK
//!   verifies it); an absent `promisc` leaves it alone and unchecked.
//! - MACs must be 6-byte unicast addresses and are compared lowercased.
//! - `dataDir` must be absolute.
//! - Sysctl values may be JSON strings or integers (upstream: strings only).
//! - No panic when `args.cni.sysctl` is given without a top-level `sysctl`.
//! - `sysctlAllowlist: {"required": true}` turns on fail-closed allowlisting
//!   (see `allowlist.rs`); it can only make the plugin stricter.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use cni::args::{CniArgs, K8S_KEYS};
use cni::sysctl::SysctlKey;
use cni::CniError;
use serde::Deserialize;
use serde_json::Value;

use crate::mac::Mac;

mod raw;

use raw::{decode_raw, SysctlEntries};

/// Where backups live unless `dataDir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";

/// A validated tuning configuration for one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub data_dir: PathBuf,
    /// In the order written (top-level first, then `args.cni.sysctl` keys
    /// that did not replace a top-level one).
    pub sysctls: Vec<SysctlSetting>,
    pub link: LinkSettings,
    /// Fail closed when the allowlist file is missing (`sysctlAllowlist`).
    pub allowlist_required: bool,
}

/// One sysctl to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlSetting {
    /// The key as the user wrote it (what the allowlist matches).
    pub key: String,
    /// Normalised path below `/proc/sys` (always `net/...`).
    pub path: SysctlKey,
    pub value: String,
}

/// Link attributes to set; `None` leaves an attribute alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkSettings {
    pub mac: Option<Mac>,
    pub promisc: Option<bool>,
    pub mtu: Option<u32>,
    pub allmulti: Option<bool>,
    pub tx_qlen: Option<u32>,
}

impl LinkSettings {
    pub fn is_empty(&self) -> bool {
        self == &LinkSettings::default()
    }
}

fn invalid(field: &str, why: impl fmt::Display) -> CniError {
    CniError::invalid_config(format!("tuning: invalid {field}: {why}"))
}

fn opt_bool(field: &str, v: Option<Value>) -> Result<Option<bool>, CniError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(other) => Err(invalid(field, format!("{other} is not a boolean"))),
    }
}

fn opt_u32(field: &str, v: Option<Value>) -> Result<Option<u32>, CniError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid(field, format!("{n} is not an integer in 0..=4294967295"))),
        Some(other) => Err(invalid(field, format!("{other} is not an integer"))),
    }
}

/// `None`/null/"" → unset; otherwise a valid MAC.
fn opt_mac(field: &str, v: Option<Value>) -> Result<Option<Option<Mac>>, CniError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(Some(None)),
        Some(Value::String(s)) => Mac::parse(&s).map(|m| Some(Some(m))).map_err(|e| {
            invalid(field, e).with_details("a MAC is six hex octets, e.g. 02:11:22:33:44:55")
        }),
        Some(other) => Err(invalid(field, format!("{other} is not a string"))),
    }
}

fn sysctl_value(field: &str, key: &str, v: Value) -> Result<String, CniError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        other => Err(invalid(
            &format!("{field} key {key:?}"),
            format!("value {other} is not a string"),
        )),
    }
}

fn sysctl_settings(
    field: &str,
    entries: SysctlEntries,
    ifname: &str,
) -> Result<Vec<SysctlSetting>, CniError> {
    let mut out: Vec<SysctlSetting> = Vec::new();
    for (key, value) in entries.0 {
        let path = SysctlKey::parse(&key, ifname).map_err(|e| {
            invalid(&format!("{field} key {key:?}"), e)
                .with_details("sysctl keys must name a file under /proc/sys/net/, e.g. net.ipv4.conf.IFNAME.arp_filter")
        })?;
        let value = sysctl_value(field, &key, value)?;
        if let Some(other) = out.iter().find(|s| s.path == path) {
            return Err(invalid(
                &format!("{field} key {key:?}"),
                format!("it names the same sysctl ({path}) as key {:?}", other.key),
            ));
        }
        out.push(SysctlSetting { key, path, value });
    }
    Ok(out)
}

/// `sysctlAllowlist`: absent, or `{"required": bool}`.
fn allowlist_required(v: Option<Value>) -> Result<bool, CniError> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Object(m)) => {
            const FIELDS: &[&str] = &["required"];
            if let Some(k) = m
                .keys()
                .find(|k| cni::gojson::field_for(k, FIELDS).is_none())
            {
                return Err(invalid(
                    "sysctlAllowlist",
                    format!("unknown key {k:?} (only \"required\" is accepted)"),
                ));
            }
            let required = cni::gojson::get(&m, "required").cloned();
            Ok(opt_bool("sysctlAllowlist.required", required)?.unwrap_or(false))
        }
        Some(other) => Err(invalid(
            "sysctlAllowlist",
            format!("{other} is not an object like {{\"required\": true}}"),
        )),
    }
}

fn data_dir(v: Option<Value>) -> Result<PathBuf, CniError> {
    match v {
        None | Some(Value::Null) => Ok(PathBuf::from(DEFAULT_DATA_DIR)),
        Some(Value::String(s)) if s.is_empty() => Ok(PathBuf::from(DEFAULT_DATA_DIR)),
        Some(Value::String(s)) => {
            let p = PathBuf::from(&s);
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(invalid("dataDir", format!("{s:?} is not an absolute path")))
            }
        }
        Some(other) => Err(invalid("dataDir", format!("{other} is not a string"))),
    }
}

/// Only `dataDir`: what DEL and GC need, so they work even when the rest of
/// the configuration no longer validates.
pub fn parse_data_dir(stdin: &[u8]) -> Result<PathBuf, CniError> {
    #[derive(Deserialize)]
    struct DataDirOnly {
        #[serde(rename = "dataDir", default)]
        data_dir: Option<Value>,
    }
    let raw: DataDirOnly = cni::gojson::from_slice(stdin)
        .map_err(|e| CniError::invalid_config(format!("tuning: invalid configuration: {e}")))?;
    data_dir(raw.data_dir)
}

impl Config {
    /// Validates stdin plus `CNI_ARGS` for the interface `ifname`.
    pub fn parse(stdin: &[u8], cni_args: &str, ifname: &str) -> Result<Config, CniError> {
        if ifname.contains('/') {
            return Err(CniError::invalid_env(format!(
                "tuning: interface name ({ifname}) contains an invalid character /"
            )));
        }
        let (top, raw) = decode_raw(stdin)?;
        let args = CniArgs::parse(cni_args)?;
        let mut known = vec!["MAC"];
        known.extend_from_slice(K8S_KEYS);
        args.check_known(&known)?;

        let mut link = LinkSettings {
            mac: opt_mac("mac", top.mac)?.flatten(),
            promisc: opt_bool("promisc", top.promisc)?,
            mtu: opt_u32("mtu", top.mtu)?.filter(|m| *m != 0),
            allmulti: opt_bool("allmulti", top.allmulti)?,
            tx_qlen: opt_u32("txQLen", top.tx_qlen)?,
        };
        if let Some(mac) = args.get("MAC").filter(|m| !m.is_empty()) {
            link.mac = Some(Mac::parse(mac).map_err(|e| invalid("CNI_ARGS MAC", e))?);
        }
        if let Some(rc) = raw.runtime_config {
            if let Some(Some(mac)) = opt_mac("runtimeConfig.mac", rc.mac)? {
                link.mac = Some(mac);
            }
        }
        let mut sysctls = sysctl_settings("sysctl", top.sysctl.unwrap_or_default(), ifname)?;
        if let Some(cni) = raw.args.and_then(|a| a.cni) {
            if let Some(mac) = opt_mac("args.cni.mac", cni.mac)? {
                link.mac = mac;
            }
            if let Some(p) = opt_bool("args.cni.promisc", cni.promisc)? {
                link.promisc = Some(p);
            }
            if let Some(m) = opt_u32("args.cni.mtu", cni.mtu)? {
                link.mtu = Some(m).filter(|m| *m != 0);
            }
            if let Some(a) = opt_bool("args.cni.allmulti", cni.allmulti)? {
                link.allmulti = Some(a);
            }
            if let Some(q) = opt_u32("args.cni.txQLen", cni.tx_qlen)? {
                link.tx_qlen = Some(q);
            }
            let extra = sysctl_settings("args.cni.sysctl", cni.sysctl.unwrap_or_default(), ifname)?;
            for setting in extra {
                match sysctls.iter_mut().find(|s| s.path == setting.path) {
                    Some(existing) => *existing = setting,
                    None => sysctls.push(setting),
                }
            }
        }
        Ok(Config {
            data_dir: data_dir(raw.data_dir)?,
            sysctls,
            link,
            allowlist_required: allowlist_required(raw.sysctl_allowlist)?,
        })
    }

    /// The sysctls as a map from written key to value (for messages/tests).
    pub fn sysctl_map(&self) -> BTreeMap<&str, &str> {
        self.sysctls
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::ErrorCode;

    fn parse(json: &str) -> Result<Config, CniError> {
        Config::parse(json.as_bytes(), "", "eth0")
    }

    fn rejected(json: &str, args: &str, ifname: &str) -> CniError {
        let e = Config::parse(json.as_bytes(), args, ifname).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{e}");
        e
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"name":"n","type":"tuning"}"#).unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(c.sysctls.is_empty());
        assert!(c.link.is_empty());
        assert!(!c.allowlist_required);
    }

    #[test]
    fn sysctl_keys_are_normalised_with_vlan_names() {
        let c = Config::parse(
            br#"{"sysctl":{"net.ipv4.conf.IFNAME.arp_filter":"1","net/core/somaxconn":512}}"#,
            "",
            "eth0.100",
        )
        .unwrap();
        assert_eq!(
            c.sysctls[0].path.as_str(),
            "net/ipv4/conf/eth0.100/arp_filter"
        );
        assert_eq!(c.sysctls[0].key, "net.ipv4.conf.IFNAME.arp_filter");
        assert_eq!(c.sysctls[1].path.as_str(), "net/core/somaxconn");
        assert_eq!(c.sysctls[1].value, "512");
    }

    #[test]
    fn bad_sysctl_keys_are_code_7_naming_the_key() {
        for key in [
            "kernel.hostname",
            "net/../kernel/hostname",
            "/proc/sys/net/core/somaxconn",
            "net..core",
            "",
            "vm.swappiness",
        ] {
            let json = serde_json::json!({"sysctl": {key: "1"}}).to_string();
            let e = rejected(&json, "", "eth0");
            assert!(e.msg.contains(&format!("{key:?}")), "{key}: {e}");
        }
        // An ifname of `..` cannot smuggle traversal through IFNAME.
        rejected(r#"{"sysctl":{"net.ipv4.conf.IFNAME.x":"1"}}"#, "", "..");
    }

    #[test]
    fn duplicate_and_conflicting_sysctl_keys_are_rejected() {
        let e = rejected(
            r#"{"sysctl":{"net.core.somaxconn":"1","net.core.somaxconn":"2"}}"#,
            "",
            "eth0",
        );
        assert!(e.msg.contains("duplicated"), "{e}");
        let e = rejected(
            r#"{"args":{"cni":{"sysctl":{"net.core.somaxconn":"1","net.core.somaxconn":"2"}}}}"#,
            "",
            "eth0",
        );
        assert!(e.msg.contains("duplicated"), "{e}");
        let e = rejected(
            r#"{"sysctl":{"net.core.somaxconn":"1","net/core/somaxconn":"2"}}"#,
            "",
            "eth0",
        );
        assert!(e.msg.contains("same sysctl"), "{e}");
        // Outside sysctl, Go's rule: the last key naming a field wins.
        let c = parse(r#"{"mtu":1,"MTU":2}"#).unwrap();
        assert_eq!(c.link.mtu, Some(2));
    }

    #[test]
    fn args_sysctl_merges_without_a_top_level_sysctl() {
        let c = parse(r#"{"args":{"cni":{"sysctl":{"net.core.somaxconn":"9"}}}}"#).unwrap();
        assert_eq!(
            c.sysctl_map(),
            BTreeMap::from([("net.core.somaxconn", "9")])
        );
        let c = parse(
            r#"{"sysctl":{"net.core.somaxconn":"1","net.ipv4.ip_forward":"1"},
                "args":{"cni":{"sysctl":{"net/core/somaxconn":"9","net.ipv4.tcp_syncookies":"0"}}}}"#,
        )
        .unwrap();
        let keys: Vec<(&str, &str)> = c
            .sysctls
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("net/core/somaxconn", "9"),
                ("net.ipv4.ip_forward", "1"),
                ("net.ipv4.tcp_syncookies", "0")
            ]
        );
    }

    #[test]
    fn mac_precedence() {
        let conf = |rc: &str, args: &str| format!(r#"{{"mac":"02:00:00:00:00:01"{rc}{args}}}"#);
        let mac = |json: &str, cni_args: &str| {
            Config::parse(json.as_bytes(), cni_args, "eth0")
                .unwrap()
                .link
                .mac
                .unwrap()
                .to_string()
        };
        assert_eq!(mac(&conf("", ""), ""), "02:00:00:00:00:01");
        assert_eq!(
            mac(&conf("", ""), "IgnoreUnknown=1;MAC=02:00:00:00:00:02"),
            "02:00:00:00:00:02"
        );
        let rc = r#","runtimeConfig":{"mac":"02:00:00:00:00:03"}"#;
        assert_eq!(
            mac(&conf(rc, ""), "MAC=02:00:00:00:00:02"),
            "02:00:00:00:00:03"
        );
        let args = r#","args":{"cni":{"mac":"02:00:00:00:00:04"}}"#;
        assert_eq!(
            mac(&conf(rc, args), "MAC=02:00:00:00:00:02"),
            "02:00:00:00:00:04"
        );
        // Upper case and hyphens are accepted and normalised.
        assert_eq!(
            mac(r#"{"mac":"02-AB-00-00-00-01"}"#, ""),
            "02:ab:00:00:00:01"
        );
    }

    #[test]
    fn args_override_link_settings() {
        let c = parse(
            r#"{"promisc":true,"mtu":1400,"allmulti":false,"txQLen":10,
                "args":{"cni":{"promisc":false,"mtu":1300,"allmulti":true,"txQLen":0}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.link,
            LinkSettings {
                mac: None,
                promisc: Some(false),
                mtu: Some(1300),
                allmulti: Some(true),
                tx_qlen: Some(0)
            }
        );
        // mtu 0 means "unchanged", as upstream.
        assert_eq!(parse(r#"{"mtu":0}"#).unwrap().link.mtu, None);
    }

    #[test]
    fn invalid_fields_are_code_7_naming_the_field() {
        for (json, field) in [
            (r#"{"mac":"zz"}"#, "mac"),
            (r#"{"mac":"01:00:5e:00:00:01"}"#, "mac"),
            (r#"{"mac":"00:00:00:00:00:00"}"#, "mac"),
            (r#"{"mac":7}"#, "mac"),
            (r#"{"runtimeConfig":{"mac":"nope"}}"#, "runtimeConfig.mac"),
            (r#"{"args":{"cni":{"mac":"nope"}}}"#, "args.cni.mac"),
            (r#"{"mtu":-1}"#, "mtu"),
            (r#"{"mtu":"1500"}"#, "mtu"),
            (r#"{"txQLen":1.5}"#, "txQLen"),
            (r#"{"promisc":"yes"}"#, "promisc"),
            (r#"{"allmulti":1}"#, "allmulti"),
            (r#"{"args":{"cni":{"mtu":true}}}"#, "args.cni.mtu"),
            (r#"{"dataDir":"relative/dir"}"#, "dataDir"),
            (r#"{"dataDir":5}"#, "dataDir"),
            (
                r#"{"sysctl":{"net.core.somaxconn":true}}"#,
                "net.core.somaxconn",
            ),
            (r#"{"sysctl":["net.core.somaxconn"]}"#, "sysctl"),
            (r#"{"sysctlAllowlist":true}"#, "sysctlAllowlist"),
            (
                r#"{"sysctlAllowlist":{"path":"/tmp/x"}}"#,
                "sysctlAllowlist",
            ),
        ] {
            let e = rejected(json, "", "eth0");
            assert!(
                e.msg.contains(field) || e.msg.contains("expected"),
                "{json}: {e}"
            );
        }
        let e = rejected("{}", "MAC=nope", "eth0");
        assert!(e.msg.contains("CNI_ARGS MAC"), "{e}");
    }

    #[test]
    fn every_field_is_read_in_go_and_mixed_casing() {
        let lower = r#"{"dataDir":"/tmp/tuning-x","sysctl":{"net.core.somaxconn":"512"},
            "mac":"02:00:00:00:00:01","promisc":true,"mtu":1400,"allmulti":true,"txQLen":100,
            "sysctlAllowlist":{"required":true},
            "runtimeConfig":{"mac":"02:00:00:00:00:02"},
            "args":{"cni":{"sysctl":{"net.ipv4.ip_forward":"1"},"promisc":false,"mtu":1300,
                "allmulti":false,"txQLen":50}}}"#;
        let go = r#"{"DataDir":"/tmp/tuning-x","Sysctl":{"net.core.somaxconn":"512"},
            "Mac":"02:00:00:00:00:01","Promisc":true,"MTU":1400,"AllMulti":true,"TxQLen":100,
            "SysctlAllowlist":{"Required":true},
            "RuntimeConfig":{"Mac":"02:00:00:00:00:02"},
            "Args":{"CNI":{"Sysctl":{"net.ipv4.ip_forward":"1"},"Promisc":false,"Mtu":1300,
                "Allmulti":false,"TXQLEN":50}}}"#;
        let mixed = r#"{"dAtAdIr":"/tmp/tuning-x","SYSCTL":{"net.core.somaxconn":"512"},
            "mAc":"02:00:00:00:00:01","pRoMiSc":true,"mTu":1400,"ALLMULTI":true,"txqlen":100,
            "sysctlallowlist":{"REQUIRED":true},
            "runtimeconfig":{"MAC":"02:00:00:00:00:02"},
            "aRgS":{"cNi":{"sYsCtL":{"net.ipv4.ip_forward":"1"},"PROMISC":false,"mtU":1300,
                "allMulti":false,"TxQlEn":50}}}"#;
        let want = parse(lower).unwrap();
        assert_eq!(want.data_dir, PathBuf::from("/tmp/tuning-x"));
        assert_eq!(want.sysctls.len(), 2);
        assert!(want.allowlist_required);
        assert_eq!(
            want.link,
            LinkSettings {
                mac: Some(Mac::parse("02:00:00:00:00:02").unwrap()),
                promisc: Some(false),
                mtu: Some(1300),
                allmulti: Some(false),
                tx_qlen: Some(50)
            }
        );
        assert_eq!(parse(go).unwrap(), want);
        assert_eq!(parse(mixed).unwrap(), want);
        // The upstream Go suites send a top-level "RuntimeConfig".
        let c = parse(r#"{"RuntimeConfig":{"mac":"02:00:00:00:00:03"}}"#).unwrap();
        assert_eq!(c.link.mac.unwrap().to_string(), "02:00:00:00:00:03");
        // null is absent; sysctl keys (map keys) stay exact.
        let c = parse(r#"{"mac":null,"mtu":null,"sysctl":null,"runtimeConfig":null}"#).unwrap();
        assert!(c.link.is_empty() && c.sysctls.is_empty());
        assert!(rejected(r#"{"sysctlAllowlist":{"Path":"/x"}}"#, "", "eth0")
            .msg
            .contains("unknown key \"Path\""));
    }

    #[test]
    fn cni_args_unknown_keys_need_ignore_unknown() {
        let e = Config::parse(b"{}", "FOO=1", "eth0").unwrap_err();
        assert!(e.msg.contains("unknown args"), "{e}");
        assert!(Config::parse(b"{}", "IgnoreUnknown=1;FOO=1", "eth0").is_ok());
        assert!(Config::parse(b"{}", "K8S_POD_NAME=x", "eth0").is_ok());
    }

    #[test]
    fn ifname_with_slash_is_rejected() {
        let e = Config::parse(b"{}", "", "eth/0").unwrap_err();
        assert!(e.msg.contains("invalid character /"), "{e}");
    }

    #[test]
    fn allowlist_required_flag() {
        assert!(
            parse(r#"{"sysctlAllowlist":{"required":true}}"#)
                .unwrap()
                .allowlist_required
        );
        assert!(
            !parse(r#"{"sysctlAllowlist":{}}"#)
                .unwrap()
                .allowlist_required
        );
    }

    #[test]
    fn data_dir_only_parse_ignores_other_errors() {
        assert_eq!(
            parse_data_dir(br#"{"mac":"bad","dataDir":"/tmp/x"}"#).unwrap(),
            PathBuf::from("/tmp/x")
        );
        assert!(parse_data_dir(br#"{"dataDir":"x"}"#).is_err());
    }
}
