//! Upstream portmap's iptables state, pure: the per-container chain name
//! (`CNI-DN-` + 21 hex digits of SHA-512 of network name + container ID),
//! a parser of one `iptables-save -t nat` table, and the
//! `iptables-restore --noflush` input that removes what upstream installed
//! for a set of containers of one network. Shared chains
//! (`CNI-HOSTPORT-DNAT`, `-SETMARK`, `-MASQ`) go only when no per-container
//! chain and no entry rule is left. Also the input of issue #13's iptables
//! backend (same names, same comments).

use std::collections::BTreeSet;

use std::net::IpAddr;

use sha2::{Digest, Sha512};

use crate::config::Protocol;
use crate::plan::{Family, MapKey};

/// Upstream's entry chain, jumped to from `PREROUTING` and `OUTPUT`.
pub const DNAT: &str = "CNI-HOSTPORT-DNAT";
/// Upstream's mark chain (per-container hairpin/localhost rules jump here).
pub const SETMARK: &str = "CNI-HOSTPORT-SETMARK";
/// Upstream's masquerade chain, jumped to from `POSTROUTING`.
pub const MASQ: &str = "CNI-HOSTPORT-MASQ";

/// Upstream's per-container chain of `network` + `container_id`.
pub fn dn_chain(network: &str, container_id: &str) -> String {
    let digest = Sha512::digest(format!("{network}{container_id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("CNI-DN-{}", &hex[..21])
}

/// Upstream's entry-rule comment for a container.
pub fn entry_comment(network: &str, container_id: &str) -> String {
    format!("dnat name: \"{network}\" id: \"{container_id}\"")
}

/// One `-A` line of a saved table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The chain it is appended to.
    pub chain: String,
    /// The rule spec after the chain name, exactly as saved (restorable).
    pub spec: String,
    /// The `-j` target.
    pub jump: Option<String>,
    /// The `--comment` text, unquoted.
    pub comment: Option<String>,
    /// The `-p` protocol.
    pub protocol: Option<String>,
    /// The ports of `--dports`/`--destination-ports`/`--dport`.
    pub dports: Vec<u16>,
    /// The `-d` address (a host address: its `/32` or `/128` dropped).
    pub destination: Option<IpAddr>,
}

/// The `nat` table of one family as `iptables-save` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatTable {
    /// Every chain declared (`:NAME ...`).
    pub chains: Vec<String>,
    /// Every rule, in order.
    pub rules: Vec<Rule>,
}

/// An upstream attachment found in an entry rule's comment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct UpstreamOwner {
    /// The network name.
    pub network: String,
    /// The container ID.
    pub container_id: String,
}

/// Splits a saved rule into words, honouring iptables-save's `"…"` quoting
/// with `\"` escapes.
fn words(spec: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut chars = spec.chars().peekable();
    let mut started = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_quote => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                in_quote = !in_quote;
                started = true;
            }
            c if c.is_whitespace() && !in_quote => {
                if started || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            c => cur.push(c),
        }
    }
    if started || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_rule(line: &str) -> Option<Rule> {
    let rest = line.strip_prefix("-A ")?;
    let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
    let w = words(spec);
    let after = |flag: &str| {
        w.iter()
            .position(|x| x == flag)
            .and_then(|i| w.get(i + 1))
            .cloned()
    };
    let dports = ["--dports", "--destination-ports", "--dport"]
        .iter()
        .find_map(|f| after(f))
        .map(|p| p.split(',').filter_map(|x| x.parse::<u16>().ok()).collect())
        .unwrap_or_default();
    Some(Rule {
        chain: chain.to_string(),
        spec: spec.to_string(),
        jump: after("-j"),
        comment: after("--comment"),
        protocol: after("-p"),
        dports,
        destination: after("-d").and_then(|d| d.split('/').next().and_then(|a| a.parse().ok())),
    })
}

/// Parses the `*nat` table of `iptables-save` output (other tables ignored).
pub fn parse_save(text: &str) -> NatTable {
    parse_table(text, "nat")
}

/// Parses table `name` of `iptables-save` output (other tables ignored).
pub fn parse_table(text: &str, name: &str) -> NatTable {
    let wanted = name;
    let mut table = NatTable::default();
    let mut in_nat = false;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            in_nat = name.trim() == wanted;
        } else if !in_nat {
        } else if let Some(decl) = line.strip_prefix(':') {
            if let Some(name) = decl.split_whitespace().next() {
                table.chains.push(name.to_string());
            }
        } else if let Some(rule) = parse_rule(line) {
            table.rules.push(rule);
        }
    }
    table
}

