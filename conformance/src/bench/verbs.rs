//! Phase 1: every chained plugin's ADD, CHECK, STATUS, GC and DEL on the
//! dual-stack pod, the sides taking turns invocation by invocation (ABBA).
//! ADD/CHECK/DEL run at the newest cniVersion every side supports; STATUS and
//! GC exist from 1.1.0 only, so a side without 1.1.0 gets "n/a" (null), never
//! a number for a verb it does not have. When a side cannot CHECK the
//! dual-stack pod at all (Debian's portmap v1.1.1 fails CHECK of every
//! dual-stack pod), CHECK is measured once more on the pod's IPv4 half, so
//! the ratio exists on the case both sides handle.

use cni::CniVersion;
use serde_json::{json, Value};

use super::measure::{alternation, Probe};
use super::series::{ratio, Series};
use super::side::Side;
use super::{common_version, probe_of, Bench, RSS_ROUNDS};
use crate::scenarios::{query_versions, PLUGINS};

pub const VERBS: [&str; 5] = ["ADD", "CHECK", "STATUS", "GC", "DEL"];

/// CHECK's place in [`VERBS`].
const CHECK: usize = 1;

/// Whether `side`'s `plugin` speaks 1.1.0 (STATUS and GC).
fn has_v110(side: &Side, plugin: &str) -> bool {
    query_versions(&side.dir.join(plugin)).is_ok_and(|v| v.contains(&CniVersion::V1_1_0))
}

/// The stdin of `verb` on `side` (None: the verb does not exist there).
fn verb_conf(
    side: &Side,
    plugin: &str,
    verb: &str,
    core: CniVersion,
    (main, added): (&Value, Option<&Value>),
) -> Option<Value> {
    let new_verb = matches!(verb, "STATUS" | "GC");
    if new_verb && !has_v110(side, plugin) {
        return None;
    }
    let version = if new_verb { CniVersion::V1_1_0 } else { core };
    let prev = match verb {
        _ if plugin == "loopback" || new_verb => None,
        "ADD" => Some(main),
        _ => added.or(Some(main)),
    };
    let mut conf = side.plugin_conf(plugin, version, prev);
    if verb == "GC" {
        conf["cni.dev/valid-attachments"] =
            json!([{"containerID": container(side), "ifname": ifname(plugin)}]);
    }
    Some(conf)
}

fn container(side: &Side) -> String {
    format!("bench-{}", side.label)
}

fn ifname(plugin: &str) -> &'static str {
    if plugin == "loopback" {
        "lo"
    } else {
        "eth0"
    }
}

/// The main plugins' result cut down to its IPv4 addresses and routes.
fn ipv4_half(prev: &Value) -> Value {
    let mut out = prev.clone();
    for (key, field) in [("ips", "address"), ("routes", "dst")] {
        if let Some(list) = out[key].as_array_mut() {
            list.retain(|e| !e[field].as_str().unwrap_or("").contains(':'));
        }
    }
    out
}

/// Which verbs a round runs, and on which result of the main plugins.
#[derive(Clone, Copy)]
enum Pod {
    /// Every verb on the dual-stack pod.
    DualStack,
    /// ADD, CHECK, DEL on the pod's IPv4 half.
    Ipv4Half,
}

/// One round of every verb on every side in `order`.
fn round(
    b: &Bench,
    (plugin, core, pod): (&str, CniVersion, Pod),
    order: &[usize],
    probe: Probe,
    series: &mut [[Series; 5]],
) {
    let mut added: Vec<Option<Value>> = vec![None; b.sides.len()];
    let halves: Vec<Value> = match pod {
        Pod::DualStack => Vec::new(),
        Pod::Ipv4Half => b.sides.iter().map(|s| ipv4_half(&s.prev)).collect(),
    };
    for (v, verb) in VERBS.iter().enumerate() {
        if matches!(pod, Pod::Ipv4Half) && matches!(*verb, "STATUS" | "GC") {
            continue;
        }
        for &k in order {
            let side = &b.sides[k];
            let main = match pod {
                Pod::DualStack => &side.prev,
                Pod::Ipv4Half => &halves[k],
            };
            let Some(conf) = verb_conf(side, plugin, verb, core, (main, added[k].as_ref())) else {
                continue;
            };
            let sample = side.invoke(plugin, verb, &container(side), ifname(plugin), &conf, probe);
            if v == 0 {
                added[k] = sample
                    .as_ref()
                    .ok()
                    .filter(|s| s.exit_code == Some(0))
                    .and_then(|s| serde_json::from_str(s.stdout.trim()).ok());
            }
            series[k][v].push(sample);
            if *verb == "DEL" && plugin == "bandwidth" {
                side.reset_host_qdiscs();
            }
        }
    }
}

