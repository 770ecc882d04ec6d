//! The Markdown report of a bench JSON document: the machine, the command,
//! one table per phase, the figures, and the targets of issue #14 judged
//! met or missed from the numbers. Pure: text in, text out.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub mod targets;

/// "12.34" for a number, "n/a" for null or absent.
pub fn num(v: &Value) -> String {
    v.as_f64().map_or("n/a".into(), |x| {
        if x >= 100.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.2}")
        }
    })
}

/// "median / p95 / p99" of a cell, "n/a" when the verb does not exist there.
fn cell(v: &Value) -> String {
    if v.is_null() {
        return "n/a".into();
    }
    let mut s = format!(
        "{} / {} / {}",
        num(&v["median_ms"]),
        num(&v["p95_ms"]),
        num(&v["p99_ms"])
    );
    if v["failures"].as_u64().unwrap_or(0) > 0 {
        let took = v["failed_median_ms"]
            .as_f64()
            .map_or(String::new(), |ms| format!(" in {ms:.2} ms median"));
        let _ = write!(
            s,
            " ({} failed{took}: {})",
            v["failures"],
            v["first_error"].as_str().unwrap_or("").replace('|', "\\|")
        );
    }
    s
}

/// `plugin` as the report names it: portmap with the backend our side was
/// forced to (`--portmap-backend`), so those figures never pass for the
/// default backend's.
pub fn plugin_label(doc: &Value, plugin: &str) -> String {
    match doc["portmap_backend"].as_str() {
        Some(b) if plugin == "portmap" => format!("portmap ({b} backend)"),
        _ => plugin.to_string(),
    }
}

fn rss(v: &Value) -> String {
    v["peak_rss_kib"]
        .as_f64()
        .map_or("n/a".into(), |k| format!("{:.1}", k / 1024.0))
}

fn header(out: &mut String, doc: &Value) {
    let m = &doc["machine"];
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Produced by `cni-conformance bench` (issue #14). Every number below comes from one run:\n"
    );
    let _ = writeln!(
        out,
        "- command: `{}`",
        doc["command"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        out,
        "- machine: {} cores, kernel {}, load average {} at start, {} at end",
        m["start"]["cores"],
        m["start"]["kernel"].as_str().unwrap_or("?"),
        m["start"]["loadavg"].as_str().unwrap_or("?"),
        m["end"]["loadavg"].as_str().unwrap_or("?")
    );
    for s in doc["sides"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "- {}: `{}`",
            s["label"].as_str().unwrap_or(""),
            s["dir"].as_str().unwrap_or("")
        );
    }
    let _ = writeln!(
        out,
        "- main plugins (both sides): `{}` bridge + host-local, a dual-stack pod",
        doc["main_plugins"].as_str().unwrap_or("")
    );
    if let Some(b) = doc["portmap_backend"].as_str() {
        let _ = writeln!(out, "- our portmap forced to `\"backend\": \"{b}\"` in the verbs and scaling phases (the reference's portmap has one backend, iptables)");
    }
    let _ = writeln!(out, "- {} timed iterations per cell, ours and the reference alternating invocation by invocation (ABBA); wall time of the whole run {} s", doc["iterations"], num(&doc["wall_s"]));
}

fn verbs(out: &mut String, doc: &Value) {
    let _ = writeln!(out, "\n## Per plugin and verb\n\nms, median / p95 / p99, spawn to reap; peak RSS of the plugin process (MiB). portmap maps a tcp and a udp port. STATUS and GC exist from cniVersion 1.1.0 only: n/a where a side does not speak it.\n");
    let _ = writeln!(out, "| plugin | verb | cniVersion | ours | reference | ratio | RSS ours | RSS ref |\n|---|---|---|---|---|---:|---:|---:|");
    for r in doc["verbs"].as_array().into_iter().flatten() {
        if let Some(why) = r["skipped"].as_str() {
            let _ = writeln!(
                out,
                "| {} | skipped: {why} | | | | | | |",
                r["plugin"].as_str().unwrap_or("")
            );
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            plugin_label(doc, r["plugin"].as_str().unwrap_or("")),
            verb_label(r),
            r["cni_version"].as_str().unwrap_or(""),
            cell(&r["ours"]),
            cell(&r["reference"]),
            num(&r["ratio"]),
            rss(&r["ours"]),
            rss(&r["reference"])
        );
    }
}

/// A verb row's verb, with the part of the pod it ran on when not the whole.
pub fn verb_label(r: &Value) -> String {
    let verb = r["verb"].as_str().unwrap_or("");
    match r["pod"].as_str() {
        Some(pod) => format!("{verb} ({pod})"),
        None => verb.to_string(),
    }
}

