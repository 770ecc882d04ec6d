//! Spec 1.1.0 verbs through the runtime. GC: two pods attached, the cache
//! entry of one lost, GC with only the other listed as valid must remove the
//! stale attachment's objects (hostPort, IFB, tuning backup) and keep the
//! valid one working. STATUS: the chain and loopback answer ready.

use cni::types::Attachment;
use cni::CniVersion;
use serde_json::json;

use super::bandwidth::{BURST, RATE};
use super::{
    bandwidth_caps, expect_reply, full_chain, host_owns_port, nothing_left, port_mappings, sock,
    Attached, CheckError, Checked, Ctx, MainPlugin, Net, Recorder,
};
use crate::topology::{files_under, NODE_V4};

const PORT_A: u16 = 18100;
const PORT_B: u16 = 18101;

pub(super) fn gc(ctx: &Ctx, r: &mut Recorder, version: CniVersion, main: MainPlugin) {
    let net = match Net::new(ctx, "gc", version, main) {
        Ok(n) => n,
        Err(e) => return r.setup_failed(e),
    };
    let chain = full_chain(&net);
    let caps = |port| {
        let mut c = port_mappings(&[(port, 80, "tcp", None)]);
        c.extend(bandwidth_caps(RATE, BURST));
        c
    };
    let (mut a, mut b) = match (
        net.pod("gca", 0, &chain, caps(PORT_A)),
        net.pod("gcb", 1, &chain, caps(PORT_B)),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return r.setup_failed(e),
    };
    if !r.check("add", || {
        net.add(&mut a)?;
        net.add(&mut b)?;
        Ok(None)
    }) {
        let _ = net.del(&a);
        let _ = net.del(&b);
        return;
    }
    let tuning_dir = net.dir("tuning");
    let ifbs_before = net.ifbs();
    let backups_before = files_under(&tuning_dir).len();
    r.check("lose-cache-of-stale-pod", || lose_cache_of(&net, &a));
    let valid = [Attachment {
        container_id: b.rt.container_id.clone(),
        ifname: b.rt.ifname.clone(),
    }];
    if !r.check("gc", || {
        net.runtime
            .gc_network_list(&b.list, &valid)
            .map(|_| None)
            .map_err(CheckError::runtime("GC"))
    }) {
        let _ = net.del(&a);
        let _ = net.del(&b);
        return;
    }
    r.check("stale-hostport-removed", || {
        host_owns_port(&net, PORT_A, Some(&b.pod.netns))
    });
    stale_objects_removed(r, &net, &ifbs_before, backups_before);
    r.check("valid-attachment-kept", || valid_attachment_works(&net, &b));
    r.check("del", || {
        net.del(&b)?;
        net.del(&a)?;
        Ok(None)
    });
    r.check("nothing-left", || nothing_left(&net, Some(&tuning_dir)));
}

/// Removes the runtime's cache files of `a` (GC must work without them).
fn lose_cache_of(net: &Net, a: &Attached) -> Checked<Option<String>> {
    let results = net.world.cache_dir().join("results");
    let gone: Vec<String> = files_under(&results)
        .into_iter()
        .filter(|f| f.contains(&a.rt.container_id))
        .collect();
    for f in &gone {
        std::fs::remove_file(results.join(f)).map_err(CheckError::io(format!("removing {f}")))?;
    }
    if gone.is_empty() {
        return Err(CheckError::unexpected(
            "no cache file of the stale pod found",
        ));
    }
    Ok(None)
}

/// After GC: the stale pod's IFB and tuning backup are gone (judged only
/// when there was one per pod before).
fn stale_objects_removed(
    r: &mut Recorder,
    net: &Net,
    ifbs_before: &[String],
    backups_before: usize,
) {
    let tuning_dir = net.dir("tuning");
    if ifbs_before.len() == 2 {
        r.check("stale-ifb-removed", || {
            let now = net.ifbs();
            if now.len() == 1 {
                Ok(None)
            } else {
                Err(CheckError::unexpected(format!(
                    "IFBs before GC {ifbs_before:?}, after {now:?}"
                )))
            }
        });
    } else {
        r.skip(
            "stale-ifb-removed",
            &format!(
                "bandwidth made {} IFB(s) for 2 pods; not judged",
                ifbs_before.len()
            ),
        );
    }
    if backups_before > 0 {
        r.check("stale-tuning-backup-removed", || {
            let now = files_under(&tuning_dir).len();
            if now < backups_before {
                Ok(None)
            } else {
                Err(CheckError::unexpected(format!(
                    "{now} backup file(s) after GC, {backups_before} before"
                )))
            }
        });
    }
}

/// The valid pod still answers on its hostPort and passes CHECK.
fn valid_attachment_works(net: &Net, b: &Attached) -> Checked<Option<String>> {
    let _s = net
        .ctx
        .tools
        .serve(&b.pod.netns, &[80], &[], "pod-b", 30)
        .map_err(CheckError::world("serving tcp/80 in pod B"))?;
    expect_reply(
        net.request(net.host(), false, sock(NODE_V4, PORT_B)),
        "pod-b tcp/80",
    )?;
    net.check(b)?;
    Ok(None)
}

pub(super) fn status(ctx: &Ctx, r: &mut Recorder, version: CniVersion, main: MainPlugin) {
    let net = match Net::new(ctx, "st", version, main) {
        Ok(n) => n,
        Err(e) => return r.setup_failed(e),
    };
    let chain = full_chain(&net);
    r.check("chain", || {
        let list = net.list(0, &chain)?;
        net.runtime
            .status_network_list(&list)
            .map(|_| None)
            .map_err(CheckError::runtime("STATUS"))
    });
    r.check("loopback", || {
        let list = net.list_of(0, vec![json!({"type": "loopback"})])?;
        net.runtime
            .status_network_list(&list)
            .map(|_| None)
            .map_err(CheckError::runtime("STATUS"))
    });
}