/// `[{plugin, verb, cni_version, ours, reference, ratio}]`.
pub fn run(b: &Bench) -> Value {
    let mut rows = Vec::new();
    let measured = |p: &&&str| b.opts.only.is_empty() || b.opts.only.iter().any(|o| o == **p);
    for plugin in PLUGINS.iter().filter(measured) {
        if b.sides.iter().any(|s| !s.dir.join(plugin).is_file()) {
            rows.push(json!({"plugin": plugin, "skipped": "binary missing on a side"}));
            continue;
        }
        let Some(core) = common_version(&b.sides, plugin) else {
            rows.push(json!({"plugin": plugin, "skipped": "no common cniVersion >= 0.4.0"}));
            continue;
        };
        b.progress(&format!(
            "verbs: {plugin} (ADD/CHECK/DEL at {core}, STATUS/GC at 1.1.0)"
        ));
        let series = measure(b, (plugin, core, Pod::DualStack));
        for (v, verb) in VERBS.iter().enumerate() {
            let cell = |k: usize| -> Value {
                let side = &b.sides[k];
                let exists = !matches!(*verb, "STATUS" | "GC") || has_v110(side, plugin);
                if exists {
                    series[k][v].to_json()
                } else {
                    Value::Null
                }
            };
            let reference = if b.sides.len() > 1 {
                cell(1)
            } else {
                Value::Null
            };
            let r = (b.sides.len() > 1)
                .then(|| ratio(series[0][v].median(), series[1][v].median()))
                .flatten();
            let version = if matches!(*verb, "STATUS" | "GC") {
                "1.1.0"
            } else {
                core.as_str()
            };
            rows.push(json!({
                "plugin": plugin, "verb": verb, "cni_version": version,
                "ours": cell(0), "reference": reference, "ratio": r,
            }));
        }
        if series.iter().any(|s| s[CHECK].median().is_none()) {
            b.progress(&format!(
                "verbs: {plugin} CHECK again on the IPv4 half of the pod (a side failed every dual-stack CHECK)"
            ));
            let half = measure(b, (plugin, core, Pod::Ipv4Half));
            rows.push(ipv4_check_row(plugin, core, &half));
        }
    }
    Value::Array(rows)
}

/// The CHECK row of the IPv4 half. Debian's portmap v1.1.1 fails that CHECK
/// too (it checks ip6tables whenever ip6tables exists); a reference that
/// never succeeds is given the median time it took to fail, a lower bound of
/// a CHECK that works, so the ratio is an upper bound of ours (`basis` says so).
fn ipv4_check_row(plugin: &str, core: CniVersion, half: &[[Series; 5]]) -> Value {
    let ours = &half[0][CHECK];
    let reference = half.get(1).map(|s| &s[CHECK]);
    let (basis, reference_ms) = match reference.map(|r| (r.median(), r.failed_median())) {
        Some((Some(ms), _)) => ("success", Some(ms)),
        Some((None, Some(ms))) => ("reference time to fail", Some(ms)),
        _ => ("success", None),
    };
    json!({
        "plugin": plugin, "verb": "CHECK", "pod": "IPv4 half", "cni_version": core.as_str(),
        "ours": ours.to_json(),
        "reference": reference.map_or(Value::Null, Series::to_json),
        "ratio": ratio(ours.median(), reference_ms),
        "ratio_basis": basis,
    })
}

/// Every round of `plugin` (timed ones, then the traced ones), sides taking turns.
fn measure(b: &Bench, cell: (&str, CniVersion, Pod)) -> Vec<[Series; 5]> {
    let mut series: Vec<[Series; 5]> = vec![Default::default(); b.sides.len()];
    for r in alternation(b.opts.iterations + RSS_ROUNDS, b.sides.len()).chunks(b.sides.len()) {
        let order: Vec<usize> = r.iter().map(|(_, s)| *s).collect();
        round(
            b,
            cell,
            &order,
            probe_of(r[0].0, b.opts.iterations),
            &mut series,
        );
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_is_where_verbs_has_it() {
        assert_eq!(VERBS[CHECK], "CHECK");
    }

    #[test]
    fn the_ipv4_half_keeps_only_ipv4_addresses_and_routes() {
        let prev = json!({
            "ips": [{"address": "10.77.0.2/16"}, {"address": "fd77::2/64"}],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
        });
        let half = ipv4_half(&prev);
        assert_eq!(half["ips"], json!([{"address": "10.77.0.2/16"}]));
        assert_eq!(half["routes"], json!([{"dst": "0.0.0.0/0"}]));
    }
}
