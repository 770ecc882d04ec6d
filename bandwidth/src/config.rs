//! Configuration: stdin JSON → a validated [`Config`]. Pure (no I/O, no
//! kernel); every rejection is a code 7 error that names the field. Owns the
//! precedence rule (static keys win over `runtimeConfig.bandwidth` as soon as
//! any static key is present, as upstream) and the meaning of our own keys
//! (`latencyMs`, `maxBurst`, `shapedSubnets`, `unshapedSubnets`).

use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::Value;

use cni::CniError;

/// Upstream rejects `burst / 8 >= u32::MAX` bytes ("burst cannot be more than 4GB").
pub const MAX_BURST_BYTES: u64 = u32::MAX as u64;
/// Below one byte per second the kernel has nothing to shape (upstream divides by zero).
pub const MIN_RATE_BITS: u64 = 8;
/// The TBF latency upstream hard-codes.
pub const DEFAULT_LATENCY_MS: u32 = 25;
/// A latency above this is a configuration mistake, not a shaping choice.
pub const MAX_LATENCY_MS: u32 = 10_000;

/// Rate and burst of one direction, as configured (bits/s and bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RateLimit {
    pub rate_bits: u64,
    pub burst_bits: u64,
}

/// Where the four rate/burst keys came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LimitSource {
    /// Top-level `ingressRate` … keys (win whenever one of them is present).
    Static,
    /// `runtimeConfig.bandwidth` (the `bandwidth` capability).
    Runtime,
    /// Neither: nothing to shape.
    Absent,
}

/// Which traffic the shaper applies to. Subnets are matched on the address
/// of the far end: the **destination** of packets the pod sends (egress) and
/// the **source** of packets the pod receives (ingress).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum SubnetPolicy {
    /// Everything is shaped (the upstream behaviour).
    All,
    /// `shapedSubnets`: only traffic to/from these subnets is shaped.
    Only(Vec<IpNetwork>),
    /// `unshapedSubnets`: traffic to/from these subnets bypasses shaping.
    Except(Vec<IpNetwork>),
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Config {
    pub source: LimitSource,
    /// Shaping of traffic towards the pod (TBF on the host veth).
    pub ingress: Option<RateLimit>,
    /// Shaping of traffic from the pod (TBF on the IFB).
    pub egress: Option<RateLimit>,
    pub latency_ms: u32,
    /// Bursts above this many bits are lowered to it (runtimes send ~4 GB).
    pub max_burst_bits: Option<u64>,
    pub subnets: SubnetPolicy,
}

impl Config {
    /// True when neither direction is shaped.
    pub fn is_noop(&self) -> bool {
        self.ingress.is_none() && self.egress.is_none()
    }
}

/// The stdin fields bandwidth reads, matched as Go matches keys
/// ([`cni::gojson`]: containerd sends `runtimeConfig.bandwidth` as
/// `{"IngressRate":…,"IngressBurst":…}`). Numbers stay `Value`s so the
/// messages below can name the field and say what is wrong.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    #[serde(default)]
    latency_ms: Option<Value>,
    #[serde(default)]
    max_burst: Option<Value>,
    #[serde(default)]
    shaped_subnets: Option<Value>,
    #[serde(default)]
    unshaped_subnets: Option<Value>,
    #[serde(default)]
    runtime_config: Option<RawRuntimeConfig>,
}

#[derive(Debug, Default, Deserialize)]
struct RawRuntimeConfig {
    #[serde(default)]
    bandwidth: Option<Value>,
}

/// The four rate/burst keys, top-level (decoded from the same document as
/// [`RawConf`]) or in `runtimeConfig.bandwidth`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRates {
    #[serde(default)]
    ingress_rate: Option<Value>,
    #[serde(default)]
    ingress_burst: Option<Value>,
    #[serde(default)]
    egress_rate: Option<Value>,
    #[serde(default)]
    egress_burst: Option<Value>,
}

impl RawRates {
    fn is_empty(&self) -> bool {
        self.ingress_rate.is_none()
            && self.ingress_burst.is_none()
            && self.egress_rate.is_none()
            && self.egress_burst.is_none()
    }
}

