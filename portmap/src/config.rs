//! Configuration: the raw serde shape of portmap's stdin and its validation
//! into a typed [`Config`], plus the upstream container-IP selection from
//! `prevResult`. Pure: no I/O, every rejection is a code 7 naming the field.
//! Keys are matched as Go matches them ([`cni::gojson`]): containerd sends
//! `{"HostPort":80,"ContainerPort":80,"Protocol":"tcp","HostIP":""}`.

use std::net::IpAddr;

use cni::types::CniResult;
use cni::CniError;
use serde::{Deserialize, Serialize};

use crate::conditions::{parse_conditions, Condition};

/// A transport protocol a hostPort can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// One validated `runtimeConfig.portMappings[]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// `None` for no hostIP; an unspecified address (`0.0.0.0`, `::`) is kept
    /// so that it still selects its family, as upstream does.
    pub host_ip: Option<IpAddr>,
}

impl HostPortMapping {
    /// The hostIP the DNAT is restricted to (unspecified means "any").
    pub fn specific_host_ip(&self) -> Option<IpAddr> {
        self.host_ip.filter(|ip| !ip.is_unspecified())
    }

    /// True when this mapping applies to the IPv4 (`v4`) or IPv6 family.
    pub fn applies_to(&self, v4: bool) -> bool {
        match self.host_ip {
            None => true,
            Some(ip) => ip.is_ipv4() == v4,
        }
    }
}

impl std::fmt::Display for HostPortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            Some(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            None => f.write_str("*")?,
        }
        write!(
            f,
            ":{}/{} → {}",
            self.host_port,
            self.protocol.as_str(),
            self.container_port
        )
    }
}

/// The firewall backend a configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Our `inet` table (the default).
    Nftables,
    /// Upstream's iptables layout (`CNI-HOSTPORT-DNAT`, `CNI-DN-<hash>`, …).
    Iptables,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Nftables => "nftables",
            Backend::Iptables => "iptables",
        }
    }

    fn other(self) -> Backend {
        match self {
            Backend::Nftables => Backend::Iptables,
            Backend::Iptables => Backend::Nftables,
        }
    }
}

/// Options only the iptables backend reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IptablesOptions {
    /// `externalSetMarkChain`: the chain hairpin/localhost traffic jumps to
    /// instead of our `CNI-HOSTPORT-SETMARK` (e.g. `KUBE-MARK-MASQ`); we then
    /// install no mark or masquerade chain of our own.
    pub external_set_mark_chain: Option<String>,
    /// `conditionsV4` in iptables syntax, appended to the entry rules.
    pub conditions_v4: Vec<String>,
    /// `conditionsV6` likewise.
    pub conditions_v6: Vec<String>,
}

/// Validated configuration of one invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub mappings: Vec<HostPortMapping>,
    pub snat: bool,
    pub masq_all: bool,
    pub mark_masq_bit: u8,
    pub conditions_v4: Vec<Condition>,
    pub conditions_v6: Vec<Condition>,
    pub backend: Backend,
    /// Empty unless `backend` is [`Backend::Iptables`].
    pub iptables: IptablesOptions,
}

/// Upstream's default `markMasqBit`.
pub const DEFAULT_MARK_MASQ_BIT: u8 = 13;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    #[serde(default)]
    snat: Option<bool>,
    #[serde(default)]
    masq_all: Option<bool>,
    #[serde(default)]
    mark_masq_bit: Option<i64>,
    #[serde(default)]
    external_set_mark_chain: Option<String>,
    #[serde(default, rename = "conditionsV4")]
    conditions_v4: Option<Vec<String>>,
    #[serde(default, rename = "conditionsV6")]
    conditions_v6: Option<Vec<String>>,
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    runtime_config: Option<RawRuntimeConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRuntimeConfig {
    #[serde(default)]
    port_mappings: Option<Vec<RawMapping>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMapping {
    host_port: Option<i64>,
    container_port: Option<i64>,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default, rename = "hostIP")]
    host_ip: Option<String>,
}

