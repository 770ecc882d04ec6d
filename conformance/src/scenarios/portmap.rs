//! portmap on the wire: pod A maps tcp and udp on the same hostPort to
//! different container ports and one hostIP-only tcp port; pod B and the
//! host reach them by node IP (v4 and v6), the host by 127.0.0.1, A reaches
//! itself (hairpin), the hostIP-only port answers only on its hostIP, CHECK
//! passes, and after DEL the host's own listener gets the port back (nothing
//! is DNAT'ed any more).

use cni::CniVersion;
use serde_json::{json, Map};

use super::{
    expect_no_reply_from, expect_reply, port_mappings, sock, CheckError, Ctx, MainPlugin, Net,
    Recorder,
};
use crate::topology::{NODE_V4, NODE_V6};

const HOST_PORT: u16 = 18080;
const HOSTIP_PORT: u16 = 18081;

pub(super) fn run(ctx: &Ctx, r: &mut Recorder, version: CniVersion, main: MainPlugin) {
    let net = match Net::new(ctx, "pm", version, main) {
        Ok(n) => n,
        Err(e) => return r.setup_failed(e),
    };
    let chain = [json!({"type": "portmap", "capabilities": {"portMappings": true}})];
    let caps = port_mappings(&[
        (HOST_PORT, 80, "tcp", None),
        (HOST_PORT, 81, "udp", None),
        (HOSTIP_PORT, 82, "tcp", Some(NODE_V4)),
    ]);
    let (mut a, mut b) = match (
        net.pod("pma", 0, &chain, caps),
        net.pod("pmb", 1, &chain, Map::new()),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return r.setup_failed(e),
    };
    let added = r.check("add", || {
        net.add(&mut a)?;
        net.add(&mut b)?;
        Ok(None)
    });
    if !added {
        let _ = net.del(&a);
        let _ = net.del(&b);
        return;
    }
    let server = match ctx.tools.serve(&a.pod.netns, &[80, 82], &[81], "pod-a", 60) {
        Ok(s) => s,
        Err(e) => {
            r.setup_failed(format!("starting the server in pod A: {e}"));
            let _ = net.del(&a);
            let _ = net.del(&b);
            return;
        }
    };
    let host = net.host();
    let tcp = "pod-a tcp/80";
    let udp = "pod-a udp/81";
    r.check("tcp-from-other-pod", || {
        expect_reply(
            net.request(&b.pod.netns, false, sock(NODE_V4, HOST_PORT)),
            tcp,
        )
    });
    r.check("tcp-from-host-node-ip", || {
        expect_reply(net.request(host, false, sock(NODE_V4, HOST_PORT)), tcp)
    });
    r.check("tcp-from-host-localhost", || {
        expect_reply(net.request(host, false, sock("127.0.0.1", HOST_PORT)), tcp)
    });
    r.check("tcp-hairpin", || {
        expect_reply(
            net.request(&a.pod.netns, false, sock(NODE_V4, HOST_PORT)),
            tcp,
        )
    });
    r.check("udp-from-other-pod", || {
        expect_reply(
            net.request(&b.pod.netns, true, sock(NODE_V4, HOST_PORT)),
            udp,
        )
    });
    r.check("udp-from-host-node-ip", || {
        expect_reply(net.request(host, true, sock(NODE_V4, HOST_PORT)), udp)
    });
    r.check("hostip-only-on-its-ip", || {
        expect_reply(
            net.request(&b.pod.netns, false, sock(NODE_V4, HOSTIP_PORT)),
            "pod-a tcp/82",
        )
    });
    r.check("hostip-only-not-on-other-ips", || {
        expect_no_reply_from(
            net.request(host, false, sock(&net.gateway(0, 4), HOSTIP_PORT)),
            "pod-a",
        )
    });
    if a.ip(6).is_some() {
        r.check("ipv6-tcp-from-host", || {
            expect_reply(net.request(host, false, sock(NODE_V6, HOST_PORT)), tcp)
        });
        r.check("ipv6-tcp-from-other-pod", || {
            expect_reply(
                net.request(&b.pod.netns, false, sock(NODE_V6, HOST_PORT)),
                tcp,
            )
        });
        r.check("ipv6-udp-from-other-pod", || {
            expect_reply(
                net.request(&b.pod.netns, true, sock(NODE_V6, HOST_PORT)),
                udp,
            )
        });
    } else {
        r.skip("ipv6", "the main plugin gave pod A no IPv6 address");
    }
    if version.allows_check() {
        r.check("check", || {
            net.check(&a).and_then(|_| net.check(&b)).map(|_| None)
        });
    }
    r.check("del", || net.del(&a).map(|_| None));
    drop(server);
    r.check("nothing-mapped-after-del", || {
        let _host_server = ctx
            .tools
            .serve(host, &[HOST_PORT], &[HOST_PORT], "host", 30)
            .map_err(CheckError::world("serving the host port in the host netns"))?;
        let want_tcp = format!("host tcp/{HOST_PORT}");
        let want_udp = format!("host udp/{HOST_PORT}");
        expect_reply(
            net.request(host, false, sock(NODE_V4, HOST_PORT)),
            &want_tcp,
        )
        .map_err(|e| e.within("from the host"))?;
        expect_reply(
            net.request(&b.pod.netns, false, sock(NODE_V4, HOST_PORT)),
            &want_tcp,
        )
        .map_err(|e| e.within("tcp from pod B"))?;
        expect_reply(
            net.request(&b.pod.netns, true, sock(NODE_V4, HOST_PORT)),
            &want_udp,
        )
        .map_err(|e| e.within("udp from pod B"))?;
        if b.ip(6).is_some() {
            expect_reply(
                net.request(&b.pod.netns, false, sock(NODE_V6, HOST_PORT)),
                &want_tcp,
            )
            .map_err(|e| e.within("ipv6 tcp from pod B"))?;
        }
        Ok(None)
    });
    r.check("del-other-pod", || net.del(&b).map(|_| None));
    r.check("del-again", || net.del(&a).map(|_| None));
    r.check("cache-empty", || {
        let left = net.cached();
        if left.is_empty() {
            Ok(None)
        } else {
            Err(CheckError::unexpected(format!(
                "cache files left: {left:?}"
            )))
        }
    });
}
