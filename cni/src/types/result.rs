//! Results in every layout of the spec's history, held in one canonical (1.1)
//! shape, with explicit conversions: `from_value` reads any layout, `to_value`
//! writes the layout of the requested version. Unknown keys are kept in
//! `extra` maps so a pass-through at the same version loses nothing.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{CniError, ErrorCode};
use crate::gojson;
use crate::types::Cidr;
use crate::version::{CniVersion, ResultLayout};

/// A result in canonical (1.1.0) form, whatever version it arrived in.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CniResult {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// The interfaces created or used.
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// The IP addresses assigned.
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// The routes installed.
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    /// The DNS settings.
    pub dns: Dns,
    /// Top-level keys this crate does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(remote = "Self")]
/// An interface of a result.
pub struct Interface {
    /// Its name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Its MAC address, when known.
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Its MTU, when known (1.1.0).
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The netns path when the interface is in the sandbox; empty or absent on the host.
    pub sandbox: Option<String>,
    #[serde(
        rename = "socketPath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    /// `socketPath` (1.1.0).
    pub socket_path: Option<String>,
    #[serde(rename = "pciID", default, skip_serializing_if = "Option::is_none")]
    /// `pciID` (1.1.0).
    pub pci_id: Option<String>,
    #[serde(flatten)]
    /// Fields this crate does not model, kept as they were.
    pub extra: Map<String, Value>,
}

crate::go_fields!(CniResult, ["interfaces", "ips", "routes", "dns"]);
crate::go_fields!(
    Interface,
    ["name", "mac", "mtu", "sandbox", "socketPath", "pciID"]
);
crate::go_fields!(IpConfig, ["interface", "address", "gateway"]);
crate::go_fields!(
    Route,
    ["dst", "gw", "mtu", "advmss", "priority", "table", "scope"]
);
crate::go_fields!(Dns, ["nameservers", "domain", "search", "options"]);
crate::go_fields!(LegacyIp, ["ip", "gateway", "routes"]);
crate::go_fields!(LegacyRoute, ["dst", "gw"]);

/// Top-level keys of every layout (Go-style matching happens against these
/// before the version decides the layout).
const RESULT_KEYS: &[&str] = &[
    "cniVersion",
    "interfaces",
    "ips",
    "routes",
    "dns",
    "ip4",
    "ip6",
];
/// `ips[]` keys including the 0.3.x/0.4.0 `version`.
const IP_KEYS: &[&str] = &["interface", "address", "gateway", "version"];

