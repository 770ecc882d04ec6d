//! loopback: ADD brings `lo` up in a pod whose `lo` starts down (checked on
//! the link and with TCP traffic over 127.0.0.1 inside the pod), CHECK
//! passes, DEL brings it down again, a second DEL succeeds.

use cni::CniVersion;
use serde_json::{json, Map};

use super::{expect_reply, sock, Attached, CheckError, Checked, Ctx, MainPlugin, Net, Recorder};
use crate::topology::Pod;
use cni_runtime::RuntimeConf;

fn lo_up(pod: &Pod) -> Checked<bool> {
    let link = pod.netns.link("lo").ok_or_else(|| {
        CheckError::unexpected(format!("lo not found in netns {}", pod.netns.name))
    })?;
    let flags = link["flags"].as_array().cloned().unwrap_or_default();
    Ok(flags.iter().any(|f| f == "UP"))
}

pub(super) fn run(ctx: &Ctx, r: &mut Recorder, version: CniVersion, _m: MainPlugin) {
    let net = match Net::new(ctx, "lo", version, MainPlugin::None) {
        Ok(n) => n,
        Err(e) => return r.setup_failed(e),
    };
    let pod = match Pod::new("lo") {
        Ok(p) => p,
        Err(e) => return r.setup_failed(e),
    };
    if let Err(e) = pod.netns.ip(&["link", "set", "lo", "down"]) {
        return r.setup_failed(e);
    }
    let list = match net.list_of(0, vec![json!({"type": "loopback"})]) {
        Ok(l) => l,
        Err(e) => return r.setup_failed(e),
    };
    let mut a = Attached {
        rt: RuntimeConf::new(&pod.container_id, pod.netns.path(), "lo"),
        pod,
        list,
        result: None,
    };
    a.rt.capability_args = Map::new();
    let added = r.check("add", || {
        let res = net.add(&mut a)?;
        if !lo_up(&a.pod)? {
            return Err(CheckError::unexpected("lo is still down after ADD"));
        }
        Ok(Some(format!("result {}", res)))
    });
    if !added {
        let _ = net.del(&a);
        return;
    }
    r.check("traffic-on-lo", || {
        let _server = ctx
            .tools
            .serve(&a.pod.netns, &[8080], &[], "lo", 10)
            .map_err(CheckError::world("serving tcp/8080 on lo in the pod"))?;
        expect_reply(
            net.request(&a.pod.netns, false, sock("127.0.0.1", 8080)),
            "lo tcp/8080",
        )
    });
    if version.allows_check() {
        r.check("check", || net.check(&a).map(|_| None));
    }
    r.check("del", || {
        net.del(&a)?;
        if lo_up(&a.pod)? {
            return Err(CheckError::unexpected("lo is still up after DEL"));
        }
        Ok(None)
    });
    r.check("del-again", || net.del(&a).map(|_| None));
}