fn bad(msg: impl Into<String>) -> CniError {
    CniError::invalid_config(format!("portmap: {}", msg.into()))
}

/// Parses and validates portmap's stdin.
pub fn parse(stdin: &[u8]) -> Result<Config, CniError> {
    let raw: RawConf = cni::gojson::from_slice(stdin)
        .map_err(|e| bad(format!("parsing network configuration: {e}")))?;
    let backend = select_backend(&raw)?;
    if raw.external_set_mark_chain.is_some() && raw.mark_masq_bit.is_some() {
        return Err(bad("Cannot specify externalSetMarkChain and markMasqBit"));
    }
    let mark_masq_bit = match raw.mark_masq_bit {
        None => DEFAULT_MARK_MASQ_BIT,
        Some(b) if (0..=31).contains(&b) => b as u8,
        Some(b) => {
            return Err(bad(format!(
                "markMasqBit {b}: MasqMarkBit must be between 0 and 31"
            )))
        }
    };
    let (conditions_v4, conditions_v6, iptables) = match backend {
        Backend::Nftables => (
            parse_conditions("conditionsV4", raw.conditions_v4.as_deref(), true)?,
            parse_conditions("conditionsV6", raw.conditions_v6.as_deref(), false)?,
            IptablesOptions::default(),
        ),
        Backend::Iptables => (
            Vec::new(),
            Vec::new(),
            IptablesOptions {
                external_set_mark_chain: match raw.external_set_mark_chain.as_deref() {
                    None => None,
                    Some(c) => Some(chain_name(c)?),
                },
                conditions_v4: iptables_conditions("conditionsV4", raw.conditions_v4.as_deref())?,
                conditions_v6: iptables_conditions("conditionsV6", raw.conditions_v6.as_deref())?,
            },
        ),
    };
    let raw_mappings = raw
        .runtime_config
        .and_then(|r| r.port_mappings)
        .unwrap_or_default();
    let mut mappings = Vec::with_capacity(raw_mappings.len());
    for (i, m) in raw_mappings.iter().enumerate() {
        mappings.push(mapping(i, m)?);
    }
    Ok(Config {
        mappings,
        snat: raw.snat.unwrap_or(true),
        masq_all: raw.masq_all.unwrap_or(false),
        mark_masq_bit,
        conditions_v4,
        conditions_v6,
        backend,
        iptables,
    })
}

/// Which backend a conditions list is written for (`None`: empty), by its
/// first character as upstream tells: iptables matches start with `-` or `!`.
fn backend_of_conditions(conditions: Option<&[String]>) -> Option<Backend> {
    let first = conditions?.first()?;
    match first.chars().next()? {
        '-' | '!' => Some(Backend::Iptables),
        _ => Some(Backend::Nftables),
    }
}

/// Upstream's selection: an explicit `backend` wins; else iptables-only
/// options select iptables; else our default, nftables (upstream defaults
/// to iptables: see README). Options of the other backend are refused with
/// upstream's text.
fn select_backend(raw: &RawConf) -> Result<Backend, CniError> {
    let mut specific: Vec<(Backend, &str)> = Vec::new();
    if raw.external_set_mark_chain.is_some() {
        specific.push((Backend::Iptables, "externalSetMarkChain"));
    }
    for (field, list) in [
        ("conditionsV4", &raw.conditions_v4),
        ("conditionsV6", &raw.conditions_v6),
    ] {
        if let Some(b) = backend_of_conditions(list.as_deref()) {
            specific.push((b, field));
        }
    }
    let backend = match raw.backend.as_deref() {
        None | Some("") if specific.iter().any(|(b, _)| *b == Backend::Iptables) => {
            Backend::Iptables
        }
        None | Some("") | Some("nftables") => Backend::Nftables,
        Some("iptables") => Backend::Iptables,
        Some(other) => return Err(bad(format!("unrecognized backend {other:?}"))),
    };
    let wrong: Vec<&str> = specific
        .iter()
        .filter(|(b, _)| *b == backend.other())
        .map(|(_, f)| *f)
        .collect();
    if !wrong.is_empty() {
        return Err(bad(format!(
            "{} backend was requested but configuration contains {}-specific options [{}]",
            backend.name(),
            backend.other().name(),
            wrong.join(" ")
        )));
    }
    Ok(backend)
}

