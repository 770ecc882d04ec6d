//! `CNI_ARGS` (`K=V;K=V`) parsing with the `IgnoreUnknown` convention, the
//! Kubernetes `K8S_POD_*` keys, and the owner tag plugins put on what they
//! create. Pure: takes the string, never reads the environment.

use crate::error::CniError;

/// Keys every plugin accepts without complaint (set by kubelet runtimes).
pub const K8S_KEYS: &[&str] = &[
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

/// Parsed `CNI_ARGS`, pairs in their original order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Splits on `;` then `=`; each pair needs exactly one `=`.
    pub fn parse(raw: &str) -> Result<CniArgs, CniError> {
        let mut pairs = Vec::new();
        for item in raw.split(';') {
            if item.is_empty() {
                continue;
            }
            let mut kv = item.split('=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(v), None) if !k.is_empty() => {
                    pairs.push((k.to_string(), v.to_string()))
                }
                _ => {
                    return Err(
                        CniError::invalid_env(format!("CNI_ARGS: invalid pair {item:?}"))
                            .with_details("CNI_ARGS must be KEY=VALUE pairs separated by ';'"),
                    )
                }
            }
        }
        Ok(CniArgs { pairs })
    }

    /// The value of `key` (the last one when it is given twice).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every `KEY=VALUE` pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// `IgnoreUnknown=1|true` (any case).
    pub fn ignore_unknown(&self) -> bool {
        self.get("IgnoreUnknown")
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    }

    /// Fails (code 4, the variable is named) with `CNI_ARGS: unknown args
    /// [...]` when a key is neither in `known` nor `IgnoreUnknown`, unless
    /// `IgnoreUnknown` is set. As in Go's LoadArgs, `K8S_POD_*` keys are
    /// unknown unless listed (pass [`K8S_KEYS`] in `known` to accept them);
    /// Kubernetes runtimes send `IgnoreUnknown=1` with them.
    pub fn check_known(&self, known: &[&str]) -> Result<(), CniError> {
        if self.ignore_unknown() {
            return Ok(());
        }
        let unknown: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "IgnoreUnknown" && !known.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(
                CniError::invalid_env(format!("CNI_ARGS: unknown args {unknown:?}")).with_details(
                    "set IgnoreUnknown=1 in CNI_ARGS to ignore keys a plugin does not use",
                ),
            )
        }
    }

    /// `K8S_POD_NAME`, when set.
    pub fn k8s_pod_name(&self) -> Option<&str> {
        self.get("K8S_POD_NAME")
    }

    /// `K8S_POD_NAMESPACE`, when set.
    pub fn k8s_pod_namespace(&self) -> Option<&str> {
        self.get("K8S_POD_NAMESPACE")
    }

    /// `K8S_POD_UID`, when set.
    pub fn k8s_pod_uid(&self) -> Option<&str> {
        self.get("K8S_POD_UID")
    }

    /// `K8S_POD_INFRA_CONTAINER_ID`, when set.
    pub fn k8s_pod_infra_container_id(&self) -> Option<&str> {
        self.get("K8S_POD_INFRA_CONTAINER_ID")
    }

    /// A boolean value the way Go's LoadArgs reads one: `1`, `true`, `0`,
    /// `false` in any case; `Ok(None)` when the key is absent.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v == "1" || v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v == "0" || v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(CniError::invalid_env(format!(
                "CNI_ARGS: {key}={v:?} is not a boolean"
            ))
            .with_details("use 1, true, 0 or false")),
        }
    }
}

/// What a plugin writes on every kernel object it creates so DEL, CHECK and GC
/// find it without runtime state: network name, container ID and ifname.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// The network's `name`.
    pub network: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
}

impl Owner {
    /// The owner of one attachment.
    pub fn new(network: &str, container_id: &str, ifname: &str) -> Owner {
        Owner {
            network: network.to_string(),
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
        }
    }

    /// `network/containerID/ifname`: none of the three may contain `/`
    /// (skel validates IDs and ifnames; network names follow the ID rules).
    pub fn tag(&self) -> String {
        format!("{}/{}/{}", self.network, self.container_id, self.ifname)
    }

    /// Reads back a [`Owner::tag`]; `None` for anything else.
    pub fn parse_tag(tag: &str) -> Option<Owner> {
        let mut it = tag.splitn(3, '/');
        let (n, c, i) = (it.next()?, it.next()?, it.next()?);
        if n.is_empty() || c.is_empty() || i.is_empty() || i.contains('/') {
            return None;
        }
        Some(Owner::new(n, c, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_rejects_bad_ones() {
        let a = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=web;MAC=aa:bb:cc:dd:ee:ff").unwrap();
        assert_eq!(a.get("K8S_POD_NAME"), Some("web"));
        assert_eq!(a.k8s_pod_name(), Some("web"));
        assert_eq!(a.get("MAC"), Some("aa:bb:cc:dd:ee:ff"));
        assert!(a.ignore_unknown());
        assert!(CniArgs::parse("a=b=c").is_err());
        assert!(CniArgs::parse("novalue").is_err());
        assert!(CniArgs::parse("").unwrap().pairs().is_empty());
    }

    #[test]
    fn unknown_keys_need_ignore_unknown() {
        let a = CniArgs::parse("K8S_POD_NAME=p;FOO=x").unwrap();
        let e = a.check_known(&["MAC"]).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidEnvironment);
        assert_eq!(
            e.msg,
            r#"CNI_ARGS: unknown args ["K8S_POD_NAME=p", "FOO=x"]"#
        );
        let mut known = K8S_KEYS.to_vec();
        known.push("FOO");
        assert!(a.check_known(&known).is_ok());
        assert!(CniArgs::parse("IgnoreUnknown=TRUE;FOO=x")
            .unwrap()
            .check_known(&["MAC"])
            .is_ok());
        assert!(CniArgs::parse("IgnoreUnknown=0;FOO=x")
            .unwrap()
            .check_known(&["MAC"])
            .is_err());
        assert!(CniArgs::parse("MAC=aa")
            .unwrap()
            .check_known(&["MAC"])
            .is_ok());
    }

    #[test]
    fn kubernetes_keys_and_booleans() {
        let a = CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0;\
             K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1;FLAG=TRUE;OFF=0;BAD=yes",
        )
        .unwrap();
        assert_eq!(a.k8s_pod_namespace(), Some("ns"));
        assert_eq!(a.k8s_pod_name(), Some("web-0"));
        assert_eq!(a.k8s_pod_infra_container_id(), Some("abc123"));
        assert_eq!(a.k8s_pod_uid(), Some("u-1"));
        assert_eq!(a.get_bool("FLAG").unwrap(), Some(true));
        assert_eq!(a.get_bool("OFF").unwrap(), Some(false));
        assert_eq!(a.get_bool("NONE").unwrap(), None);
        let e = a.get_bool("BAD").unwrap_err();
        assert!(e.msg.contains("CNI_ARGS"), "{}", e.msg);
        // The last occurrence of a key wins; empty items are skipped.
        let b = CniArgs::parse("A=1;;A=2;").unwrap();
        assert_eq!(b.get("A"), Some("2"));
        assert_eq!(b.pairs().len(), 2);
        // Empty values are allowed, empty keys are not.
        assert_eq!(CniArgs::parse("A=").unwrap().get("A"), Some(""));
        assert!(CniArgs::parse("=x").is_err());
    }

    #[test]
    fn owner_tag_round_trips() {
        let o = Owner::new("net", "ctr.1", "eth0");
        assert_eq!(Owner::parse_tag(&o.tag()), Some(o));
        assert_eq!(Owner::parse_tag("a/b"), None);
    }
}
