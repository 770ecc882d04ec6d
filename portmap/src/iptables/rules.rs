//! The iptables backend's rules, pure: what one attachment installs in one
//! family's `nat` table, in upstream portmap's layout and with its comments,
//! written the way `iptables-save` prints rules so that a saved table can be
//! compared with them word for word:
//!
//! ```text
//! PREROUTING, OUTPUT: -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
//! POSTROUTING (first): -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
//! CNI-HOSTPORT-SETMARK: -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
//! CNI-HOSTPORT-MASQ: -m mark --mark 0x2000/0x2000 -j MASQUERADE
//! CNI-HOSTPORT-DNAT: -p tcp -m comment --comment "dnat name: \"net\" id: \"ctr\"" -m multiport --dports 80,443 <conditions> -j CNI-DN-<hash>
//! CNI-DN-<hash>: [-s <pod>/32 | -s 127.0.0.0/8] [-d <hostIP>/32] -p tcp -m tcp --dport 80 -j CNI-HOSTPORT-SETMARK
//! CNI-DN-<hash>: [-d <hostIP>/32] -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.22.0.5:8080
//! ```
//!
//! The ADD input ([`PodRules::add_input`]) is one `iptables-restore
//! --noflush` transaction: it declares the shared chains only when missing
//! (declaring an existing chain flushes it), declares the pod's chain
//! (creating or flushing it: a repeated ADD replaces), deletes the pod's old
//! entry rules and appends shared rules only when absent. DEL and GC use
//! [`NatTable::removal`], shared with the upstream takeover.
//!
//! IPv4 also gets, in the `raw` table (the `nat` table refuses `DROP`), the
//! drop of packets to 127.0.0.0/8 from any interface but `lo`
//! (CVE-2020-8558: `route_localnet=1` would let them reach localhost
//! hostPorts), created with the first attachment and removed with the
//! last, in the same restore input as the `nat` rules:
//!
//! ```text
//! raw PREROUTING (first): -j CNI-HOSTPORT-LOCALNET
//! CNI-HOSTPORT-LOCALNET: -d 127.0.0.0/8 ! -i lo -j DROP
//! ```
//!
//! Runs nothing.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::Protocol;
use crate::plan::{Dnat, Family, MapKey, Masq, PodPlan};
use crate::upstream::iptables::{
    dn_chain, entry_comment, NatTable, Rule, UpstreamOwner, DNAT, MASQ, SETMARK,
};

/// The comment of the `POSTROUTING` jump to [`MASQ`].
pub(crate) const MASQ_COMMENT: &str = "CNI portfwd requiring masquerade";
/// The comment of the mark rule in [`SETMARK`].
pub(crate) const SETMARK_COMMENT: &str = "CNI portfwd masquerade mark";
/// The `raw` chain dropping packets to 127.0.0.0/8 from outside.
pub const LOCALNET: &str = "CNI-HOSTPORT-LOCALNET";
/// [`LOCALNET`]'s one rule, as `iptables-save` prints it.
const LOCALNET_DROP: &str = "-d 127.0.0.0/8 ! -i lo -j DROP";
/// `multiport` takes at most 15 ports.
const MULTIPORT_MAX: usize = 15;

/// One rule as `iptables-save` prints it: its chain and the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The chain.
    pub chain: String,
    /// Everything after `-A <chain> `.
    pub spec: String,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "-A {} {}", self.chain, self.spec)
    }
}

/// A shared rule and whether it goes first in its chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SharedRule {
    line: Line,
    first: bool,
}

/// One entry rule of the pod: protocol and ports it sends to the pod chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    protocol: Protocol,
    ports: Vec<u16>,
    line: Line,
}

/// What one attachment installs in one family's `nat` table (also what
/// its index file keeps, to rebuild it after a flush).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRules {
    /// The family.
    #[serde(with = "family_name")]
    pub family: Family,
    /// The attachment as upstream names it (network + container ID).
    pub owner: UpstreamOwner,
    /// `CNI-DN-<hash>`.
    pub chain: String,
    /// The shared chains this attachment needs.
    shared_chains: Vec<String>,
    shared: Vec<SharedRule>,
    /// The pod chain's rules, in order.
    pub rules: Vec<Line>,
    entries: Vec<Entry>,
}

/// `v4` / `v6` in index files.
mod family_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::plan::Family;

    pub fn serialize<S: Serializer>(f: &Family, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(f.suffix())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Family, D::Error> {
        match String::deserialize(d)?.as_str() {
            "v4" => Ok(Family::V4),
            "v6" => Ok(Family::V6),
            other => Err(serde::de::Error::custom(format!(
                "unknown family {other:?}"
            ))),
        }
    }
}