/// A word that goes into `iptables-restore` input: no quote, backslash or
/// control character can end the line or the word early.
fn restorable(field: &str, word: &str) -> Result<(), CniError> {
    if word.is_empty()
        || word
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(bad(format!(
            "{field}: {word:?} is empty or contains a quote, backslash or control character"
        )));
    }
    Ok(())
}

/// `externalSetMarkChain`: an iptables chain name (at most 28 bytes, no
/// blanks).
fn chain_name(name: &str) -> Result<String, CniError> {
    restorable("externalSetMarkChain", name)?;
    if name.len() > 28 || name.contains(char::is_whitespace) {
        return Err(bad(format!(
            "externalSetMarkChain: {name:?} is not an iptables chain name (at most 28 bytes, no blanks)"
        )));
    }
    Ok(name.to_string())
}

/// iptables-syntax conditions, kept as words (each checked restorable).
fn iptables_conditions(field: &str, words: Option<&[String]>) -> Result<Vec<String>, CniError> {
    let words: Vec<String> = words
        .unwrap_or_default()
        .iter()
        .filter(|w| !w.is_empty())
        .cloned()
        .collect();
    for w in &words {
        restorable(field, w)?;
    }
    Ok(words)
}

fn mapping(i: usize, m: &RawMapping) -> Result<HostPortMapping, CniError> {
    let field = |f: &str| format!("runtimeConfig.portMappings[{i}].{f}");
    let port = |f: &str, v: Option<i64>, what: &str| -> Result<u16, CniError> {
        match v {
            Some(p) if (1..=65535).contains(&p) => Ok(p as u16),
            Some(p) => Err(bad(format!(
                "{}: Invalid {what} port number: {p} (must be 1-65535)",
                field(f)
            ))),
            None => Err(bad(format!("{}: missing", field(f)))),
        }
    };
    let host_port = port("hostPort", m.host_port, "host")?;
    let container_port = port("containerPort", m.container_port, "container")?;
    let protocol = match m.protocol.as_deref() {
        None | Some("") => Protocol::Tcp,
        Some(p) => Protocol::parse(p).ok_or_else(|| {
            bad(format!(
                "{}: unsupported protocol {p:?} (tcp, udp or sctp)",
                field("protocol")
            ))
        })?,
    };
    let host_ip = match m.host_ip.as_deref() {
        None | Some("") => None,
        Some(s) => Some(s.parse::<IpAddr>().map_err(|_| {
            bad(format!(
                "{}: invalid IP address {s:?} in mapping {host_port}/{}",
                field("hostIP"),
                protocol.as_str()
            ))
        })?),
    };
    Ok(HostPortMapping {
        host_port,
        container_port,
        protocol,
        host_ip,
    })
}

/// The container's addresses portmap forwards to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerIps {
    pub v4: Option<IpAddr>,
    pub v6: Option<IpAddr>,
}

impl ContainerIps {
    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }
}

