//! N pods added and deleted in parallel through the whole chain (the spec
//! lets runtimes run different containers concurrently, so plugins must lock
//! shared state): every pod's own hostPort answers with that pod's identity,
//! the bridge (when the main plugin is one) kept its MAC and every result
//! reports it, and after the parallel DELs nothing is mapped or left behind.

use cni::CniVersion;

use super::bandwidth::{BURST, RATE};
use super::{
    bandwidth_caps, expect_no_reply_from, expect_reply, full_chain, nothing_left, port_mappings,
    sock, Attached, Ctx, MainPlugin, Net, Recorder,
};
use crate::topology::{BRIDGE, BRIDGE_MAC, NODE_V4};

/// Pods attached at once.
pub(crate) const PODS: usize = 6;
const BASE_PORT: u16 = 19000;

pub(super) fn run(ctx: &Ctx, r: &mut Recorder, version: CniVersion, main: MainPlugin) {
    let net = match Net::new(ctx, "pp", version, main) {
        Ok(n) => n,
        Err(e) => return r.setup_failed(e),
    };
    let chain = full_chain(&net);
    let mut pods: Vec<Attached> = Vec::new();
    for i in 0..PODS {
        let mut caps = port_mappings(&[(BASE_PORT + i as u16, 80, "tcp", None)]);
        caps.extend(bandwidth_caps(RATE, BURST));
        match net.pod(&format!("pp{i}"), i, &chain, caps) {
            Ok(p) => pods.push(p),
            Err(e) => return r.setup_failed(e),
        }
    }
    let added: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter_mut()
            .map(|p| s.spawn(|| net.add(p).map(|_| ())))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("ADD thread panicked".into()))
            })
            .collect()
    });
    let all_added = r.check(&format!("add-{PODS}-in-parallel"), || {
        let errors: Vec<String> = added.iter().filter_map(|r| r.clone().err()).collect();
        if errors.is_empty() {
            Ok(None)
        } else {
            Err(errors.join("; "))
        }
    });
    if all_added && main == MainPlugin::Bridge {
        r.check("bridge-mac-pinned", || bridge_mac_pinned(&net, &pods));
    }
    if all_added {
        let servers: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                ctx.tools
                    .serve(&p.pod.netns, &[80], &[], &format!("pod-{i}"), 30)
            })
            .collect();
        r.check("each-hostport-reaches-its-pod", || {
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
                Err(wrong.join("; "))
            }
        });
        if version.allows_check() {
            r.check("check-all", || {
                pods.iter()
                    .try_for_each(|p| net.check(p).map(|_| ()))
                    .map(|_| None)
            });
        }
    }
    let deleted: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = pods.iter().map(|p| s.spawn(|| net.del(p))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("DEL thread panicked".into()))
            })
            .collect()
    });
    r.check(&format!("del-{PODS}-in-parallel"), || {
        let errors: Vec<String> = deleted.iter().filter_map(|r| r.clone().err()).collect();
        if errors.is_empty() {
            Ok(None)
        } else {
            Err(errors.join("; "))
        }
    });
    r.check("nothing-mapped", || {
        for i in 0..PODS {
            let got = net.request(net.host(), false, sock(NODE_V4, BASE_PORT + i as u16));
            expect_no_reply_from(got, "pod-")?;
        }
        Ok(None)
    });
    r.check("nothing-left", || {
        nothing_left(&net, Some(&net.dir("tuning")))
    });
}

/// The bridge kept the MAC the world gave it while the pods' veths (random
/// MACs) joined in parallel, and every ADD result reports that MAC, so
/// CHECK (which compares them) cannot depend on the order of the joins.
fn bridge_mac_pinned(net: &Net, pods: &[Attached]) -> Result<Option<String>, String> {
    let link = net
        .host()
        .link(BRIDGE)
        .ok_or_else(|| format!("no {BRIDGE} in the host netns"))?;
    let now = link["address"].as_str().unwrap_or_default();
    if now != BRIDGE_MAC {
        return Err(format!(
            "{BRIDGE} has MAC {now}, the world gave it {BRIDGE_MAC}"
        ));
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
        return Err(format!("an ADD result reports {BRIDGE} with MAC {other}"));
    }
    Ok(Some(format!(
        "{BRIDGE} {now}; {} of {} results report it",
        reported.len(),
        pods.len()
    )))
}