impl Interface {
    /// True for an interface inside a container (it names a sandbox).
    pub fn in_sandbox(&self) -> bool {
        self.sandbox.as_deref().is_some_and(|s| !s.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
/// An IP address of a result.
pub struct IpConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The index into `interfaces` this address is on.
    pub interface: Option<usize>,
    /// The address with its prefix.
    pub address: Cidr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The gateway, when there is one.
    pub gateway: Option<IpAddr>,
    #[serde(flatten)]
    /// Fields this crate does not model, kept as they were.
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
/// A route of a result.
pub struct Route {
    /// The destination.
    pub dst: Cidr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The next hop, when not the default.
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `mtu` (1.1.0).
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `advmss` (1.1.0).
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `priority` (1.1.0).
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `table` (1.1.0).
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `scope` (1.1.0).
    pub scope: Option<u32>,
    #[serde(flatten)]
    /// Fields this crate does not model, kept as they were.
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(remote = "Self")]
/// The DNS settings of a result.
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// Name servers, in order.
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The local domain.
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// Search domains, in order.
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// Resolver options.
    pub options: Vec<String>,
    #[serde(flatten)]
    /// Fields this crate does not model, kept as they were.
    pub extra: Map<String, Value>,
}

impl Dns {
    /// True when no DNS setting is present.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
            && self.extra.is_empty()
    }
}

/// 0.1.0/0.2.0 `ip4` / `ip6` block. Unknown keys land in the canonical
/// `IpConfig::extra` and come back from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
struct LegacyIp {
    ip: Cidr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<LegacyRoute>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// A route inside a legacy `ip4`/`ip6` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
struct LegacyRoute {
    dst: Cidr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Interface keys spec 1.1.0 added; in an older result they are unknown keys.
const INTERFACE_KEYS_1_1: &[&str] = &["mtu", "socketPath", "pciID"];
/// Route keys spec 1.1.0 added.
const ROUTE_KEYS_1_1: &[&str] = &["mtu", "advmss", "priority", "table", "scope"];

/// Removes `keys` from every object of the array at `rest[list]`, returning
/// what was removed per element (same order as the array).
fn take_keys(rest: &mut Map<String, Value>, list: &str, keys: &[&str]) -> Vec<Map<String, Value>> {
    let Some(Value::Array(items)) = rest.get_mut(list) else {
        return Vec::new();
    };
    items
        .iter_mut()
        .map(|item| {
            let mut taken = Map::new();
            if let Some(o) = item.as_object_mut() {
                for k in keys {
                    if let Some(v) = o.remove(*k) {
                        taken.insert((*k).to_string(), v);
                    }
                }
            }
            taken
        })
        .collect()
}

/// A result object with Go's key matching applied to the keys this module
/// reads by name (top level, `interfaces[]`, `ips[]`, `routes[]`), so the
/// version logic below sees `"IPs"` as `ips`. Typed decoding matches the
/// rest (`go_fields!`).
fn go_keys(obj: Map<String, Value>) -> Map<String, Value> {
    let mut obj = gojson::match_keys(obj, RESULT_KEYS);
    for (list, fields) in [
        ("interfaces", Interface::GO_FIELDS),
        ("ips", IP_KEYS),
        ("routes", Route::GO_FIELDS),
    ] {
        if let Some(Value::Array(items)) = obj.get_mut(list) {
            for item in items.iter_mut() {
                if let Value::Object(o) = item {
                    *o = gojson::match_keys(std::mem::take(o), fields);
                }
            }
        }
    }
    obj
}

fn decode_error(what: &str, e: impl std::fmt::Display) -> CniError {
    CniError::new(ErrorCode::Decode, format!("decoding {what}: {e}"))
}

impl CniResult {
    /// Reads a result of any layout. A result without `cniVersion` is taken to
    /// be `assumed` (the configuration's version), as libcni does. Returns the
    /// canonical result and the version it was labelled with.
    pub fn from_value(
        value: &Value,
        assumed: CniVersion,
    ) -> Result<(CniResult, CniVersion), CniError> {
        let obj = value
            .as_object()
            .ok_or_else(|| decode_error("result", "not a JSON object"))?;
        let obj = &go_keys(obj.clone());
        let version = match obj.get("cniVersion") {
            None => assumed,
            Some(Value::String(s)) if s.is_empty() => assumed,
            Some(Value::String(s)) => s.parse().map_err(|e| {
                CniError::new(ErrorCode::IncompatibleVersion, format!("result: {e}"))
            })?,
            Some(other) => {
                return Err(decode_error(
                    "result",
                    format!("cniVersion {other} is not a string"),
                ))
            }
        };
        let mut rest = obj.clone();
        rest.remove("cniVersion");
        let is_legacy_shape = rest.contains_key("ip4") || rest.contains_key("ip6");
        let result = if version.layout() == ResultLayout::Legacy && is_legacy_shape {
            Self::from_legacy(rest)?
        } else {
            // 0.3.x/0.4.0 and 1.x differ only in `ips[].version`, which we drop
            // here and derive from the address family when writing 0.x.
            take_keys(&mut rest, "ips", &["version"]);
            // Before 1.1.0 the 1.1 fields are unknown keys: keep them as such
            // (untyped, so a same-version pass-through prints them back).
            let (iface_extra, route_extra) = if version < CniVersion::V1_1_0 {
                (
                    take_keys(&mut rest, "interfaces", INTERFACE_KEYS_1_1),
                    take_keys(&mut rest, "routes", ROUTE_KEYS_1_1),
                )
            } else {
                (Vec::new(), Vec::new())
            };
            let mut result: CniResult =
                gojson::from_value(Value::Object(rest)).map_err(|e| decode_error("result", e))?;
            for (iface, extra) in result.interfaces.iter_mut().zip(iface_extra) {
                iface.extra.extend(extra);
            }
            for (route, extra) in result.routes.iter_mut().zip(route_extra) {
                route.extra.extend(extra);
            }
            result
        };
        Ok((result, version))
    }

