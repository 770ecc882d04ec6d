//! Upstream portmap's nftables backend, pure: table `cni_hostport` (family
//! ip or ip6), whose DNAT and masquerade rules carry the raw container ID as
//! comment. Parses `nft -a list table` output and builds the `nft -f` input
//! deleting one container's rules by handle (chains and table stay, as
//! upstream leaves them).

use std::collections::BTreeSet;

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

/// The container ID (other than `except`) whose upstream rule DNATs
/// `protocol` `port`.
pub fn mapper_of<'a>(
    rules: &'a [NftRule],
    protocol: &str,
    port: u16,
    except: &str,
) -> Option<&'a str> {
    let needle = format!("{protocol} dport {port} ");
    rules
        .iter()
        .filter(|r| r.chain == "hostports" && r.comment != except)
        .find(|r| format!("{} ", r.text).contains(&needle) && r.text.contains("dnat"))
        .map(|r| r.comment.as_str())
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
        assert_eq!(mapper_of(&rules, "tcp", 8080, "ctr2"), Some("ctr1"));
        assert_eq!(
            removal("ip", &rules, &BTreeSet::from(["x".to_string()])),
            None
        );
    }
}