/// Upstream's selection: the first IPv4 and first IPv6 of `prevResult.ips`
/// whose `interface` is absent, out of range, or a sandbox interface named
/// `ifname`.
pub fn container_ips(prev: &CniResult, ifname: &str) -> ContainerIps {
    let mut out = ContainerIps::default();
    for ip in &prev.ips {
        let usable = match ip.interface {
            None => true,
            Some(i) => match prev.interfaces.get(i) {
                None => true,
                Some(iface) => iface.name == ifname && iface.in_sandbox(),
            },
        };
        if !usable {
            continue;
        }
        let addr = ip.address.ip();
        let slot = if addr.is_ipv4() {
            &mut out.v4
        } else {
            &mut out.v6
        };
        if slot.is_none() {
            *slot = Some(addr);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::ErrorCode;

    fn conf(extra: &str) -> Vec<u8> {
        format!(r#"{{"cniVersion":"1.0.0","name":"net","type":"portmap"{extra}}}"#).into_bytes()
    }

    fn err(extra: &str) -> CniError {
        parse(&conf(extra)).unwrap_err()
    }

    #[test]
    fn defaults() {
        let c = parse(&conf("")).unwrap();
        assert!(c.snat && !c.masq_all && c.mappings.is_empty());
        assert_eq!(c.mark_masq_bit, 13);
        assert_eq!(c.backend, Backend::Nftables);
    }

    #[test]
    fn selects_the_backend_like_upstream() {
        let b = |extra: &str| parse(&conf(extra)).unwrap();
        assert_eq!(b("").backend, Backend::Nftables);
        assert_eq!(b(r#","backend":"nftables""#).backend, Backend::Nftables);
        let c = b(r#","backend":"iptables""#);
        assert_eq!(c.backend, Backend::Iptables);
        assert_eq!(c.iptables, IptablesOptions::default());
        let c = b(r#","externalSetMarkChain":"KUBE-MARK-MASQ""#);
        assert_eq!(c.backend, Backend::Iptables);
        assert_eq!(
            c.iptables.external_set_mark_chain.as_deref(),
            Some("KUBE-MARK-MASQ")
        );
        let c = b(r#","conditionsV4":["-s","198.18.1.4"],"conditionsV6":["!","-s","fd00::1"]"#);
        assert_eq!(c.backend, Backend::Iptables);
        assert_eq!(c.iptables.conditions_v4, ["-s", "198.18.1.4"]);
        assert_eq!(c.iptables.conditions_v6, ["!", "-s", "fd00::1"]);
        assert!(c.conditions_v4.is_empty() && c.conditions_v6.is_empty());
        // nft-syntax conditions keep the default; an empty list says nothing.
        assert_eq!(
            b(r#","conditionsV4":["ip saddr 10.0.0.0/8"]"#).backend,
            Backend::Nftables
        );
        assert_eq!(
            b(r#","conditionsV4":[""],"backend":"iptables""#).iptables,
            IptablesOptions::default()
        );
    }

    #[test]
    fn parses_mappings_case_insensitively() {
        let c = parse(&conf(
            r#","runtimeConfig":{"portMappings":[
              {"hostPort":8080,"containerPort":80,"protocol":"TCP"},
              {"hostPort":53,"containerPort":53,"protocol":"Udp","hostIP":"127.0.0.1"},
              {"hostPort":9,"containerPort":9,"protocol":"sctp","hostIP":""}]}"#,
        ))
        .unwrap();
        assert_eq!(c.mappings.len(), 3);
        assert_eq!(c.mappings[0].protocol, Protocol::Tcp);
        assert_eq!(c.mappings[1].protocol, Protocol::Udp);
        assert_eq!(c.mappings[1].host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(c.mappings[2].host_ip, None);
    }

    #[test]
    fn rejects_bad_ports_protocols_and_ips_with_code_7() {
        for (extra, needle) in [
            (
                r#"{"hostPort":0,"containerPort":80}"#,
                "portMappings[0].hostPort",
            ),
            (
                r#"{"hostPort":65536,"containerPort":80}"#,
                "Invalid host port number: 65536",
            ),
            (
                r#"{"hostPort":80,"containerPort":-1}"#,
                "Invalid container port number: -1",
            ),
            (r#"{"hostPort":80,"containerPort":70000}"#, "containerPort"),
            (
                r#"{"hostPort":80,"containerPort":80,"protocol":"icmp"}"#,
                "unsupported protocol",
            ),
            (
                r#"{"hostPort":80,"containerPort":80,"hostIP":"1.2.3"}"#,
                "hostIP: invalid IP",
            ),
        ] {
            let e = err(&format!(r#","runtimeConfig":{{"portMappings":[{extra}]}}"#));
            assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{extra}");
            assert!(e.msg.contains(needle), "{extra}: {}", e.msg);
        }
    }

    #[test]
    fn rejects_bad_options() {
        assert!(err(r#","markMasqBit":32"#).msg.contains("between 0 and 31"));
        assert!(err(r#","markMasqBit":-1"#).msg.contains("between 0 and 31"));
        assert!(err(r#","markMasqBit":1,"externalSetMarkChain":"X""#)
            .msg
            .contains("Cannot specify"));
        assert!(
            err(r#","backend":"nftables","externalSetMarkChain":"KUBE-MARK-MASQ""#)
                .msg
                .contains("nftables backend was requested but configuration contains iptables-specific options [externalSetMarkChain]")
        );
        assert!(err(r#","backend":"pf""#)
            .msg
            .contains("unrecognized backend"));
        assert!(
            err(r#","backend":"nftables","conditionsV4":["-s","198.18.1.4"]"#)
                .msg
                .contains("iptables-specific options [conditionsV4]")
        );
        assert!(err(r#","backend":"iptables","conditionsV6":["ip6 saddr fd00::/8"]"#)
            .msg
            .contains("iptables backend was requested but configuration contains nftables-specific options [conditionsV6]"));
        assert!(
            err(r#","externalSetMarkChain":"X","conditionsV4":["ip saddr 10.0.0.0/8"]"#)
                .msg
                .contains("nftables-specific options [conditionsV4]")
        );
        for bad_word in [
            r#"["-s","1.2.3.4\nCOMMIT"]"#,
            r#"["-m","comment","--comment","a\"b"]"#,
        ] {
            let e = err(&format!(r#","conditionsV4":{bad_word}"#));
            assert!(e.msg.contains("conditionsV4"), "{}", e.msg);
        }
        assert!(err(r#","externalSetMarkChain":"A CHAIN""#)
            .msg
            .contains("not an iptables chain name"));
        assert!(
            err(r#","externalSetMarkChain":"A-VERY-LONG-CHAIN-NAME-OF-29-B""#)
                .msg
                .contains("not an iptables chain name")
        );
        assert!(err(r#","snat":"yes""#)
            .msg
            .contains("parsing network configuration"));
    }

    /// containerd 1.6's portmap stdin as captured (go-cni marshals its
    /// `PortMapping` without JSON tags).
    const CONTAINERD_STDIN: &str = r#"{"capabilities":{"portMappings":true},"cniVersion":"1.0.0","name":"ctrdcni-net",
 "prevResult":{"cniVersion":"1.0.0","dns":{},
   "interfaces":[{"mac":"62:89:07:ee:2a:f2","name":"cni0"},{"mac":"d2:e0:74:61:bd:a4","name":"veth98ee3ee3"},
                 {"mac":"6e:c5:92:fe:b9:d9","name":"eth0","sandbox":"/var/run/netns/cni-35a1bc58-872e-4f04-aacb-0833bb0fad0c"}],
   "ips":[{"address":"10.90.0.2/24","gateway":"10.90.0.1","interface":2}],"routes":[{"dst":"0.0.0.0/0"}]},
 "runtimeConfig":{"portMappings":[{"HostPort":18191,"ContainerPort":80,"Protocol":"tcp","HostIP":""}]},
 "type":"portmap"}"#;

    #[test]
    fn containerd_stdin_parses_like_the_lowercase_one() {
        let lower = CONTAINERD_STDIN
            .replace("HostPort", "hostPort")
            .replace("ContainerPort", "containerPort")
            .replace("Protocol", "protocol")
            .replace("HostIP", "hostIP");
        let want = parse(lower.as_bytes()).unwrap();
        assert_eq!(
            want.mappings,
            [HostPortMapping {
                host_port: 18191,
                container_port: 80,
                protocol: Protocol::Tcp,
                host_ip: None
            }]
        );
        assert_eq!(parse(CONTAINERD_STDIN.as_bytes()).unwrap(), want);
    }

    #[test]
    fn every_field_is_read_in_go_and_mixed_casing() {
        let lower = conf(
            r#","snat":false,"masqAll":true,"markMasqBit":5,"backend":"nftables",
               "conditionsV4":["ip saddr 10.0.0.0/8"],"conditionsV6":["ip6 saddr fd00::/8"],
               "runtimeConfig":{"portMappings":[
                 {"hostPort":8080,"containerPort":80,"protocol":"udp","hostIP":"127.0.0.1"}]}"#,
        );
        let go = conf(
            r#","SNAT":false,"MasqAll":true,"MarkMasqBit":5,"Backend":"nftables",
               "ConditionsV4":["ip saddr 10.0.0.0/8"],"ConditionsV6":["ip6 saddr fd00::/8"],
               "RuntimeConfig":{"PortMappings":[
                 {"HostPort":8080,"ContainerPort":80,"Protocol":"udp","HostIP":"127.0.0.1"}]}"#,
        );
        let mixed = conf(
            r#","sNaT":false,"MASQALL":true,"markmasqbit":5,"bAcKeNd":"nftables",
               "CONDITIONSv4":["ip saddr 10.0.0.0/8"],"conditionsv6":["ip6 saddr fd00::/8"],
               "runtimeconfig":{"portmappings":[
                 {"hOsTpOrT":8080,"CONTAINERPORT":80,"pRoToCoL":"udp","hostip":"127.0.0.1"}]}"#,
        );
        let want = parse(&lower).unwrap();
        assert!(!want.snat && want.masq_all && want.mark_masq_bit == 5);
        assert_eq!(want.conditions_v4.len(), 1);
        assert_eq!(want.conditions_v6.len(), 1);
        assert_eq!(want.mappings[0].host_port, 8080);
        assert_eq!(parse(&go).unwrap(), want);
        assert_eq!(parse(&mixed).unwrap(), want);
        // externalSetMarkChain is matched too (and selects iptables).
        let c = parse(&conf(r#","ExternalSetMarkChain":"KUBE-MARK-MASQ""#)).unwrap();
        assert_eq!(c.backend, Backend::Iptables);
        // null is absent; the last key naming a field wins.
        let c = parse(&conf(
            r#","snat":null,"runtimeConfig":{"portMappings":[
                 {"hostPort":1,"HostPort":2,"containerPort":80,"protocol":null,"hostIP":null}]}"#,
        ))
        .unwrap();
        assert!(c.snat);
        assert_eq!(
            (
                c.mappings[0].host_port,
                c.mappings[0].protocol,
                c.mappings[0].host_ip
            ),
            (2, Protocol::Tcp, None)
        );
    }

    #[test]
    fn malformed_runtime_config_names_the_path() {
        for (extra, needle) in [
            (
                r#","runtimeConfig":{"portMappings":{"hostPort":80}}"#,
                "runtimeConfig.portMappings: invalid type",
            ),
            (
                r#","runtimeConfig":{"portMappings":[{"HostPort":"80"}]}"#,
                "runtimeConfig.portMappings[0].HostPort: invalid type",
            ),
            (
                r#","runtimeConfig":"garbage""#,
                "runtimeConfig: invalid type",
            ),
            (
                r#","runtimeConfig":{"portMappings":[{"ContainerPort":80}]}"#,
                "runtimeConfig.portMappings[0].hostPort: missing",
            ),
        ] {
            let e = err(extra);
            assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{extra}");
            assert!(e.msg.contains(needle), "{extra}: {}", e.msg);
        }
    }

    #[test]
    fn selects_container_ips_like_upstream() {
        let prev: CniResult = serde_json::from_value(serde_json::json!({
            "interfaces": [
                {"name": "veth1"},
                {"name": "eth0", "sandbox": "/run/netns/x"},
                {"name": "eth1", "sandbox": "/run/netns/x"}
            ],
            "ips": [
                {"address": "10.0.0.1/24", "interface": 0},
                {"address": "10.0.1.2/24", "interface": 2},
                {"address": "10.0.0.2/24", "interface": 1},
                {"address": "10.0.0.3/24", "interface": 1},
                {"address": "fd00::2/64"}
            ]
        }))
        .unwrap();
        let ips = container_ips(&prev, "eth0");
        assert_eq!(ips.v4, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(ips.v6, Some("fd00::2".parse().unwrap()));
        assert!(container_ips(&CniResult::default(), "eth0").is_empty());
    }
}