/// Quotes a word for `iptables-restore` when it needs it (the comment text
/// and conditions; config validation keeps control characters out).
fn quoted(word: &str) -> String {
    if !word.is_empty()
        && !word
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        return word.to_string();
    }
    let escaped = word.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

fn mark_def(bit: u8) -> String {
    let value = 1u32 << bit;
    format!("{value:#x}/{value:#x}")
}

fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => format!("{ip}/32"),
        IpAddr::V6(ip) => format!("{ip}/128"),
    }
}

fn to_destination(d: &Dnat) -> String {
    match d.container_ip {
        IpAddr::V4(ip) => format!("{ip}:{}", d.container_port),
        IpAddr::V6(ip) => format!("[{ip}]:{}", d.container_port),
    }
}

fn line(chain: &str, spec: String) -> Line {
    Line {
        chain: chain.to_string(),
        spec,
    }
}

impl PodRules {
    /// The rules of `plan` for `family`; `None` when nothing maps there.
    pub fn new(plan: &PodPlan, family: Family) -> Option<PodRules> {
        let dnats: Vec<Dnat> = plan
            .effective_dnats()
            .into_iter()
            .filter(|d| d.family == family)
            .collect();
        if dnats.is_empty() {
            return None;
        }
        let network = &plan.owner.network;
        let container_id = &plan.owner.container_id;
        let chain = dn_chain(network, container_id);
        let opts = &plan.config.iptables;
        let mark = mark_def(plan.config.mark_masq_bit);
        let own_masq = plan.masq != Masq::Off && opts.external_set_mark_chain.is_none();
        let entry_jump = format!("-m addrtype --dst-type LOCAL -j {DNAT}");
        let mut shared = vec![
            SharedRule {
                line: line("PREROUTING", entry_jump.clone()),
                first: false,
            },
            SharedRule {
                line: line("OUTPUT", entry_jump),
                first: false,
            },
        ];
        let mut shared_chains = vec![DNAT.to_string()];
        if own_masq {
            shared_chains.extend([SETMARK.to_string(), MASQ.to_string()]);
            shared.extend([
                SharedRule {
                    line: line(
                        "POSTROUTING",
                        format!("-m comment --comment {} -j {MASQ}", quoted(MASQ_COMMENT)),
                    ),
                    first: true,
                },
                SharedRule {
                    line: line(
                        SETMARK,
                        format!(
                            "-m comment --comment {} -j MARK --set-xmark {mark}",
                            quoted(SETMARK_COMMENT)
                        ),
                    ),
                    first: false,
                },
                SharedRule {
                    line: line(MASQ, format!("-m mark --mark {mark} -j MASQUERADE")),
                    first: false,
                },
            ]);
        }
        let setmark = opts.external_set_mark_chain.as_deref().unwrap_or(SETMARK);
        let mut rules = Vec::new();
        for d in &dnats {
            let dst = d
                .host_ip
                .map(|ip| format!("-d {} ", host(ip)))
                .unwrap_or_default();
            let p = d.protocol.as_str();
            let matches = format!("{dst}-p {p} -m {p} --dport {}", d.host_port);
            let sources: Vec<String> = match (plan.masq, family) {
                (Masq::Off, _) => vec![],
                (Masq::All, _) => vec![String::new()],
                (Masq::HairpinAndLocalhost, Family::V4) => vec![
                    format!("-s {} ", host(d.container_ip)),
                    "-s 127.0.0.0/8 ".to_string(),
                ],
                (Masq::HairpinAndLocalhost, Family::V6) => {
                    vec![format!("-s {} ", host(d.container_ip))]
                }
            };
            for s in sources {
                rules.push(line(&chain, format!("{s}{matches} -j {setmark}")));
            }
            rules.push(line(
                &chain,
                format!("{matches} -j DNAT --to-destination {}", to_destination(d)),
            ));
        }
        let conditions: Vec<String> = match family {
            Family::V4 => &opts.conditions_v4,
            Family::V6 => &opts.conditions_v6,
        }
        .iter()
        .map(|w| format!(" {}", quoted(w)))
        .collect();
        let comment = quoted(&entry_comment(network, container_id));
        let protocols: BTreeSet<Protocol> = dnats.iter().map(|d| d.protocol).collect();
        let mut entries = Vec::new();
        for protocol in protocols {
            let mut ports: Vec<u16> = Vec::new();
            for d in dnats.iter().filter(|d| d.protocol == protocol) {
                if !ports.contains(&d.host_port) {
                    ports.push(d.host_port);
                }
            }
            for chunk in ports.chunks(MULTIPORT_MAX) {
                let list: Vec<String> = chunk.iter().map(u16::to_string).collect();
                let spec = format!(
                    "-p {} -m comment --comment {comment} -m multiport --dports {}{} -j {chain}",
                    protocol.as_str(),
                    list.join(","),
                    conditions.concat()
                );
                entries.push(Entry {
                    protocol,
                    ports: chunk.to_vec(),
                    line: line(DNAT, spec),
                });
            }
        }
        Some(PodRules {
            family,
            owner: UpstreamOwner {
                network: network.clone(),
                container_id: container_id.clone(),
            },
            chain,
            shared_chains,
            shared,
            rules,
            entries,
        })
    }

