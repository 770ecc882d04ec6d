//! N pods added and deleted in parallel through the whole chain (the spec
//! lets runtimes run different containers concurrently, so plugins must lock
//! shared state): every pod's own hostPort answers with that pod's identity,
//! the bridge (when the main plugin is one) kept its MAC and every result
//! reports it, and after the parallel DELs nothing is mapped or left behind.

use cni::CniVersion;

use super::bandwidth::{BURST, RATE};
use super::{
    bandwidth_caps, expect_no_reply_from, expect_reply, full_chain, nothing_left, port_mappings,
    sock, Attached, CheckError, Checked, Ctx, MainPlugin, Net, Recorder,
};
use crate::topology::{BRIDGE, BRIDGE_MAC, NODE_V4};

/// Pods attached at once unless `CNI_CONFORMANCE_PODS` says otherwise.
pub(crate) const PODS: usize = 12;
/// The environment variable that sets the pod count (the full size of
/// issue 15 is `CNI_CONFORMANCE_PODS=50`).
pub(crate) const PODS_ENV: &str = "CNI_CONFORMANCE_PODS";
/// At most this many pods (host-local hands out one /24).
const MAX_PODS: usize = 200;

/// The pod count: `CNI_CONFORMANCE_PODS` when it is a number in
/// 1..=MAX_PODS, otherwise [`PODS`].
pub(crate) fn pod_count() -> usize {
    std::env::var(PODS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| (1..=MAX_PODS).contains(n))
        .unwrap_or(PODS)
}
const BASE_PORT: u16 = 19000;

pub(super) fn run(ctx: &Ctx, r: &mut Recorder, version: CniVersion, main: MainPlugin) {
    let net = match Net::new(ctx, "pp", version, main) {
        Ok(n) => n,
        Err(e) => return r.setup_failed(e),
    };
    // tuning's dataDir does not exist yet: the parallel first ADDs create
    // it (and the runtime's cache dir, portmap's table and state dir) at once.
    let tuning_dir = net.dir("pp-fresh").join("tuning").join("first");
    let chain = with_tuning_dir(full_chain(&net), &tuning_dir);
    let pods_n = pod_count();
    let mut pods: Vec<Attached> = Vec::new();
    for i in 0..pods_n {
        let mut caps = port_mappings(&[(BASE_PORT + i as u16, 80, "tcp", None)]);
        caps.extend(bandwidth_caps(RATE, BURST));
        match net.pod(&format!("pp{i}"), i, &chain, caps) {
            Ok(p) => pods.push(p),
            Err(e) => return r.setup_failed(e),
        }
    }
    let added: Vec<Checked<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter_mut()
            .map(|p| s.spawn(|| net.add(p).map(|_| ())))
            .collect();
        joined(handles, "ADD")
    });
    let all_added = r.check(&format!("add-{pods_n}-in-parallel"), || all_ok(&added));
    if all_added && main == MainPlugin::Bridge {
        r.check("bridge-mac-pinned", || bridge_mac_pinned(&net, &pods));
    }
    if all_added {
        r.check("each-hostport-reaches-its-pod", || {
            each_hostport_reaches_its_pod(ctx, &net, &pods)
        });
        if version.allows_check() {
            r.check("check-all", || {
                pods.iter()
                    .try_for_each(|p| net.check(p).map(|_| ()))
                    .map(|_| None)
            });
        }
    }
    let deleted: Vec<Checked<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = pods.iter().map(|p| s.spawn(|| net.del(p))).collect();
        joined(handles, "DEL")
    });
    r.check(&format!("del-{pods_n}-in-parallel"), || all_ok(&deleted));
    r.check("nothing-mapped", || {
        for i in 0..pods_n {
            let got = net.request(net.host(), false, sock(NODE_V4, BASE_PORT + i as u16));
            expect_no_reply_from(got, "pod-")?;
        }
        Ok(None)
    });
    r.check("nothing-left", || nothing_left(&net, Some(&tuning_dir)));
    r.check("no-kernel-or-state-leftovers", || {
        kernel_and_state_leftovers(&net)
    });
}

/// The outcome of each `verb` thread (a panicked one is a failure).
fn joined(
    handles: Vec<std::thread::ScopedJoinHandle<'_, Checked<()>>>,
    verb: &str,
) -> Vec<Checked<()>> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(CheckError::unexpected(format!("{verb} thread panicked"))))
        })
        .collect()
}

/// Passes when every outcome is `Ok`; fails with all the errors.
fn all_ok(outcomes: &[Checked<()>]) -> Checked<Option<String>> {
    let errors: Vec<String> = outcomes
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(None)
    } else {
        Err(CheckError::unexpected(errors.join("; ")))
    }
}