/// Parses and validates the plugin's stdin.
pub fn parse(stdin: &[u8]) -> Result<Config, CniError> {
    let bad = |e: cni::gojson::Error| {
        CniError::invalid_config(format!("bandwidth: parsing configuration: {e}"))
    };
    let doc = cni::gojson::Document::parse(stdin).map_err(bad)?;
    let top: RawRates = doc.clone().decode().map_err(bad)?;
    let raw: RawConf = doc.decode().map_err(bad)?;
    let latency_ms = match raw.latency_ms {
        None => DEFAULT_LATENCY_MS,
        Some(v) => {
            let n = unsigned(&v, "latencyMs")?;
            if n == 0 || n > u64::from(MAX_LATENCY_MS) {
                return Err(CniError::invalid_config(format!(
                    "bandwidth: latencyMs must be between 1 and {MAX_LATENCY_MS} (milliseconds), got {n}"
                )));
            }
            n as u32
        }
    };
    let max_burst_bits = match raw.max_burst {
        None => None,
        Some(v) => {
            let n = unsigned(&v, "maxBurst")?;
            if n < 8 {
                return Err(CniError::invalid_config(format!(
                    "bandwidth: maxBurst must be at least 8 bits, got {n}"
                )));
            }
            Some(n)
        }
    };
    let subnets = subnet_policy(raw.shaped_subnets, raw.unshaped_subnets)?;

    let (source, entry, prefix) = if !top.is_empty() {
        (LimitSource::Static, Some(top), "")
    } else {
        match raw.runtime_config.and_then(|rc| rc.bandwidth) {
            None => (LimitSource::Absent, None, ""),
            Some(v @ Value::Object(_)) => {
                let rates = cni::gojson::from_value(v).map_err(|e| {
                    CniError::invalid_config(format!("bandwidth: runtimeConfig.bandwidth: {e}"))
                })?;
                (
                    LimitSource::Runtime,
                    Some(rates),
                    "runtimeConfig.bandwidth.",
                )
            }
            Some(other) => {
                return Err(CniError::invalid_config(format!(
                    "bandwidth: runtimeConfig.bandwidth must be an object, got {other}"
                )))
            }
        }
    };
    let (ingress, egress) = match entry {
        None => (None, None),
        Some(m) => (
            direction(
                m.ingress_rate,
                m.ingress_burst,
                prefix,
                "ingress",
                max_burst_bits,
            )?,
            direction(
                m.egress_rate,
                m.egress_burst,
                prefix,
                "egress",
                max_burst_bits,
            )?,
        ),
    };
    Ok(Config {
        source,
        ingress,
        egress,
        latency_ms,
        max_burst_bits,
        subnets,
    })
}

/// One direction's rate and burst: both zero means off.
fn direction(
    rate: Option<Value>,
    burst: Option<Value>,
    prefix: &str,
    dir: &str,
    max_burst_bits: Option<u64>,
) -> Result<Option<RateLimit>, CniError> {
    let rate_key = format!("{prefix}{dir}Rate");
    let burst_key = format!("{prefix}{dir}Burst");
    let read = |v: Option<Value>, field: &str| -> Result<u64, CniError> {
        match v {
            None => Ok(0),
            Some(v) => unsigned(&v, field),
        }
    };
    let rate = read(rate, &rate_key)?;
    let burst = read(burst, &burst_key)?;
    match (rate, burst) {
        (0, 0) => return Ok(None),
        (_, 0) => {
            return Err(CniError::invalid_config(format!(
                "bandwidth: if rate is set, burst must also be set ({rate_key} is {rate}, {burst_key} is missing or 0)"
            )))
        }
        (0, _) => {
            return Err(CniError::invalid_config(format!(
                "bandwidth: if burst is set, rate must also be set ({burst_key} is {burst}, {rate_key} is missing or 0)"
            )))
        }
        _ => {}
    }
    if rate < MIN_RATE_BITS {
        return Err(CniError::invalid_config(format!(
            "bandwidth: {rate_key} must be at least {MIN_RATE_BITS} bit/s (one byte per second), got {rate}"
        )));
    }
    let burst = max_burst_bits.map_or(burst, |cap| burst.min(cap));
    if burst / 8 >= MAX_BURST_BYTES {
        return Err(CniError::invalid_config(format!(
            "bandwidth: burst cannot be more than 4GB ({burst_key} is {burst} bits; the limit is {} bits)",
            MAX_BURST_BYTES * 8
        )));
    }
    if burst < 8 {
        return Err(CniError::invalid_config(format!(
            "bandwidth: {burst_key} must be at least 8 bits (one byte), got {burst}"
        )));
    }
    Ok(Some(RateLimit {
        rate_bits: rate,
        burst_bits: burst,
    }))
}

