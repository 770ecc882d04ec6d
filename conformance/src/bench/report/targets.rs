//! The targets of issue #14, each judged met or missed from a bench JSON
//! document, with the measured figure next to the bound.

use std::fmt::Write as _;

use serde_json::Value;

use super::plugin_label;

/// One judged target: what, the measured figure, met (None: not measured).
pub struct Judged {
    pub target: String,
    pub measured: String,
    pub met: Option<bool>,
}

fn judged(
    target: impl Into<String>,
    measured: Option<f64>,
    unit: &str,
    met: impl Fn(f64) -> bool,
) -> Judged {
    Judged {
        target: target.into(),
        measured: measured.map_or("not measured".into(), |m| format!("{m:.3}{unit}")),
        met: measured.map(met),
    }
}

fn verb_rows(doc: &Value) -> impl Iterator<Item = &Value> {
    doc["verbs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["verb"].is_string())
}

fn verb_targets(doc: &Value, out: &mut Vec<Judged>) {
    for r in verb_rows(doc) {
        let (plugin, verb) = (
            r["plugin"].as_str().unwrap_or(""),
            r["verb"].as_str().unwrap_or(""),
        );
        let pod = match (r["pod"].as_str(), r["ratio_basis"].as_str()) {
            (Some(p), Some("reference time to fail")) => {
                format!(" ({p} of the pod, against the reference's time to fail)")
            }
            (Some(p), _) => format!(" ({p} of the pod)"),
            (None, _) => String::new(),
        };
        let remeasured = r["pod"].is_null()
            && r["ratio"].is_null()
            && verb_rows(doc)
                .any(|o| o["plugin"] == plugin && o["verb"] == verb && o["pod"].is_string());
        let iptables = doc["portmap_backend"] == "iptables";
        let bound = match (plugin, verb) {
            // Issue #13's bound for the iptables backend (ADD and DEL).
            ("portmap", "ADD" | "DEL") if iptables => 0.25,
            ("portmap", "ADD" | "CHECK" | "DEL") => 0.05,
            ("bandwidth", "DEL") => 0.5,
            _ => 0.4,
        };
        let plugin = plugin_label(doc, plugin);
        if !r["reference"].is_null() && !remeasured {
            out.push(judged(
                format!("{plugin} {verb}{pod} ≤ {bound}× the reference"),
                r["ratio"].as_f64(),
                "×",
                |x| x <= bound,
            ));
        }
        if verb == "STATUS" {
            out.push(judged(
                format!("{plugin} STATUS ≤ 2 ms median"),
                r["ours"]["median_ms"].as_f64(),
                " ms",
                |x| x <= 2.0,
            ));
        }
    }
    let mut plugins: Vec<&str> = verb_rows(doc)
        .filter_map(|r| r["plugin"].as_str())
        .collect();
    plugins.dedup();
    for p in plugins {
        let peak = |side: &str| {
            verb_rows(doc)
                .filter(|r| r["plugin"] == p)
                .filter_map(|r| r[side]["peak_rss_kib"].as_f64())
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
        };
        let ratio = peak("ours").zip(peak("reference")).map(|(a, b)| a / b);
        out.push(judged(
            format!("{p} peak RSS ≤ 0.7× the reference"),
            ratio,
            "×",
            |x| x <= 0.7,
        ));
    }
}

fn node_targets(doc: &Value, out: &mut Vec<Judged>) {
    let n = &doc["node"];
    let wall = |s: &str| Some(n[s]["add"]["wall_s"].as_f64()? + n[s]["del"]["wall_s"].as_f64()?);
    let ratio = wall("ours").zip(wall("reference")).map(|(a, b)| a / b);
    // Without a node phase there is no pod count to name.
    let pods = n["pods"]
        .as_u64()
        .map(|p| format!("{p} "))
        .unwrap_or_default();
    out.push(judged(
        format!("{pods}parallel pods: wall (ADD+DEL) ≤ 0.15× the reference"),
        ratio,
        "×",
        |x| x <= 0.15,
    ));
    let errors = n["ours"]["add"]["errors"]
        .as_f64()
        .zip(n["ours"]["del"]["errors"].as_f64())
        .map(|(a, b)| a + b);
    out.push(judged("parallel pods: 0 errors (ours)", errors, "", |x| {
        x == 0.0
    }));
}

/// `last / first` of `verb`'s ours median (or per_s) over the scaling rows.
fn growth(rows: &[Value], verb: &str, key: &str) -> Option<(f64, u64, u64)> {
    let pts: Vec<(u64, f64)> = rows
        .iter()
        .filter(|r| r["verb"] == verb)
        .filter_map(|r| Some((r["pods"].as_u64()?, r["ours"][key].as_f64()?)))
        .collect();
    let (first, last) = (pts.first()?, pts.last()?);
    (first.1 > 0.0 && last.0 > first.0).then(|| (last.1 / first.1, first.0, last.0))
}

fn scaling_targets(doc: &Value, out: &mut Vec<Judged>) {
    let empty = Vec::new();
    let pm = doc["scaling"]["portmap"].as_array().unwrap_or(&empty);
    let bw = doc["scaling"]["bandwidth"].as_array().unwrap_or(&empty);
    // Issue #13's growth bound for the iptables backend.
    let pm_bound = if doc["portmap_backend"] == "iptables" {
        1.5
    } else {
        1.15
    };
    let pm_add = format!("{} ADD growth", plugin_label(doc, "portmap"));
    let pm_del = format!("{} DEL growth", plugin_label(doc, "portmap"));
    for (rows, verb, key, bound, what) in [
        (pm, "ADD", "median_ms", pm_bound, pm_add.as_str()),
        (pm, "DEL", "median_ms", pm_bound, pm_del.as_str()),
        (bw, "ADD", "median_ms", 1.25, "bandwidth ADD growth"),
    ] {
        let g = growth(rows, verb, key);
        let span = g.map_or(String::new(), |(_, a, b)| format!(" ({a} → {b} pods)"));
        out.push(judged(
            format!("{what}{span} ≤ {bound}×"),
            g.map(|g| g.0),
            "×",
            |x| x <= bound,
        ));
    }
    if doc["portmap_backend"] == "iptables" {
        // Issue #13: ADD and DEL ≤ 0.25× the reference at every N measured.
        for r in pm
            .iter()
            .filter(|r| r["verb"] == "ADD" || r["verb"] == "DEL")
        {
            out.push(judged(
                format!(
                    "{} {} with {} pods mapped ≤ 0.25× the reference",
                    plugin_label(doc, "portmap"),
                    r["verb"].as_str().unwrap_or(""),
                    r["pods"]
                ),
                r["ratio"].as_f64(),
                "×",
                |x| x <= 0.25,
            ));
        }
    }
    let g = growth(pm, "connect", "per_s");
    let span = g.map_or(String::new(), |(_, a, b)| format!(" ({b} vs {a} mappings)"));
    out.push(judged(
        format!("connection rate{span} ≥ 0.95×"),
        g.map(|g| g.0),
        "×",
        |x| x >= 0.95,
    ));
}

fn shaping_targets(doc: &Value, out: &mut Vec<Judged>) {
    let s = &doc["shaping"];
    for r in s["rates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["side"] == "ours")
    {
        let what = format!(
            "achieved {} Mbit/s {} within ±3%",
            r["mbit"],
            r["direction"].as_str().unwrap_or("?")
        );
        out.push(judged(what, r["ratio"].as_f64(), "×", |x| {
            (0.97..=1.03).contains(&x)
        }));
    }
    for r in s["first_second"].as_array().into_iter().flatten() {
        if r["side"] == "ours" && r["max_burst_bits"].is_u64() {
            out.push(judged(
                "first second with maxBurst ≤ 1.1× the rate",
                r["ratio_to_rate"].as_f64(),
                "×",
                |x| x <= 1.1,
            ));
        }
    }
    for r in s["latency"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["side"] == "ours")
    {
        let bound = r["latency_ms_configured"].as_f64().unwrap_or(0.0) + 5.0;
        out.push(judged(
            format!("queueing delay (p95) through a saturated TBF ≤ latencyMs + 5 = {bound} ms"),
            r["queue_p95_ms"].as_f64(),
            " ms",
            |x| x <= bound,
        ));
    }
}

/// Every target of issue #14 judged from `doc`.
pub fn judge(doc: &Value) -> Vec<Judged> {
    let mut out = Vec::new();
    verb_targets(doc, &mut out);
    node_targets(doc, &mut out);
    scaling_targets(doc, &mut out);
    shaping_targets(doc, &mut out);
    out
}

/// The targets table.
pub fn render(out: &mut String, doc: &Value) {
    let judged = judge(doc);
    let met = judged.iter().filter(|j| j.met == Some(true)).count();
    let _ = writeln!(
        out,
        "\n## Targets of issue #14\n\n{met} of {} met.\n\n| target | measured | |\n|---|---:|---|",
        judged.len()
    );
    for j in judged {
        let mark = match j.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {} | {} | {mark} |", j.target, j.measured);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_target(doc: &Value) -> Vec<(String, Option<bool>)> {
        judge(doc)
            .into_iter()
            .filter(|j| j.target.contains("parallel pods: wall"))
            .map(|j| (j.target, j.met))
            .collect()
    }

    #[test]
    fn the_node_target_names_the_pod_count_only_when_the_phase_ran() {
        let wall = "parallel pods: wall (ADD+DEL) ≤ 0.15× the reference";
        assert_eq!(
            node_target(&serde_json::json!({})),
            vec![(wall.to_string(), None)]
        );
        let side = |s: f64| serde_json::json!({"add": {"wall_s": s}, "del": {"wall_s": s}});
        let doc =
            serde_json::json!({"node": {"pods": 50, "ours": side(1.0), "reference": side(10.0)}});
        assert_eq!(node_target(&doc), vec![(format!("50 {wall}"), Some(true))]);
    }
}