fn node(out: &mut String, doc: &Value) {
    let n = &doc["node"];
    let _ = writeln!(out, "\n## Node: {} pods through the whole chain in parallel\n\nbridge + host-local, portmap (tcp+udp hostPort), bandwidth, tuning; via the runtime library (results cached, DEL with prevResult).\n", n["pods"]);
    let _ = writeln!(out, "| side | op | wall (s) | per-pod p50 (ms) | per-pod p99 (ms) | errors |\n|---|---|---:|---:|---:|---:|");
    for (key, side) in [
        ("ours", "ours"),
        ("reference", "reference"),
        ("main_only", "main plugins only"),
    ] {
        let s = &n[key];
        if let Some(e) = s["error"].as_str() {
            let _ = writeln!(out, "| {side} | error: {e} | | | | |");
        }
        for op in ["add", "del"] {
            let o = &s[op];
            if o.is_null() {
                continue;
            }
            let err = o["first_error"]
                .as_str()
                .map_or(String::new(), |e| format!(" ({})", e.replace('|', "\\|")));
            let _ = writeln!(
                out,
                "| {side} | {} | {} | {} | {} | {}{err} |",
                op.to_uppercase(),
                num(&o["wall_s"]),
                num(&o["p50_ms"]),
                num(&o["p99_ms"]),
                o["errors"]
            );
        }
    }
    chain_share(out, n);
}

/// What each side's chained plugins add over the main plugins alone
/// (ADD + DEL wall, seconds): the part of the wall time that is theirs.
fn chain_share(out: &mut String, n: &Value) {
    let wall = |k: &str| Some(n[k]["add"]["wall_s"].as_f64()? + n[k]["del"]["wall_s"].as_f64()?);
    let Some(floor) = wall("main_only") else {
        return;
    };
    let share = |k: &str| wall(k).map(|w| (w - floor).max(0.0));
    if let (Some(ours), Some(reference)) = (share("ours"), share("reference")) {
        let ratio = if reference > 0.0 {
            format!("{:.3}×", ours / reference)
        } else {
            "n/a".into()
        };
        let _ = writeln!(
            out,
            "\nThe main plugins alone take {floor:.2} s (ADD + DEL). Over that floor the chained plugins add {ours:.2} s on our side and {reference:.2} s on the reference's: {ratio}."
        );
    }
}

fn scaling(out: &mut String, doc: &Value) {
    let portmap = format!(
        "{}: one more pod (tcp+udp, twice the timed iterations) with N pods mapped; connections/s through a hostPort",
        plugin_label(doc, "portmap")
    );
    for (key, title) in [
        ("portmap", portmap.as_str()),
        ("bandwidth", "bandwidth: one more pod with N pods shaped"),
    ] {
        let _ = writeln!(out, "\n## Scaling, {title}\n\n| N | verb | ours | reference | ratio |\n|---:|---|---|---|---:|");
        for r in doc["scaling"][key].as_array().into_iter().flatten() {
            if let Some(e) = r["error"].as_str() {
                let _ = writeln!(
                    out,
                    "| {} | error: {} | | | |",
                    r["pods"],
                    e.replace('|', "\\|")
                );
                continue;
            }
            let verb = r["verb"].as_str().unwrap_or("");
            let show = |v: &Value| {
                if verb == "connect" {
                    v["per_s"].as_f64().map_or_else(
                        || v["error"].as_str().unwrap_or("n/a").to_string(),
                        |x| format!("{x:.0}/s"),
                    )
                } else {
                    cell(v)
                }
            };
            let _ = writeln!(
                out,
                "| {} | {verb} | {} | {} | {} |",
                r["pods"],
                show(&r["ours"]),
                show(&r["reference"]),
                num(&r["ratio"])
            );
        }
    }
}

