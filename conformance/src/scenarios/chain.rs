//! The whole chain (main plugin → tuning → portmap → bandwidth) through the
//! runtime with capability arguments: ADD/CHECK/DEL twice with the same
//! container ID, checked on the wire each round (hostPort answers, ingress
//! shaped) and for leftovers after each DEL; and DEL after the runtime lost
//! its cache and the capability arguments (plugins must find their objects
//! by owner alone).

use cni::CniVersion;
use serde_json::Map;

use super::bandwidth::{shaped_rate, BURST, RATE};
use super::{
    bandwidth_caps, expect_reply, full_chain, host_owns_port, nothing_left, port_mappings, sock,
    CheckError, Ctx, MainPlugin, Net, Recorder,
};
use crate::topology::NODE_V4;

const HOST_PORT: u16 = 18090;

fn caps() -> Map<String, serde_json::Value> {
    let mut caps = port_mappings(&[(HOST_PORT, 80, "tcp", None)]);
    caps.extend(bandwidth_caps(RATE, BURST));
    caps
}

pub(super) fn run(ctx: &Ctx, r: &mut Recorder, version: CniVersion, main: MainPlugin) {
    let net = match Net::new(ctx, "ch", version, main) {
        Ok(n) => n,
        Err(e) => return r.setup_failed(e),
    };
    let chain = full_chain(&net);
    let mut a = match net.pod("cha", 0, &chain, caps()) {
        Ok(a) => a,
        Err(e) => return r.setup_failed(e),
    };
    let tuning_dir = net.dir("tuning");
    for round in 1..=2 {
        if !r.check(&format!("add-{round}"), || net.add(&mut a).map(|_| None)) {
            let _ = net.del(&a);
            return;
        }
        if version.allows_check() {
            r.check(&format!("check-{round}"), || net.check(&a).map(|_| None));
        }
        let server = ctx.tools.serve(&a.pod.netns, &[80], &[], "chain", 30);
        r.check(&format!("hostport-{round}"), || {
            server
                .as_ref()
                .map_err(|e| CheckError::unexpected(format!("serving tcp/80 in the pod: {e}")))?;
            expect_reply(
                net.request(net.host(), false, sock(NODE_V4, HOST_PORT)),
                "chain tcp/80",
            )
        });
        drop(server);
        r.check(&format!("ingress-shaped-{round}"), || {
            let ip = a
                .ip(4)
                .ok_or_else(|| CheckError::unexpected("pod has no IPv4 address"))?;
            shaped_rate(
                &ctx.tools,
                net.host(),
                (
                    net.host(),
                    &a.pod.netns,
                    std::net::SocketAddr::new(ip, 5202),
                ),
                true,
                RATE,
            )
            .map(Some)
        });
        if !r.check(&format!("del-{round}"), || net.del(&a).map(|_| None)) {
            return;
        }
        r.check(&format!("nothing-mapped-{round}"), || {
            host_owns_port(&net, HOST_PORT, None)
        });
        r.check(&format!("nothing-left-{round}"), || {
            nothing_left(&net, Some(&tuning_dir))
        });
    }
}

pub(super) fn del_without_cache(
    ctx: &Ctx,
    r: &mut Recorder,
    version: CniVersion,
    main: MainPlugin,
) {
    let net = match Net::new(ctx, "nc", version, main) {
        Ok(n) => n,
        Err(e) => return r.setup_failed(e),
    };
    let chain = full_chain(&net);
    let (mut a, b) = match (
        net.pod("nca", 0, &chain, caps()),
        net.pod("ncb", 1, &[], Map::new()),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return r.setup_failed(e),
    };
    let mut b = b;
    if !r.check("add", || {
        net.add(&mut a)?;
        net.add(&mut b)?;
        Ok(None)
    }) {
        let _ = net.del(&a);
        let _ = net.del(&b);
        return;
    }
    r.check("lose-cache-and-runtime-args", || {
        let results = net.world.cache_dir().join("results");
        let n = crate::topology::files_under(&results).len();
        std::fs::remove_dir_all(&results)
            .map_err(CheckError::io(format!("removing {}", results.display())))?;
        a.rt.capability_args = Map::new();
        Ok(Some(format!(
            "removed {n} cache file(s); DEL gets no prevResult and no runtimeConfig"
        )))
    });
    r.check("del", || net.del(&a).map(|_| None));
    r.check("nothing-mapped", || {
        host_owns_port(&net, HOST_PORT, Some(&b.pod.netns))
    });
    r.check("nothing-left", || {
        nothing_left(&net, Some(&net.dir("tuning")))
    });
    r.check("del-again", || net.del(&a).map(|_| None));
    let _ = net.del(&b);
}
