//! Upstream portmap's nftables backend, pure: table `cni_hostport` (family
//! ip or ip6), whose DNAT and masquerade rules carry the raw container ID as
//! comment. Parses `nft -a list table` output and builds the `nft -f` input
//! deleting one container's rules by handle (chains and table stay, as
//! upstream leaves them).

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::config::Protocol;
use crate::plan::{Family, MapKey};

/// Upstream's table name (families ip and ip6).
pub const TABLE: &str = "cni_hostport";

/// A commented rule of upstream's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRule {
    /// Its chain.
    pub chain: String,
    /// Its handle.
    pub handle: u64,
    /// Its comment (upstream: the container ID).
    pub comment: String,
    /// The rule text before the comment.
    pub text: String,
}

/// The commented rules in `nft -a list table <family> cni_hostport` output.
pub fn parse_listing(text: &str) -> Vec<NftRule> {
    let mut chain = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("chain ") {
            chain = rest.split_whitespace().next().unwrap_or("").to_string();
            continue;
        }
        let Some((body, handle)) = line.rsplit_once(" # handle ") else {
            continue;
        };
        let Some((rule, comment)) = body.rsplit_once(" comment \"") else {
            continue;
        };
        let (Ok(handle), Some(comment)) = (handle.trim().parse(), comment.strip_suffix('"')) else {
            continue;
        };
        out.push(NftRule {
            chain: chain.clone(),
            handle,
            comment: comment.to_string(),
            text: rule.to_string(),
        });
    }
    out
}

/// The `nft -f` input deleting the rules commented with one of `ids`.
pub fn removal(family: &str, rules: &[NftRule], ids: &BTreeSet<String>) -> Option<String> {
    let lines: Vec<String> = rules
        .iter()
        .filter(|r| ids.contains(&r.comment))
        .map(|r| {
            format!(
                "delete rule {family} {TABLE} {} handle {}\n",
                r.chain, r.handle
            )
        })
        .collect();
    (!lines.is_empty()).then(|| lines.concat())
}

/// Every key upstream's DNAT rules map, with the container ID of each:
/// `<proto> dport <port>` and, in `hostip_hostports`, `ip[6] daddr <addr>`.
pub fn mapped_keys(rules: &[NftRule], family: Family) -> Vec<(MapKey, String)> {
    let mut out = Vec::new();
    for r in rules.iter().filter(|r| r.text.contains("dnat")) {
        let w: Vec<&str> = r.text.split_whitespace().collect();
        let mut host_ip: Option<IpAddr> = None;
        let mut proto_port = None;
        for pair in w.windows(3) {
            if (pair[0] == "ip" || pair[0] == "ip6") && pair[1] == "daddr" {
                host_ip = pair[2].parse().ok();
            }
            if pair[1] == "dport" && proto_port.is_none() {
                if let (Some(p), Ok(port)) = (Protocol::parse(pair[0]), pair[2].parse::<u16>()) {
                    proto_port = Some((p, port));
                }
            }
        }
        if let Some((protocol, port)) = proto_port {
            let key = MapKey {
                family,
                host_ip,
                protocol,
                port,
            };
            out.push((key, r.comment.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = include_str!("../../tests/fixtures/upstream-nft.v4.list");

    #[test]
    fn deletes_one_containers_rules_by_handle() {
        let rules = parse_listing(LISTING);
        let ids = BTreeSet::from(["ctr1".to_string()]);
        insta::assert_snapshot!(
            "nft_remove_ctr1",
            removal("ip", &rules, &ids).unwrap_or_default()
        );
        let keys = mapped_keys(&rules, Family::V4);
        assert_eq!(keys.len(), 3);
        assert_eq!((keys[2].0.port, keys[2].1.as_str()), (9090, "ctr2"));
        let hostip = parse_listing(
            "chain hostip_hostports {\n\tip daddr 198.18.0.1 tcp dport 80 dnat ip to 10.0.0.2:8080 comment \"c\" # handle 9\n}",
        );
        let keys = mapped_keys(&hostip, Family::V4);
        assert_eq!(keys[0].0.host_ip, Some("198.18.0.1".parse().unwrap()));
        assert_eq!(
            removal("ip", &rules, &BTreeSet::from(["x".to_string()])),
            None
        );
    }
}