/// Parses an upstream entry comment back into its owner.
fn owner_of(comment: &str) -> Option<UpstreamOwner> {
    let rest = comment.strip_prefix("dnat name: \"")?;
    let (network, rest) = rest.split_once("\" id: \"")?;
    let container_id = rest.strip_suffix('"')?;
    Some(UpstreamOwner {
        network: network.to_string(),
        container_id: container_id.to_string(),
    })
}

impl NatTable {
    /// Whether upstream's entry chain exists.
    pub fn has_upstream(&self) -> bool {
        self.chains.iter().any(|c| c == DNAT)
    }

    /// Every upstream attachment named by an entry rule.
    pub fn owners(&self) -> BTreeSet<UpstreamOwner> {
        self.rules
            .iter()
            .filter(|r| r.chain == DNAT)
            .filter_map(|r| r.comment.as_deref().and_then(owner_of))
            .collect()
    }

    /// The upstream owner mapping `protocol`/`port`, other than `except`.
    pub fn mapper_of(
        &self,
        protocol: &str,
        port: u16,
        except: &UpstreamOwner,
    ) -> Option<UpstreamOwner> {
        self.rules
            .iter()
            .filter(|r| r.chain == DNAT && r.protocol.as_deref() == Some(protocol))
            .filter(|r| r.dports.contains(&port))
            .filter_map(|r| r.comment.as_deref().and_then(owner_of))
            .find(|o| o != except)
    }

    /// Every key upstream maps in this table (of family `family`), with
    /// its owner: the DNAT rules of each per-container chain an owned entry
    /// rule jumps to (`-d` is the hostIP; none is the wildcard).
    pub fn mapped_keys(&self, family: Family) -> Vec<(MapKey, UpstreamOwner)> {
        let mut out = Vec::new();
        for entry in self.rules.iter().filter(|r| r.chain == DNAT) {
            let (Some(owner), Some(chain)) =
                (entry.comment.as_deref().and_then(owner_of), &entry.jump)
            else {
                continue;
            };
            for r in self.rules.iter().filter(|r| &r.chain == chain) {
                if r.jump.as_deref() != Some("DNAT") {
                    continue;
                }
                let Some(protocol) = r.protocol.as_deref().and_then(Protocol::parse) else {
                    continue;
                };
                for port in &r.dports {
                    let key = MapKey {
                        family,
                        host_ip: r.destination,
                        protocol,
                        port: *port,
                    };
                    if !out.contains(&(key, owner.clone())) {
                        out.push((key, owner.clone()));
                    }
                }
            }
        }
        out
    }

    /// Whether removing `containers` of `network` leaves no per-container
    /// chain and no entry rule: [`NatTable::removal`] then also removes the
    /// shared chains.
    pub fn last_ones(&self, network: &str, containers: &BTreeSet<String>) -> bool {
        let chains: BTreeSet<String> = containers.iter().map(|id| dn_chain(network, id)).collect();
        let comments: BTreeSet<String> = containers
            .iter()
            .map(|id| entry_comment(network, id))
            .collect();
        let dn_left = self
            .chains
            .iter()
            .any(|c| c.starts_with("CNI-DN-") && !chains.contains(c));
        let entries_left = self.rules.iter().any(|r| {
            r.chain == DNAT
                && !r.jump.as_ref().is_some_and(|j| chains.contains(j))
                && !r.comment.as_ref().is_some_and(|c| comments.contains(c))
        });
        !dn_left && !entries_left
    }