    fn from_legacy(mut rest: Map<String, Value>) -> Result<CniResult, CniError> {
        let mut result = CniResult::default();
        for key in ["ip4", "ip6"] {
            let Some(v) = rest.remove(key) else { continue };
            if v.is_null() {
                continue;
            }
            let legacy: LegacyIp =
                gojson::from_value(v).map_err(|e| decode_error(&format!("result {key}"), e))?;
            result.ips.push(IpConfig {
                interface: None,
                address: legacy.ip,
                gateway: legacy.gateway,
                extra: legacy.extra,
            });
            result.routes.extend(legacy.routes.into_iter().map(|r| {
                let mut route = Route::new(r.dst, r.gw);
                route.extra = r.extra;
                route
            }));
        }
        if let Some(dns) = rest.remove("dns") {
            result.dns = gojson::from_value(dns).map_err(|e| decode_error("result dns", e))?;
        }
        result.extra = rest;
        Ok(result)
    }

    /// Writes this result in the layout of `version`, labelled with it.
    /// Unknown keys pass through, except where one named like a field of
    /// that layout would make the output unreadable at its own version
    /// (found by fuzzing, issue #15 §4): then the unknown keys are dropped.
    pub fn to_value(&self, version: CniVersion) -> Result<Value, CniError> {
        let out = self.render(version)?;
        if !self.has_extras() || Self::from_value(&out, version).is_ok() {
            return Ok(out);
        }
        let mut bare = self.clone();
        bare.strip_all_extras();
        bare.render(version)
    }

    fn has_extras(&self) -> bool {
        !self.extra.is_empty()
            || !self.dns.extra.is_empty()
            || self.interfaces.iter().any(|i| !i.extra.is_empty())
            || self.ips.iter().any(|i| !i.extra.is_empty())
            || self.routes.iter().any(|r| !r.extra.is_empty())
    }

    fn strip_all_extras(&mut self) {
        self.extra.clear();
        self.dns.extra.clear();
        self.interfaces.iter_mut().for_each(|i| i.extra.clear());
        self.ips.iter_mut().for_each(|i| i.extra.clear());
        self.routes.iter_mut().for_each(|r| r.extra.clear());
    }

    fn render(&self, version: CniVersion) -> Result<Value, CniError> {
        let mut out = Map::new();
        out.insert("cniVersion".into(), version.as_str().into());
        match version.layout() {
            ResultLayout::V1 => {
                let mut this = self.clone();
                if version < CniVersion::V1_1_0 {
                    this.strip_1_1_fields();
                }
                this.strip_unknown_keys(LAYOUT_KEYS);
                let mut body = to_object(&this)?;
                // 1.1 keys kept as unknown from an older label become typed
                // fields here: only when they type-check (found by fuzzing).
                if version >= CniVersion::V1_1_0 && this.has_untyped_1_1_keys() {
                    let mut check = out.clone();
                    merge(&mut check, body.clone());
                    if CniResult::from_value(&Value::Object(check), version).is_err() {
                        this.strip_untyped_1_1_keys();
                        body = to_object(&this)?;
                    }
                }
                merge(&mut out, body);
            }
            ResultLayout::V04 => {
                let mut this = self.clone();
                this.strip_1_1_fields();
                this.strip_unknown_keys(LAYOUT_KEYS);
                let mut body = to_object(&this)?;
                if let Some(Value::Array(ips)) = body.get_mut("ips") {
                    for (ip, cfg) in ips.iter_mut().zip(&this.ips) {
                        if let Some(o) = ip.as_object_mut() {
                            let family = if cfg.address.is_ipv4() { "4" } else { "6" };
                            o.insert("version".into(), family.into());
                        }
                    }
                }
                // 0.3.x/0.4.0 always carry a `dns` object.
                body.entry("dns")
                    .or_insert_with(|| Value::Object(Map::new()));
                merge(&mut out, body);
            }
            ResultLayout::Legacy => {
                merge(&mut out, self.to_legacy_object()?);
            }
        }
        Ok(Value::Object(out))
    }