fn subnet_policy(shaped: Option<Value>, unshaped: Option<Value>) -> Result<SubnetPolicy, CniError> {
    let shaped = subnet_list(shaped, "shapedSubnets")?;
    let unshaped = subnet_list(unshaped, "unshapedSubnets")?;
    match (shaped, unshaped) {
        (Some(_), Some(_)) => Err(CniError::invalid_config(
            "bandwidth: unshapedSubnets and shapedSubnets cannot be both specified, one of them should be discarded",
        )),
        (Some(s), None) => Ok(SubnetPolicy::Only(s)),
        (None, Some(u)) => Ok(SubnetPolicy::Except(u)),
        (None, None) => Ok(SubnetPolicy::All),
    }
}

/// A non-empty list of CIDRs (host bits cleared); an empty list is "unset".
fn subnet_list(v: Option<Value>, key: &str) -> Result<Option<Vec<IpNetwork>>, CniError> {
    let items = match v {
        None => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(CniError::invalid_config(format!(
                "bandwidth: {key} must be a list of CIDR strings, got {other}"
            )))
        }
    };
    if items.is_empty() {
        return Ok(None);
    }
    let mut out: Vec<IpNetwork> = Vec::with_capacity(items.len());
    for item in &items {
        let Some(text) = item.as_str() else {
            return Err(CniError::invalid_config(format!(
                "bandwidth: {key}: bad subnet {item} provided, expected a CIDR string such as \"10.0.0.0/8\""
            )));
        };
        let cidr: cni::types::Cidr = text.parse().map_err(|_| {
            CniError::invalid_config(format!(
                "bandwidth: {key}: bad subnet {text:?} provided, expected a CIDR such as \"10.0.0.0/8\" or \"fd00::/64\""
            ))
        })?;
        let net = IpNetwork::new(cidr.network(), cidr.prefix()).map_err(|e| {
            CniError::invalid_config(format!("bandwidth: {key}: bad subnet {text:?}: {e}"))
        })?;
        if !out.contains(&net) {
            out.push(net);
        }
    }
    Ok(Some(out))
}