/// Each pod's hostPort on the node IP answers from that pod.
fn each_hostport_reaches_its_pod(
    ctx: &Ctx,
    net: &Net,
    pods: &[Attached],
) -> Checked<Option<String>> {
    let servers: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            ctx.tools
                .serve(&p.pod.netns, &[80], &[], &format!("pod-{i}"), 30)
        })
        .collect();
    let mut wrong = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        if let Err(e) = s {
            wrong.push(format!("pod {i}: server: {e}"));
            continue;
        }
        let got = net.request(net.host(), false, sock(NODE_V4, BASE_PORT + i as u16));
        if let Err(e) = expect_reply(got, &format!("pod-{i} tcp/80")) {
            wrong.push(format!("port {}: {e}", BASE_PORT + i as u16));
        }
    }
    if wrong.is_empty() {
        Ok(None)
    } else {
        Err(CheckError::unexpected(wrong.join("; ")))
    }
}

/// The bridge kept the MAC the world gave it while the pods' veths (random
/// MACs) joined in parallel, and every ADD result reports that MAC, so
/// CHECK (which compares them) cannot depend on the order of the joins.
fn bridge_mac_pinned(net: &Net, pods: &[Attached]) -> Checked<Option<String>> {
    let link = net
        .host()
        .link(BRIDGE)
        .ok_or_else(|| CheckError::unexpected(format!("no {BRIDGE} in the host netns")))?;
    let now = link["address"].as_str().unwrap_or_default();
    if now != BRIDGE_MAC {
        return Err(CheckError::unexpected(format!(
            "{BRIDGE} has MAC {now}, the world gave it {BRIDGE_MAC}"
        )));
    }
    let reported: Vec<&str> = pods
        .iter()
        .filter_map(|p| p.result.as_ref())
        .filter_map(|r| r["interfaces"].as_array())
        .flatten()
        .filter(|i| i["name"] == BRIDGE)
        .filter_map(|i| i["mac"].as_str())
        .collect();
    if let Some(other) = reported.iter().find(|m| **m != BRIDGE_MAC) {
        return Err(CheckError::unexpected(format!(
            "an ADD result reports {BRIDGE} with MAC {other}"
        )));
    }
    Ok(Some(format!(
        "{BRIDGE} {now}; {} of {} results report it",
        reported.len(),
        pods.len()
    )))
}

/// `chain` with tuning's `dataDir` set to `dir`.
fn with_tuning_dir(
    mut chain: Vec<serde_json::Value>,
    dir: &std::path::Path,
) -> Vec<serde_json::Value> {
    for p in chain.iter_mut() {
        if p["type"] == "tuning" {
            p["dataDir"] = dir.to_string_lossy().into_owned().into();
        }
    }
    chain
}

/// portmap's nftables table (the skeleton may stay; its maps, sets and pod
/// chains must be empty / gone).
const PORTMAP_TABLE: &str = "cni_portmap";
/// portmap's state directory, one `netns-<inode>` directory per host netns.
const PORTMAP_STATE: &str = "/run/cni-portmap";

/// What the parallel DELs must have removed beyond [`nothing_left`]: nft
/// elements and pod chains of portmap's table, bandwidth's qdiscs and
/// filters, portmap's index files of this host netns.
pub(super) fn kernel_and_state_leftovers(net: &Net) -> Checked<Option<String>> {
    let mut problems = Vec::new();
    let host = net.host();
    if let Ok(text) = host.exec(&["nft", "-j", "list", "table", "inet", PORTMAP_TABLE]) {
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            CheckError::unexpected(format!("nft -j list table inet {PORTMAP_TABLE}: {e}"))
        })?;
        for obj in v["nftables"].as_array().cloned().unwrap_or_default() {
            for kind in ["map", "set"] {
                let o = &obj[kind];
                // Each map and set keeps one layout sentinel (portmap's
                // flush detection), never a pod's element.
                let mut elems = o["elem"].as_array().into_iter().flatten();
                if elems.any(|e| !e.to_string().contains("cni-portmap layout sentinel")) {
                    problems.push(format!("elements left in {kind} {}", o["name"]));
                }
            }
            if let Some(name) = obj["chain"]["name"].as_str() {
                if name.starts_with("pod-") {
                    problems.push(format!("pod chain left: {name}"));
                }
            }
        }
    }
    for what in ["qdisc", "filter"] {
        let text = host.exec(&["tc", what, "show"]).unwrap_or_default();
        for line in text.lines() {
            if ["tbf", "ingress", "clsact", "u32", "htb"]
                .iter()
                .any(|k| line.contains(k))
            {
                problems.push(format!("tc {what} left: {line}"));
            }
        }
    }
    if let Ok(meta) = std::fs::metadata(host.path()) {
        use std::os::unix::fs::MetadataExt;
        let dir = std::path::Path::new(PORTMAP_STATE).join(format!("netns-{}", meta.ino()));
        let left: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    // The netns identity belongs to the live host netns.
                    .filter(|n| n != "identity")
                    .collect()
            })
            .unwrap_or_default();
        if !left.is_empty() {
            problems.push(format!(
                "portmap index files left in {}: {left:?}",
                dir.display()
            ));
        }
    }
    if problems.is_empty() {
        Ok(None)
    } else {
        Err(CheckError::unexpected(problems.join("; ")))
    }
}