    /// The 0.1.0/0.2.0 layout: the first IPv4 address becomes `ip4`, the
    /// first IPv6 one `ip6`, routes go to the block of their family;
    /// interfaces and further addresses cannot be expressed. A result with
    /// no address is an error unless it is entirely empty (nothing is lost
    /// then, e.g. a pass-through plugin with no prevResult).
    fn to_legacy_object(&self) -> Result<Map<String, Value>, CniError> {
        let v4 = self.ips.iter().find(|ip| ip.address.is_ipv4());
        let v6 = self.ips.iter().find(|ip| !ip.address.is_ipv4());
        if v4.is_none() && v6.is_none() && !(self.interfaces.is_empty() && self.routes.is_empty()) {
            return Err(CniError::new(
                ErrorCode::IncompatibleVersion,
                "cannot convert: no valid IP addresses",
            )
            .with_details(
                "the 0.1.0/0.2.0 result layout needs an IPv4 or IPv6 address to carry \
                 interfaces and routes",
            ));
        }
        let mut out = self.extra.clone();
        out.retain(|k, _| !LEGACY_LAYOUT_KEYS.contains(&k.as_str()));
        for (key, ip, want_v4) in [("ip4", v4, true), ("ip6", v6, false)] {
            let Some(ip) = ip else { continue };
            let routes = self
                .routes
                .iter()
                .filter(|r| r.dst.is_ipv4() == want_v4)
                .map(|r| LegacyRoute {
                    dst: r.dst,
                    gw: r.gw,
                    extra: r.extra.clone(),
                })
                .collect();
            let legacy = LegacyIp {
                ip: ip.address,
                gateway: ip.gateway,
                routes,
                extra: ip.extra.clone(),
            };
            out.insert(
                key.into(),
                serde_json::to_value(legacy).map_err(|e| decode_error("ip", e))?,
            );
        }
        out.insert(
            "dns".into(),
            serde_json::to_value(&self.dns).map_err(|e| decode_error("dns", e))?,
        );
        Ok(out)
    }

    /// Drops unknown top-level keys that the target layout defines itself
    /// (a 0.2.0 result's unknown `ips`, a 0.3.0 one's unknown `ip6`): kept,
    /// they would be printed as that layout's field and not parse back
    /// (found by fuzzing, issue #15 §4).
    fn strip_unknown_keys(&mut self, keys: &[&str]) {
        self.extra.retain(|k, _| !keys.contains(&k.as_str()));
    }

    fn has_untyped_1_1_keys(&self) -> bool {
        self.interfaces
            .iter()
            .any(|i| INTERFACE_KEYS_1_1.iter().any(|k| i.extra.contains_key(*k)))
            || self
                .routes
                .iter()
                .any(|r| ROUTE_KEYS_1_1.iter().any(|k| r.extra.contains_key(*k)))
    }

    fn strip_untyped_1_1_keys(&mut self) {
        for i in &mut self.interfaces {
            i.extra
                .retain(|k, _| !INTERFACE_KEYS_1_1.contains(&k.as_str()));
        }
        for r in &mut self.routes {
            r.extra.retain(|k, _| !ROUTE_KEYS_1_1.contains(&k.as_str()));
        }
    }

    /// Drops the fields spec 1.1.0 added, for older layouts.
    fn strip_1_1_fields(&mut self) {
        for iface in &mut self.interfaces {
            iface.mtu = None;
            iface.socket_path = None;
            iface.pci_id = None;
        }
        for route in &mut self.routes {
            route.mtu = None;
            route.advmss = None;
            route.priority = None;
            route.table = None;
            route.scope = None;
        }
    }

    /// Interfaces that live in a container (`sandbox` set) named `ifname`.
    pub fn sandbox_interface_index(&self, ifname: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == ifname && i.in_sandbox())
    }
}

impl Route {
    /// A route to `dst` via `gw`, without the 1.1.0 attributes.
    pub fn new(dst: Cidr, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
            extra: Map::new(),
        }
    }
}

fn to_object<T: Serialize>(value: &T) -> Result<Map<String, Value>, CniError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(CniError::internal("encoding result: not an object")),
        Err(e) => Err(CniError::internal(format!("encoding result: {e}"))),
    }
}