fn shaping(out: &mut String, doc: &Value) {
    let s = &doc["shaping"];
    let _ = writeln!(out, "\n## Shaping\n\nAchieved (link-layer bits from TCP goodput, first second excluded) against configured.\n\n| side | configured (Mbit/s) | direction | achieved (Mbit/s) | ratio |\n|---|---:|---|---:|---:|");
    for r in s["rates"].as_array().into_iter().flatten() {
        let got = r["error"]
            .as_str()
            .map_or_else(|| num(&r["achieved_mbit"]), |e| format!("error: {e}"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {got} | {} |",
            r["side"].as_str().unwrap_or(""),
            r["mbit"],
            r["direction"].as_str().unwrap_or("-"),
            num(&r["ratio"])
        );
    }
    let _ = writeln!(out, "\nBytes in the first second at 10 Mbit/s (ingress) with containerd's 4294967295-bit burst:\n\n| side | maxBurst (bits) | first-second bytes | × one second at the rate |\n|---|---:|---:|---:|");
    for r in s["first_second"].as_array().into_iter().flatten() {
        let got = r["error"].as_str().map_or_else(
            || r["first_second_bytes"].to_string(),
            |e| format!("error: {e}"),
        );
        let _ = writeln!(
            out,
            "| {} | {} | {got} | {} |",
            r["side"].as_str().unwrap_or(""),
            r["max_burst_bits"]
                .as_u64()
                .map_or("none".into(), |m| m.to_string()),
            num(&r["ratio_to_rate"])
        );
    }
    let _ = writeln!(out, "\nLatency through the saturated 10 Mbit/s ingress TBF (the reference ignores `latencyMs`, its TBF latency is a hard-coded 25 ms): the TBF's queueing delay (its backlog, read from the kernel at each probe, over the rate) and the round trip of a UDP probe (which also holds the scheduling of a loaded machine and the reply's path):\n\n| side | latencyMs | queue p50 (ms) | queue p95 (ms) | probes | RTT p50 (ms) | RTT p95 (ms) |\n|---|---:|---:|---:|---:|---:|---:|");
    for r in s["latency"].as_array().into_iter().flatten() {
        let p = r["error"]
            .as_str()
            .map_or_else(|| r["probes"].to_string(), |e| format!("error: {e}"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {p} | {} | {} |",
            r["side"].as_str().unwrap_or(""),
            r["latency_ms_configured"],
            num(&r["queue_p50_ms"]),
            num(&r["queue_p95_ms"]),
            num(&r["rtt_p50_ms"]),
            num(&r["rtt_p95_ms"])
        );
    }
}

/// The whole report; figure links are relative to `report_dir`.
pub fn render(doc: &Value, report_dir: Option<&Path>, figures: &[(String, PathBuf)]) -> String {
    let mut out = String::new();
    header(&mut out, doc);
    if !figures.is_empty() {
        let _ = writeln!(out, "\n## Figures\n");
        for (title, path) in figures {
            let rel = report_dir
                .and_then(|d| path.strip_prefix(d).ok())
                .unwrap_or(path);
            let _ = writeln!(out, "![{title}]({})\n", rel.display());
        }
    }
    verbs(&mut out, doc);
    node(&mut out, doc);
    scaling(&mut out, doc);
    shaping(&mut out, doc);
    targets::render(&mut out, doc);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A document of a run with `--portmap-backend iptables`: its portmap
    /// figures are labelled with the backend everywhere, and judged by
    /// issue #13's bounds.
    #[test]
    fn a_forced_portmap_backend_labels_its_figures_and_bounds() {
        let ms = |m: f64| json!({"median_ms": m, "p95_ms": m, "p99_ms": m, "failures": 0});
        let doc = json!({
            "portmap_backend": "iptables",
            "verbs": [
                {"plugin": "portmap", "verb": "ADD", "cni_version": "1.0.0",
                 "ours": ms(20.0), "reference": ms(100.0), "ratio": 0.2},
                {"plugin": "tuning", "verb": "ADD", "cni_version": "1.0.0",
                 "ours": ms(1.0), "reference": ms(3.0), "ratio": 0.33},
            ],
            "scaling": {"portmap": [
                {"pods": 1, "verb": "DEL", "ours": ms(20.0), "reference": ms(100.0), "ratio": 0.2},
                {"pods": 1000, "verb": "DEL", "ours": ms(40.0), "reference": ms(120.0), "ratio": 0.33},
            ]},
        });
        let md = render(&doc, None, &[]);
        assert!(md.contains("| portmap (iptables backend) | ADD |"), "{md}");
        assert!(md.contains("| tuning | ADD |"), "{md}");
        assert!(
            md.contains("## Scaling, portmap (iptables backend): one more pod"),
            "{md}"
        );
        assert!(md.contains("forced to `\"backend\": \"iptables\"`"), "{md}");
        assert!(
            md.contains("| portmap (iptables backend) ADD ≤ 0.25× the reference | 0.200× | met |"),
            "{md}"
        );
        assert!(
            md.contains("| portmap (iptables backend) DEL with 1000 pods mapped ≤ 0.25× the reference | 0.330× | **missed** |"),
            "{md}"
        );
        assert!(
            md.contains("| portmap (iptables backend) DEL growth (1 → 1000 pods) ≤ 1.5× | 2.000× | **missed** |"),
            "{md}"
        );
        let default = render(&json!({"verbs": doc["verbs"]}), None, &[]);
        assert!(default.contains("| portmap | ADD |"), "{default}");
        assert!(
            default.contains("| portmap ADD ≤ 0.05× the reference | 0.200× | **missed** |"),
            "{default}"
        );
    }
}
