//! CNI specification versions: parsing, ordering, the sets plugins declare, and
//! the gates the spec puts on CHECK, GC and STATUS. Owns no I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A CNI specification version this project knows about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    /// cniVersion 0.1.0.
    V0_1_0,
    /// cniVersion 0.2.0.
    V0_2_0,
    /// cniVersion 0.3.0.
    V0_3_0,
    /// cniVersion 0.3.1.
    V0_3_1,
    /// cniVersion 0.4.0.
    V0_4_0,
    /// cniVersion 1.0.0.
    V1_0_0,
    /// cniVersion 1.1.0.
    V1_1_0,
}

impl CniVersion {
    /// Every version, oldest first.
    pub const ALL: &'static [CniVersion] = &[
        CniVersion::V0_1_0,
        CniVersion::V0_2_0,
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];
    /// Versions whose results carry `interfaces` (what chained plugins need).
    pub const SINCE_0_3_0: &'static [CniVersion] = &[
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];
    /// The newest version; VERSION answers with it.
    pub const CURRENT: CniVersion = CniVersion::V1_1_0;

    /// The version as written in `cniVersion`.
    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_1_0 => "0.1.0",
            CniVersion::V0_2_0 => "0.2.0",
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// The result layout this version uses.
    pub fn layout(self) -> ResultLayout {
        match self {
            CniVersion::V0_1_0 | CniVersion::V0_2_0 => ResultLayout::Legacy,
            CniVersion::V0_3_0 | CniVersion::V0_3_1 | CniVersion::V0_4_0 => ResultLayout::V04,
            CniVersion::V1_0_0 | CniVersion::V1_1_0 => ResultLayout::V1,
        }
    }

    /// True when CHECK exists in this version (0.4.0 and later).
    pub fn allows_check(self) -> bool {
        self >= CniVersion::V0_4_0
    }

    /// True when GC and STATUS exist in this version (1.1.0 and later).
    pub fn allows_gc_and_status(self) -> bool {
        self >= CniVersion::V1_1_0
    }
}

/// The three result layouts of the spec's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultLayout {
    /// 0.1.0 / 0.2.0: `ip4`, `ip6`, `dns`.
    Legacy,
    /// 0.3.x / 0.4.0: `interfaces`, `ips` with `version`, `routes`, `dns`.
    V04,
    /// 1.x: as 0.4.0 without the per-IP `version`.
    V1,
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version string that is not one of the known versions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CNI version {0:?}")]
pub struct UnknownVersion(pub String);

impl FromStr for CniVersion {
    type Err = UnknownVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CniVersion::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVersion(s.to_string()))
    }
}

impl Serialize for CniVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CniVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a dotted version into numbers for ordering versions we do not know
/// (e.g. `cniVersions` entries newer than ours). `None` when it is not `a.b.c`.
pub fn parse_semver(s: &str) -> Option<(u64, u64, u64)> {
    let mut parts = s.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

/// Formats a version list the way error details show it: `["0.3.0" "0.3.1"]`.
pub fn format_list(versions: &[CniVersion]) -> String {
    let quoted: Vec<String> = versions
        .iter()
        .map(|v| format!("{:?}", v.as_str()))
        .collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_version() {
        for v in CniVersion::ALL {
            assert_eq!(v.as_str().parse::<CniVersion>(), Ok(*v));
        }
        assert!("9.9.9".parse::<CniVersion>().is_err());
        assert!("".parse::<CniVersion>().is_err());
    }

    #[test]
    fn orders_and_gates() {
        assert!(CniVersion::V0_3_1 < CniVersion::V0_4_0);
        assert!(!CniVersion::V0_3_1.allows_check());
        assert!(CniVersion::V0_4_0.allows_check());
        assert!(!CniVersion::V1_0_0.allows_gc_and_status());
        assert!(CniVersion::V1_1_0.allows_gc_and_status());
    }

    #[test]
    fn semver_parses_only_triples() {
        assert_eq!(parse_semver("2.0.0"), Some((2, 0, 0)));
        assert_eq!(parse_semver("1.0"), None);
        assert_eq!(parse_semver("a.b.c"), None);
    }

    #[test]
    fn formats_lists_like_the_reference() {
        assert_eq!(
            format_list(&[CniVersion::V0_1_0, CniVersion::V1_1_0]),
            r#"["0.1.0" "1.1.0"]"#
        );
    }
}