/// The top-level fields of the 0.3.0+ layouts.
const LAYOUT_KEYS: &[&str] = &["interfaces", "ips", "routes", "dns"];
/// The top-level fields of the 0.1.0/0.2.0 layout.
const LEGACY_LAYOUT_KEYS: &[&str] = &["ip4", "ip6", "dns"];

fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        into.insert(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every key a fully populated value serializes is declared to
    /// `go_fields!` (so a new field cannot silently miss Go's matching).
    #[test]
    fn go_fields_list_every_serialized_key() {
        let full = json!({
            "interfaces": [{"name": "eth0", "mac": "m", "mtu": 1, "sandbox": "s",
                            "socketPath": "p", "pciID": "i"}],
            "ips": [{"interface": 0, "address": "10.0.0.2/24", "gateway": "10.0.0.1"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1", "mtu": 1, "advmss": 1,
                        "priority": 1, "table": 1, "scope": 1}],
            "dns": {"nameservers": ["a"], "domain": "d", "search": ["s"], "options": ["o"]}
        });
        let r: CniResult = gojson::from_value(full.clone()).unwrap();
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back, full);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        for k in keys(&back) {
            assert!(CniResult::GO_FIELDS.contains(&k.as_str()), "{k}");
        }
        for (list, fields) in [
            ("interfaces", Interface::GO_FIELDS),
            ("ips", IpConfig::GO_FIELDS),
            ("routes", Route::GO_FIELDS),
        ] {
            for k in keys(&back[list][0]) {
                assert!(fields.contains(&k.as_str()), "{list}: {k}");
            }
        }
        for k in keys(&back["dns"]) {
            assert!(Dns::GO_FIELDS.contains(&k.as_str()), "dns: {k}");
        }
    }

    #[test]
    fn go_cased_results_read_like_lowercase_ones() {
        let lower = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "mac": "6e:c5:92:fe:b9:d9", "sandbox": "/run/netns/x"}],
            "ips": [{"address": "10.90.0.2/24", "gateway": "10.90.0.1", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.0.0.10"]}
        });
        let go = json!({
            "CNIVersion": "1.0.0",
            "Interfaces": [{"Name": "eth0", "Mac": "6e:c5:92:fe:b9:d9", "Sandbox": "/run/netns/x"}],
            "IPs": [{"Address": "10.90.0.2/24", "Gateway": "10.90.0.1", "Interface": 0}],
            "Routes": [{"Dst": "0.0.0.0/0", "GW": null}],
            "DNS": {"Nameservers": ["10.0.0.10"], "Domain": null}
        });
        let want = CniResult::from_value(&lower, CniVersion::V0_4_0).unwrap();
        assert_eq!(want.1, CniVersion::V1_0_0);
        assert_eq!(
            CniResult::from_value(&go, CniVersion::V0_4_0).unwrap(),
            want
        );
        // 0.3.x/0.4.0 `version` and 1.1 keys in older results, Go-cased.
        let old = json!({"cniVersion": "0.4.0",
            "Interfaces": [{"Name": "eth0", "MTU": 1400}],
            "IPs": [{"Version": "4", "Address": "10.0.0.2/24"}]});
        let (r, _) = CniResult::from_value(&old, CniVersion::V0_4_0).unwrap();
        assert_eq!(r.interfaces[0].mtu, None);
        assert_eq!(r.interfaces[0].extra["mtu"], 1400);
        assert!(r.ips[0].extra.is_empty());
        let legacy = json!({"cniVersion": "0.2.0",
            "IP4": {"IP": "10.0.0.2/24", "Gateway": "10.0.0.1", "Routes": [{"Dst": "0.0.0.0/0"}]}});
        let (r, _) = CniResult::from_value(&legacy, CniVersion::V0_2_0).unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.2/24");
        assert_eq!(r.routes.len(), 1);
    }
}
