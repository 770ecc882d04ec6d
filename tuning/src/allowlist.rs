//! The sysctl allowlist: a host file (`/etc/cni/tuning/allowlist.conf`) of
//! regular expressions, one per non-blank line, matched unanchored against
//! each sysctl key as written (before `IFNAME` substitution), as upstream
//! does (anchor entries with `^…$` yourself).
//!
//! Modes:
//! - file present: every key must match some line, else code 7;
//! - file missing, not required: everything is allowed (upstream behaviour);
//! - file missing, required: fail closed (code 7) whenever the configuration
//!   sets any sysctl. "Required" comes from the network config
//!   (`"sysctlAllowlist": {"required": true}`) *or* the host: the plugin's
//!   environment variable `TUNING_ALLOWLIST_REQUIRED=1|true`. A network
//!   config can only turn the requirement on, never off, because in some
//!   setups (Multus NetworkAttachmentDefinitions) users write it.
//!
//! The file's location is fixed in production. `TUNING_ALLOWLIST_FILE` in the
//! plugin's environment overrides it; it exists for tests (which cannot touch
//! /etc) and is read only by `main`, never from the network config.
//!
//! Parsing is pure (`Allowlist::parse`); `load` is the only file access.

use std::path::{Path, PathBuf};

use cni::CniError;
use regex::Regex;

use crate::config::SysctlSetting;

/// The default allowlist path, as upstream.
pub const DEFAULT_ALLOWLIST_FILE: &str = "/etc/cni/tuning/allowlist.conf";

/// Where the allowlist is and whether its absence is fatal (host side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowlistSource {
    pub path: PathBuf,
    pub required: bool,
}

impl Default for AllowlistSource {
    fn default() -> Self {
        AllowlistSource {
            path: PathBuf::from(DEFAULT_ALLOWLIST_FILE),
            required: false,
        }
    }
}

impl AllowlistSource {
    /// From the plugin process's environment variables (called by `main`).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> AllowlistSource {
        let mut s = AllowlistSource::default();
        if let Some(p) = get("TUNING_ALLOWLIST_FILE").filter(|p| !p.is_empty()) {
            s.path = PathBuf::from(p);
        }
        s.required = get("TUNING_ALLOWLIST_REQUIRED")
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        s
    }
}

/// The allowlist as loaded.
#[derive(Debug, Clone)]
pub enum Allowlist {
    /// No file: everything allowed unless required.
    Missing {
        path: PathBuf,
    },
    Present {
        path: PathBuf,
        patterns: Vec<Regex>,
    },
}

impl Allowlist {
    /// Parses the file's text; an invalid regex is code 7 naming the line.
    pub fn parse(path: &Path, text: &str) -> Result<Allowlist, CniError> {
        let mut patterns = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let re = Regex::new(line).map_err(|e| {
                CniError::invalid_config(format!(
                    "tuning: sysctl allowlist {} line {}: invalid regular expression {line:?}: {e}",
                    path.display(),
                    n + 1
                ))
            })?;
            patterns.push(re);
        }
        Ok(Allowlist::Present {
            path: path.to_path_buf(),
            patterns,
        })
    }

    /// Reads the file; a missing file is `Missing`, other errors are code 5.
    pub fn load(path: &Path) -> Result<Allowlist, CniError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Allowlist::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Allowlist::Missing {
                path: path.to_path_buf(),
            }),
            Err(e) => Err(CniError::io(format!(
                "tuning: reading sysctl allowlist {}: {e}",
                path.display()
            ))),
        }
    }

    /// Checks every sysctl; `required` is host OR config requirement.
    pub fn check(&self, sysctls: &[SysctlSetting], required: bool) -> Result<(), CniError> {
        match self {
            Allowlist::Missing { path } => {
                if required && !sysctls.is_empty() {
                    Err(CniError::invalid_config(format!(
                        "tuning: sysctl allowlist {} is required but missing; refusing to set sysctl {:?}",
                        path.display(),
                        sysctls[0].key
                    ))
                    .with_details("create the allowlist file (one regular expression per line) or drop the sysctls"))
                } else {
                    Ok(())
                }
            }
            Allowlist::Present { path, patterns } => {
                for s in sysctls {
                    if !patterns.iter().any(|re| re.is_match(&s.key)) {
                        let list: Vec<&str> = patterns.iter().map(|r| r.as_str()).collect();
                        return Err(CniError::invalid_config(format!(
                            "tuning: sysctl {} is not allowed. Only the following sysctls are allowed: {list:?}",
                            s.key
                        ))
                        .with_details(format!("allowlist {}", path.display())));
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use cni::ErrorCode;

    fn sysctls(keys: &[&str]) -> Vec<SysctlSetting> {
        let obj: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|k| (k.to_string(), serde_json::Value::from("1")))
            .collect();
        let json = serde_json::json!({ "sysctl": obj }).to_string();
        Config::parse(json.as_bytes(), "", "eth0").unwrap().sysctls
    }

    #[test]
    fn present_list_matches_unanchored_against_the_written_key() {
        let a = Allowlist::parse(
            Path::new("/a"),
            "^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]+$\n\n  somaxconn  \n",
        )
        .unwrap();
        assert!(a
            .check(
                &sysctls(&["net.ipv4.conf.IFNAME.arp_filter", "net.core.somaxconn"]),
                false
            )
            .is_ok());
        let e = a
            .check(&sysctls(&["net.ipv4.ip_forward"]), false)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
        assert!(e.msg.contains("net.ipv4.ip_forward is not allowed"), "{e}");
        // The written key is matched, not the substituted one.
        let e = a
            .check(&sysctls(&["net.ipv4.conf.eth0.arp_filter"]), true)
            .unwrap_err();
        assert!(e.msg.contains("not allowed"), "{e}");
    }

    #[test]
    fn empty_file_allows_nothing() {
        let a = Allowlist::parse(Path::new("/a"), "\n \n").unwrap();
        assert!(a.check(&sysctls(&["net.core.somaxconn"]), false).is_err());
        assert!(a.check(&[], false).is_ok());
    }

    #[test]
    fn missing_file_is_open_unless_required() {
        let a = Allowlist::load(Path::new("/nonexistent/tuning/allowlist.conf")).unwrap();
        assert!(matches!(a, Allowlist::Missing { .. }));
        assert!(a.check(&sysctls(&["net.core.somaxconn"]), false).is_ok());
        let e = a
            .check(&sysctls(&["net.core.somaxconn"]), true)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
        assert!(e.msg.contains("required but missing"), "{e}");
        // Required but nothing to check: fine.
        assert!(a.check(&[], true).is_ok());
    }

    #[test]
    fn invalid_regex_is_code_7_with_the_line() {
        let e = Allowlist::parse(Path::new("/a"), "ok\n(unclosed\n").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
        assert!(e.msg.contains("line 2"), "{e}");
    }

    #[test]
    fn source_from_env() {
        let env = |k: &str| match k {
            "TUNING_ALLOWLIST_FILE" => Some("/tmp/list".to_string()),
            "TUNING_ALLOWLIST_REQUIRED" => Some("TRUE".to_string()),
            _ => None,
        };
        let s = AllowlistSource::from_env(env);
        assert_eq!(s.path, PathBuf::from("/tmp/list"));
        assert!(s.required);
        assert_eq!(
            AllowlistSource::from_env(|_| None),
            AllowlistSource::default()
        );
    }
}
