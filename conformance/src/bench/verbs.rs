//! Phase 1: every chained plugin's ADD, CHECK, STATUS, GC and DEL on the
//! dual-stack pod, the sides taking turns invocation by invocation (ABBA).
//! ADD/CHECK/DEL run at the newest cniVersion every side supports; STATUS and
//! GC exist from 1.1.0 only, so a side without 1.1.0 gets "n/a" (null), never
//! a number for a verb it does not have.

use cni::CniVersion;
use serde_json::{json, Value};

use super::measure::{alternation, Probe};
use super::series::{ratio, Series};
use super::side::Side;
use super::{common_version, probe_of, Bench, RSS_ROUNDS};
use crate::scenarios::{query_versions, PLUGINS};

pub const VERBS: [&str; 5] = ["ADD", "CHECK", "STATUS", "GC", "DEL"];

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
    added: Option<&Value>,
) -> Option<Value> {
    let new_verb = matches!(verb, "STATUS" | "GC");
    if new_verb && !has_v110(side, plugin) {
        return None;
    }
    let version = if new_verb { CniVersion::V1_1_0 } else { core };
    let prev = match verb {
        _ if plugin == "loopback" || new_verb => None,
        "ADD" => Some(&side.prev),
        _ => added.or(Some(&side.prev)),
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

/// One round of every verb on every side in `order`.
fn round(
    b: &Bench,
    plugin: &str,
    core: CniVersion,
    order: &[usize],
    probe: Probe,
    series: &mut [[Series; 5]],
) {
    let mut added: Vec<Option<Value>> = vec![None; b.sides.len()];
    for (v, verb) in VERBS.iter().enumerate() {
        for &k in order {
            let side = &b.sides[k];
            let Some(conf) = verb_conf(side, plugin, verb, core, added[k].as_ref()) else {
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
        let mut series: Vec<[Series; 5]> = vec![Default::default(); b.sides.len()];
        for r in alternation(b.opts.iterations + RSS_ROUNDS, b.sides.len()).chunks(b.sides.len()) {
            let order: Vec<usize> = r.iter().map(|(_, s)| *s).collect();
            round(
                b,
                plugin,
                core,
                &order,
                probe_of(r[0].0, b.opts.iterations),
                &mut series,
            );
        }
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
    }
    Value::Array(rows)
}