    /// The shared chains this attachment needs.
    pub fn shared_chains(&self) -> &[String] {
        &self.shared_chains
    }

    /// The shared rules this attachment needs.
    pub fn shared_lines(&self) -> impl Iterator<Item = &Line> {
        self.shared.iter().map(|s| &s.line)
    }

    fn is_mine(&self, r: &Rule) -> bool {
        r.chain == DNAT
            && (r.jump.as_deref() == Some(self.chain.as_str())
                || r.comment.as_deref()
                    == Some(entry_comment(&self.owner.network, &self.owner.container_id).as_str()))
    }

    /// The `iptables-restore --noflush` input installing these rules into
    /// `table` (the family's saved `nat` table), replacing what a previous
    /// ADD of the same attachment left.
    pub fn add_input(&self, table: &NatTable) -> String {
        let mut out = String::from("*nat\n");
        for c in &self.shared_chains {
            if !table.chains.iter().any(|have| have == c) {
                out.push_str(&format!(":{c} - [0:0]\n"));
            }
        }
        out.push_str(&format!(":{} - [0:0]\n", self.chain));
        for r in table.rules.iter().filter(|r| self.is_mine(r)) {
            out.push_str(&format!("-D {} {}\n", r.chain, r.spec));
        }
        for s in &self.shared {
            if has(table, &s.line) {
                continue;
            }
            if s.first {
                out.push_str(&format!("-I {} 1 {}\n", s.line.chain, s.line.spec));
            } else {
                out.push_str(&format!("{}\n", s.line));
            }
        }
        for r in self
            .rules
            .iter()
            .chain(self.entries.iter().map(|e| &e.line))
        {
            out.push_str(&format!("{r}\n"));
        }
        out.push_str("COMMIT\n");
        out
    }