/// A non-negative integer, with a message naming `field` otherwise.
fn unsigned(v: &Value, field: &str) -> Result<u64, CniError> {
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    let why = match v {
        Value::Number(n) if n.as_i64().is_some_and(|i| i < 0) => "must not be negative".to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f < 0.0 => "must not be negative".to_string(),
            Some(f) if f.fract() == 0.0 && f < 9.007_199_254_740_992e15 => return Ok(f as u64),
            _ => "must be a whole number".to_string(),
        },
        _ => "must be a number".to_string(),
    };
    Err(CniError::invalid_config(format!(
        "bandwidth: {field} {why}, got {v}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(v: Value) -> Result<Config, CniError> {
        parse(v.to_string().as_bytes())
    }

    fn err(v: Value) -> String {
        let e = conf(v).unwrap_err();
        assert_eq!(e.code.as_u32(), 7, "{e:?}");
        e.msg
    }

    /// containerd 1.6's bandwidth stdin: go-cni marshals its
    /// `BandWidth` struct without JSON tags.
    fn containerd_stdin(go_cased: bool) -> String {
        let keys = if go_cased {
            ["IngressRate", "IngressBurst", "EgressRate", "EgressBurst"]
        } else {
            ["ingressRate", "ingressBurst", "egressRate", "egressBurst"]
        };
        format!(
            r#"{{"capabilities":{{"bandwidth":true}},"cniVersion":"1.0.0","name":"ctrdcni-net",
 "prevResult":{{"cniVersion":"1.0.0","dns":{{}},
   "interfaces":[{{"mac":"62:89:07:ee:2a:f2","name":"cni0"}},{{"mac":"d2:e0:74:61:bd:a4","name":"veth98ee3ee3"}},
                 {{"mac":"6e:c5:92:fe:b9:d9","name":"eth0","sandbox":"/var/run/netns/cni-35a1bc58-872e-4f04-aacb-0833bb0fad0c"}}],
   "ips":[{{"address":"10.90.0.2/24","gateway":"10.90.0.1","interface":2}}],"routes":[{{"dst":"0.0.0.0/0"}}]}},
 "runtimeConfig":{{"bandwidth":{{"{}":10000000,"{}":4294967295,"{}":10000000,"{}":4294967295}}}},
 "type":"bandwidth"}}"#,
            keys[0], keys[1], keys[2], keys[3]
        )
    }

    #[test]
    fn containerd_stdin_parses_like_the_lowercase_one() {
        let want = parse(containerd_stdin(false).as_bytes()).unwrap();
        assert_eq!(want.source, LimitSource::Runtime);
        let limit = RateLimit {
            rate_bits: 10_000_000,
            burst_bits: 4_294_967_295,
        };
        assert_eq!((want.ingress, want.egress), (Some(limit), Some(limit)));
        assert_eq!(parse(containerd_stdin(true).as_bytes()).unwrap(), want);
    }

    #[test]
    fn every_field_is_read_in_go_and_mixed_casing() {
        let lower = json!({"ingressRate": 8000, "ingressBurst": 800, "egressRate": 1600,
            "egressBurst": 160, "latencyMs": 50, "maxBurst": 400,
            "unshapedSubnets": ["10.0.0.0/8"]});
        let go = json!({"IngressRate": 8000, "IngressBurst": 800, "EgressRate": 1600,
            "EgressBurst": 160, "LatencyMs": 50, "MaxBurst": 400,
            "UnshapedSubnets": ["10.0.0.0/8"]});
        let mixed = json!({"iNgReSsRaTe": 8000, "INGRESSBURST": 800, "egressrate": 1600,
            "eGRESSbURST": 160, "LATENCYMS": 50, "maxburst": 400,
            "unshapedsubnets": ["10.0.0.0/8"]});
        let want = conf(lower).unwrap();
        assert_eq!(want.latency_ms, 50);
        assert_eq!(want.max_burst_bits, Some(400));
        assert_eq!(want.ingress.unwrap().burst_bits, 400);
        assert!(matches!(want.subnets, SubnetPolicy::Except(_)));
        assert_eq!(conf(go).unwrap(), want);
        assert_eq!(conf(mixed).unwrap(), want);
        let shaped = conf(json!({"ShapedSubnets": ["10.0.0.0/8"]})).unwrap();
        assert!(matches!(shaped.subnets, SubnetPolicy::Only(_)));
        // Top-level RuntimeConfig and mixed-case bandwidth keys.
        let rc =
            conf(json!({"RuntimeConfig": {"BANDWIDTH": {"egressrate": 16, "EgressBurst": 8}}}))
                .unwrap();
        assert_eq!(rc.source, LimitSource::Runtime);
        assert_eq!(rc.egress.unwrap().rate_bits, 16);
        // null is absent: it neither counts as a static key nor as a value.
        let rc = conf(json!({"ingressRate": null, "runtimeConfig": {"bandwidth": {
            "ingressRate": 8, "ingressBurst": 8, "egressRate": null}}}))
        .unwrap();
        assert_eq!(rc.source, LimitSource::Runtime);
        assert_eq!(rc.egress, None);
    }

    #[test]
    fn malformed_runtime_config_is_code_7_naming_it() {
        assert!(err(json!({"runtimeConfig": 5})).contains("runtimeConfig: invalid type"));
        assert!(err(json!({"runtimeConfig": {"bandwidth": [1]}}))
            .contains("runtimeConfig.bandwidth must be an object"));
        assert!(err(
            json!({"runtimeConfig": {"bandwidth": {"IngressRate": "x", "ingressBurst": 8}}})
        )
        .contains("runtimeConfig.bandwidth.ingressRate must be a number"));
    }

    #[test]
    fn static_keys_are_read() {
        let c = conf(
            json!({"ingressRate": 8000, "ingressBurst": 80, "egressRate": 16, "egressBurst": 8}),
        )
        .unwrap();
        assert_eq!(c.source, LimitSource::Static);
        assert_eq!(
            c.ingress,
            Some(RateLimit {
                rate_bits: 8000,
                burst_bits: 80
            })
        );
        assert_eq!(
            c.egress,
            Some(RateLimit {
                rate_bits: 16,
                burst_bits: 8
            })
        );
        assert_eq!(c.latency_ms, 25);
        assert_eq!(c.subnets, SubnetPolicy::All);
    }

    #[test]
    fn runtime_config_used_only_without_static_keys() {
        let rc = json!({"bandwidth": {"ingressRate": 8, "ingressBurst": 8, "egressRate": 16, "egressBurst": 9}});
        let c = conf(json!({"runtimeConfig": rc})).unwrap();
        assert_eq!(c.source, LimitSource::Runtime);
        assert_eq!(
            c.egress,
            Some(RateLimit {
                rate_bits: 16,
                burst_bits: 9
            })
        );
        // Upstream's test spelling.
        let c =
            conf(json!({"runtimeConfig": {"bandWidth": {"ingressRate": 8, "ingressBurst": 8}}}))
                .unwrap();
        assert_eq!(
            c.ingress,
            Some(RateLimit {
                rate_bits: 8,
                burst_bits: 8
            })
        );
        // A static key (even an invalid pair) wins over a valid runtime config.
        let m = err(json!({"ingressRate": 0, "ingressBurst": 123, "runtimeConfig": rc}));
        assert!(m.contains("if burst is set, rate must also be set"), "{m}");
        let c = conf(json!({"egressRate": 0, "runtimeConfig": rc})).unwrap();
        assert_eq!(c.source, LimitSource::Static);
        assert!(c.is_noop());
    }

    #[test]
    fn absent_and_zero_mean_nothing_to_shape() {
        assert!(conf(json!({})).unwrap().is_noop());
        assert_eq!(conf(json!({})).unwrap().source, LimitSource::Absent);
        assert!(conf(json!({"ingressRate": 0, "ingressBurst": 0}))
            .unwrap()
            .is_noop());
        assert!(conf(json!({"runtimeConfig": {"bandwidth": {}}}))
            .unwrap()
            .is_noop());
    }

    #[test]
    fn rejections_name_the_field() {
        let m = err(json!({"ingressRate": 100}));
        assert!(
            m.contains("if rate is set, burst must also be set") && m.contains("ingressBurst"),
            "{m}"
        );
        let m = err(json!({"egressBurst": 100}));
        assert!(
            m.contains("if burst is set, rate must also be set") && m.contains("egressRate"),
            "{m}"
        );
        let m = err(json!({"runtimeConfig": {"bandwidth": {"egressRate": 1000}}}));
        assert!(m.contains("runtimeConfig.bandwidth.egressBurst"), "{m}");
        let m = err(json!({"ingressRate": 7, "ingressBurst": 100}));
        assert!(m.contains("ingressRate must be at least 8 bit/s"), "{m}");
        let m = err(json!({"ingressRate": -5, "ingressBurst": 100}));
        assert!(m.contains("ingressRate must not be negative"), "{m}");
        let m = err(json!({"ingressRate": 1.5, "ingressBurst": 100}));
        assert!(m.contains("ingressRate must be a whole number"), "{m}");
        let m = err(json!({"ingressRate": "10M", "ingressBurst": 100}));
        assert!(m.contains("ingressRate must be a number"), "{m}");
        let m = err(json!({"ingressRate": 1000, "ingressBurst": 4}));
        assert!(m.contains("ingressBurst must be at least 8 bits"), "{m}");
        let m = err(json!({"latencyMs": 0}));
        assert!(m.contains("latencyMs"), "{m}");
        let m = err(json!({"maxBurst": -1}));
        assert!(m.contains("maxBurst must not be negative"), "{m}");
        let m = err(json!({"runtimeConfig": {"bandwidth": 5}}));
        assert!(
            m.contains("runtimeConfig.bandwidth must be an object"),
            "{m}"
        );
    }

    #[test]
    fn burst_limit_matches_upstream() {
        let four_gib_bits: u64 = 4 * 1024 * 1024 * 1024 * 8;
        assert!(conf(json!({"ingressRate": 1000, "ingressBurst": four_gib_bits - 16})).is_ok());
        let m = err(json!({"ingressRate": 1000, "ingressBurst": four_gib_bits}));
        assert!(m.contains("burst cannot be more than 4GB"), "{m}");
        // What the runtimes send: containerd MaxUint32 bits, CRI-O just under 4 GB.
        assert!(
            conf(json!({"egressRate": 10_000_000u64, "egressBurst": u64::from(u32::MAX)})).is_ok()
        );
        assert!(conf(
            json!({"egressRate": 10_000_000u64, "egressBurst": u64::from(u32::MAX) * 8 - 1})
        )
        .is_ok());
    }

    #[test]
    fn max_burst_caps_runtime_bursts() {
        let c = conf(json!({"maxBurst": 800_000, "runtimeConfig": {"bandwidth": {
            "ingressRate": 10_000_000, "ingressBurst": 4_294_967_295u64,
            "egressRate": 10_000_000, "egressBurst": 8000}}}))
        .unwrap();
        assert_eq!(c.ingress.unwrap().burst_bits, 800_000);
        assert_eq!(c.egress.unwrap().burst_bits, 8000);
        // The cap also rescues a burst above the 4 GB limit.
        let big = 5u64 * 1024 * 1024 * 1024 * 8;
        assert!(conf(json!({"maxBurst": 8000, "ingressRate": 1000, "ingressBurst": big})).is_ok());
    }

    #[test]
    fn latency_is_configurable() {
        assert_eq!(conf(json!({"latencyMs": 5})).unwrap().latency_ms, 5);
        assert!(err(json!({"latencyMs": 10_001})).contains("between 1 and 10000"));
    }

    #[test]
    fn subnets() {
        let c =
            conf(json!({"unshapedSubnets": ["10.1.2.3/16", "fd00::1/64", "10.1.0.0/16"]})).unwrap();
        assert_eq!(
            c.subnets,
            SubnetPolicy::Except(vec![
                "10.1.0.0/16".parse().unwrap(),
                "fd00::/64".parse().unwrap()
            ])
        );
        let c = conf(json!({"shapedSubnets": ["0.0.0.0/0"]})).unwrap();
        assert_eq!(
            c.subnets,
            SubnetPolicy::Only(vec!["0.0.0.0/0".parse().unwrap()])
        );
        assert_eq!(
            conf(json!({"shapedSubnets": []})).unwrap().subnets,
            SubnetPolicy::All
        );
        let m = err(json!({"shapedSubnets": ["10.0.0.0/8"], "unshapedSubnets": ["10.1.0.0/16"]}));
        assert!(m.contains("cannot be both specified"), "{m}");
        let m = err(json!({"unshapedSubnets": ["10.0.0.1"]}));
        assert!(m.contains("bad subnet \"10.0.0.1\""), "{m}");
        let m = err(json!({"unshapedSubnets": ["10.0.0.0/33"]}));
        assert!(m.contains("unshapedSubnets"), "{m}");
        let m = err(json!({"unshapedSubnets": "10.0.0.0/8"}));
        assert!(m.contains("must be a list"), "{m}");
    }
}