    /// The `iptables-restore --noflush` input removing everything upstream
    /// installed for `containers` of `network` (`None`: nothing to remove).
    pub fn removal(&self, network: &str, containers: &BTreeSet<String>) -> Option<String> {
        let chains: BTreeSet<String> = containers
            .iter()
            .map(|id| dn_chain(network, id))
            .filter(|c| self.chains.contains(c))
            .collect();
        let comments: BTreeSet<String> = containers
            .iter()
            .map(|id| entry_comment(network, id))
            .collect();
        let doomed = |r: &Rule| {
            r.jump.as_ref().is_some_and(|j| chains.contains(j))
                || (r.chain == DNAT && r.comment.as_ref().is_some_and(|c| comments.contains(c)))
        };
        let gone: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| !chains.contains(&r.chain) && doomed(r))
            .collect();
        if chains.is_empty() && gone.is_empty() {
            return None;
        }
        let mut out = String::from("*nat\n");
        for r in &gone {
            out.push_str(&format!("-D {} {}\n", r.chain, r.spec));
        }
        for c in &chains {
            out.push_str(&format!("-F {c}\n-X {c}\n"));
        }
        // Shared chains: only when no per-container chain or entry rule is left.
        if self.last_ones(network, containers) {
            for shared in [DNAT, MASQ, SETMARK] {
                if !self.chains.iter().any(|c| c == shared) {
                    continue;
                }
                for r in self
                    .rules
                    .iter()
                    .filter(|r| r.jump.as_deref() == Some(shared) && !r.chain.starts_with("CNI-"))
                {
                    out.push_str(&format!("-D {} {}\n", r.chain, r.spec));
                }
                // DNAT's rules were all deleted above; flushing them again in
                // the same iptables-nft batch makes the chain deletion fail.
                if shared != DNAT {
                    out.push_str(&format!("-F {shared}\n"));
                }
            }
            for shared in [DNAT, MASQ, SETMARK] {
                if self.chains.iter().any(|c| c == shared) {
                    out.push_str(&format!("-X {shared}\n"));
                }
            }
        }
        out.push_str("COMMIT\n");
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = include_str!("../../tests/fixtures/upstream-two-pods.v4.save");
    const V6: &str = include_str!("../../tests/fixtures/upstream-two-pods.v6.save");

    fn ids(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn chain_names_match_upstream_goldens() {
        assert_eq!(dn_chain("pmtest", "ctr1"), "CNI-DN-9bad549d180e477c26aef");
        assert_eq!(dn_chain("pmtest", "ctr2"), "CNI-DN-3be87f5511c930d30ef92");
    }

    #[test]
    fn owners_and_ports_are_read_from_entry_comments() {
        let t = parse_save(V4);
        assert!(t.has_upstream());
        let owners: Vec<_> = t.owners().into_iter().map(|o| o.container_id).collect();
        assert_eq!(owners, ["ctr1", "ctr2"]);
        let me = UpstreamOwner {
            network: "pmtest".into(),
            container_id: "ctr2".into(),
        };
        let other = t.mapper_of("udp", 8053, &me).map(|o| o.container_id);
        assert_eq!(other.as_deref(), Some("ctr1"));
        assert_eq!(t.mapper_of("udp", 8054, &me), None);
        let keys: Vec<String> = t
            .mapped_keys(Family::V4)
            .iter()
            .map(|(k, o)| {
                format!(
                    "{:?} {}/{} {}",
                    k.host_ip,
                    k.port,
                    k.protocol.as_str(),
                    o.container_id
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                "None 8080/tcp ctr1",
                "None 8053/udp ctr1",
                "None 8080/tcp ctr2",
                "None 8053/udp ctr2"
            ]
        );
    }

    #[test]
    fn a_host_ip_is_read_from_the_dnat_rule() {
        let t = parse_save(
            "*nat\n:CNI-HOSTPORT-DNAT - [0:0]\n:CNI-DN-x - [0:0]\n\
             -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"n\\\" id: \\\"c\\\"\" -m multiport --dports 80 -j CNI-DN-x\n\
             -A CNI-DN-x -d 198.18.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080\nCOMMIT\n",
        );
        let keys = t.mapped_keys(Family::V4);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0.host_ip, Some("198.18.0.1".parse().unwrap()));
        assert_eq!(keys[0].1.container_id, "c");
    }

    #[test]
    fn removing_one_of_two_pods_keeps_shared_chains() {
        let v4 = parse_save(V4).removal("pmtest", &ids(&["ctr1"]));
        let v6 = parse_save(V6).removal("pmtest", &ids(&["ctr1"]));
        insta::assert_snapshot!("remove_ctr1_v4", v4.unwrap_or_default());
        insta::assert_snapshot!("remove_ctr1_v6", v6.unwrap_or_default());
    }

    #[test]
    fn removing_the_last_pods_removes_shared_chains() {
        let v4 = parse_save(V4).removal("pmtest", &ids(&["ctr1", "ctr2"]));
        insta::assert_snapshot!("remove_all_v4", v4.unwrap_or_default());
    }

    #[test]
    fn other_networks_and_unknown_ids_are_untouched() {
        let t = parse_save(V4);
        assert_eq!(t.removal("other", &ids(&["ctr1"])), None);
        assert_eq!(t.removal("pmtest", &ids(&["ctr9"])), None);
        assert_eq!(parse_save("").removal("pmtest", &ids(&["ctr1"])), None);
    }
}