    /// What `table` lacks or has wrong for these rules, one line per rule
    /// (empty: all there).
    pub fn differences(&self, table: &NatTable) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.shared {
            if !has(table, &s.line) {
                out.push(format!("rule {} is missing", s.line));
            }
        }
        if !table.chains.contains(&self.chain) {
            out.push(format!("chain {} is missing", self.chain));
        }
        for r in &self.rules {
            if !has(table, r) {
                out.push(format!("rule {r} is missing"));
            }
        }
        for r in table.rules.iter().filter(|r| r.chain == self.chain) {
            let l = line(&r.chain, r.spec.clone());
            if !self.rules.contains(&l) {
                out.push(format!("rule {l} is not part of this attachment"));
            }
        }
        let comment = entry_comment(&self.owner.network, &self.owner.container_id);
        for e in &self.entries {
            let found = table.rules.iter().any(|r| {
                r.chain == DNAT
                    && r.jump.as_deref() == Some(self.chain.as_str())
                    && r.comment.as_deref() == Some(comment.as_str())
                    && r.protocol.as_deref() == Some(e.protocol.as_str())
                    && r.dports == e.ports
            });
            if !found {
                out.push(format!("entry rule {} is missing", e.line));
            }
        }
        out
    }

    /// The `iptables-restore --noflush` input removing these rules as ADD
    /// wrote them, without a saved table: the entry rules, then the pod
    /// chain. The shared chains stay (for callers that know another
    /// attachment still uses them). A rule that is no longer there fails
    /// the whole transaction, which then changes nothing.
    pub fn removal_input(&self) -> String {
        let mut out = String::from("*nat\n");
        for e in &self.entries {
            out.push_str(&format!("-D {} {}\n", e.line.chain, e.line.spec));
        }
        out.push_str(&format!("-F {0}\n-X {0}\nCOMMIT\n", self.chain));
        out
    }

    /// The UDP host ports these rules map, as keys without a hostIP
    /// (conntrack cleanup goes by family, protocol and port).
    pub fn udp_keys(&self) -> BTreeSet<MapKey> {
        self.entries
            .iter()
            .filter(|e| e.protocol == Protocol::Udp)
            .flat_map(|e| e.ports.iter())
            .map(|port| MapKey {
                family: self.family,
                host_ip: None,
                protocol: Protocol::Udp,
                port: *port,
            })
            .collect()
    }

    /// The keys this family's rules claim.
    pub fn keys(&self, plan: &PodPlan) -> BTreeSet<MapKey> {
        plan.keys()
            .into_iter()
            .filter(|k| k.family == self.family)
            .collect()
    }

    /// Each of `keys` another attachment's rules in `table` claim under the
    /// Kubernetes rule ([`MapKey::conflicts_with`]), described.
    pub fn conflicts(&self, table: &NatTable, keys: &BTreeSet<MapKey>) -> Vec<String> {
        let mut out = Vec::new();
        for (key, owner) in table.mapped_keys(self.family) {
            if owner == self.owner {
                continue;
            }
            for k in keys.iter().filter(|k| k.conflicts_with(&key)) {
                out.push(k.conflict_text(
                    &key,
                    &format!(
                        "network {:?} container {:?}",
                        owner.network, owner.container_id
                    ),
                ));
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

fn has(table: &NatTable, l: &Line) -> bool {
    table
        .rules
        .iter()
        .any(|r| r.chain == l.chain && r.spec == l.spec)
}

/// The UDP keys `owners`' pod chains in `table` map (conntrack cleanup
/// after their removal).
pub fn udp_keys_of(
    table: &NatTable,
    family: Family,
    owners: &BTreeSet<UpstreamOwner>,
) -> BTreeSet<MapKey> {
    table
        .mapped_keys(family)
        .into_iter()
        .filter(|(k, o)| owners.contains(o) && k.protocol == Protocol::Udp)
        .map(|(k, _)| k)
        .collect()
}

/// The `*raw` section completing the localnet drop in `raw` (the saved
/// `raw` table); empty when it is all there.
pub fn localnet_add(raw: &NatTable) -> String {
    let drop = line(LOCALNET, LOCALNET_DROP.to_string());
    let jump = line("PREROUTING", format!("-j {LOCALNET}"));
    let mut out = String::new();
    if !raw.chains.iter().any(|c| c == LOCALNET) {
        out.push_str(&format!(":{LOCALNET} - [0:0]\n"));
    }
    if !has(raw, &drop) {
        out.push_str(&format!("{drop}\n"));
    }
    if !has(raw, &jump) {
        out.push_str(&format!("-I PREROUTING 1 {}\n", jump.spec));
    }
    if out.is_empty() {
        return out;
    }
    format!("*raw\n{out}COMMIT\n")
}

/// The `*raw` section removing the localnet drop from `raw`; empty when
/// nothing of it is there.
pub fn localnet_removal(raw: &NatTable) -> String {
    let mut out = String::new();
    for r in raw
        .rules
        .iter()
        .filter(|r| r.jump.as_deref() == Some(LOCALNET) && r.chain != LOCALNET)
    {
        out.push_str(&format!("-D {} {}\n", r.chain, r.spec));
    }
    if raw.chains.iter().any(|c| c == LOCALNET) {
        out.push_str(&format!("-F {LOCALNET}\n-X {LOCALNET}\n"));
    }
    if out.is_empty() {
        return out;
    }
    format!("*raw\n{out}COMMIT\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::iptables::parse_table;

    const RAW: &str = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:CNI-HOSTPORT-LOCALNET - [0:0]\n-A PREROUTING -j CNI-HOSTPORT-LOCALNET\n\
-A CNI-HOSTPORT-LOCALNET -d 127.0.0.0/8 ! -i lo -j DROP\nCOMMIT\n";

    #[test]
    fn localnet_is_added_only_where_missing_and_removed_whole() {
        let empty = NatTable::default();
        assert_eq!(
            localnet_add(&empty),
            "*raw\n:CNI-HOSTPORT-LOCALNET - [0:0]\n\
-A CNI-HOSTPORT-LOCALNET -d 127.0.0.0/8 ! -i lo -j DROP\n\
-I PREROUTING 1 -j CNI-HOSTPORT-LOCALNET\nCOMMIT\n"
        );
        assert_eq!(localnet_removal(&empty), "");
        let full = parse_table(RAW, "raw");
        assert_eq!(localnet_add(&full), "");
        assert_eq!(
            localnet_removal(&full),
            "*raw\n-D PREROUTING -j CNI-HOSTPORT-LOCALNET\n\
-F CNI-HOSTPORT-LOCALNET\n-X CNI-HOSTPORT-LOCALNET\nCOMMIT\n"
        );
        let no_jump = parse_table(
            &RAW.replace("-A PREROUTING -j CNI-HOSTPORT-LOCALNET\n", ""),
            "raw",
        );
        assert_eq!(
            localnet_add(&no_jump),
            "*raw\n-I PREROUTING 1 -j CNI-HOSTPORT-LOCALNET\nCOMMIT\n"
        );
    }
}
