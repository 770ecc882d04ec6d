//! portmap on the wire: pod A maps tcp and udp on the same hostPort to
//! different container ports and one hostIP-only tcp port; pod B and the
//! host reach them by node IP (v4 and v6), the host by 127.0.0.1, A reaches
//! itself (hairpin), the hostIP-only port answers only on its hostIP, CHECK
//! passes, and after DEL the host's own listener gets the port back (nothing
//! is DNAT'ed any more). `portmap-iptables` runs the same with
//! `"backend": "iptables"`.

use cni::CniVersion;
use serde_json::{json, Map};

use std::net::SocketAddr;

use super::{
    expect_no_reply_from, expect_reply, port_mappings, sock, Attached, CheckError, Checked, Ctx,
    MainPlugin, Net, Recorder,
};
use crate::topology::{Netns, NODE_V4, NODE_V6};

const HOST_PORT: u16 = 18080;
const HOSTIP_PORT: u16 = 18081;

pub(super) fn run(ctx: &Ctx, r: &mut Recorder, version: CniVersion, main: MainPlugin) {
    run_with(ctx, r, version, main, "pm", None)
}

/// The same scenario with the iptables backend forced.
pub(super) fn run_iptables(ctx: &Ctx, r: &mut Recorder, version: CniVersion, main: MainPlugin) {
    run_with(ctx, r, version, main, "pmi", Some("iptables"))
}

fn run_with(
    ctx: &Ctx,
    r: &mut Recorder,
    version: CniVersion,
    main: MainPlugin,
    tag: &str,
    backend: Option<&str>,
) {
    let net = match Net::new(ctx, tag, version, main) {
        Ok(n) => n,
        Err(e) => return r.setup_failed(e),
    };
    let mut portmap = json!({"type": "portmap", "capabilities": {"portMappings": true}});
    if let Some(b) = backend {
        portmap["backend"] = b.into();
    }
    let chain = [portmap];
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
    reach_checks(r, &net, &a, &b);
    if version.allows_check() {
        r.check("check", || {
            net.check(&a).and_then(|_| net.check(&b)).map(|_| None)
        });
    }
    r.check("del", || net.del(&a).map(|_| None));
    drop(server);
    r.check("nothing-mapped-after-del", || host_has_port_back(&net, &b));
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

/// Pod A's mappings from pod B, the host and pod A itself (v4, and v6 when
/// pod A has an address), and the hostIP-only port only on its hostIP.
fn reach_checks(r: &mut Recorder, net: &Net, a: &Attached, b: &Attached) {
    let host = net.host();
    let (tcp, udp) = ("pod-a tcp/80", "pod-a udp/81");
    // (check, from, udp, to, the reply it must get): a table, one row a line.
    #[rustfmt::skip]
    let mut rows: Vec<(&str, &Netns, bool, SocketAddr, &str)> = vec![
        ("tcp-from-other-pod", &b.pod.netns, false, sock(NODE_V4, HOST_PORT), tcp),
        ("tcp-from-host-node-ip", host, false, sock(NODE_V4, HOST_PORT), tcp),
        ("tcp-from-host-localhost", host, false, sock("127.0.0.1", HOST_PORT), tcp),
        ("tcp-hairpin", &a.pod.netns, false, sock(NODE_V4, HOST_PORT), tcp),
        ("udp-from-other-pod", &b.pod.netns, true, sock(NODE_V4, HOST_PORT), udp),
        ("udp-from-host-node-ip", host, true, sock(NODE_V4, HOST_PORT), udp),
        ("hostip-only-on-its-ip", &b.pod.netns, false, sock(NODE_V4, HOSTIP_PORT), "pod-a tcp/82"),
    ];
    let v6 = a.ip(6).is_some();
    if v6 {
        #[rustfmt::skip]
        rows.extend([
            ("ipv6-tcp-from-host", host, false, sock(NODE_V6, HOST_PORT), tcp),
            ("ipv6-tcp-from-other-pod", &b.pod.netns, false, sock(NODE_V6, HOST_PORT), tcp),
            ("ipv6-udp-from-other-pod", &b.pod.netns, true, sock(NODE_V6, HOST_PORT), udp),
        ]);
    }
    for (name, from, udp, to, want) in rows {
        r.check(name, || expect_reply(net.request(from, udp, to), want));
        if name == "hostip-only-on-its-ip" {
            r.check("hostip-only-not-on-other-ips", || {
                expect_no_reply_from(
                    net.request(host, false, sock(&net.gateway(0, 4), HOSTIP_PORT)),
                    "pod-a",
                )
            });
        }
    }
    if !v6 {
        r.skip("ipv6", "the main plugin gave pod A no IPv6 address");
    }
}

/// After DEL: the host's own listener answers on the host port again, from
/// the host and from pod B (tcp and udp, v6 when pod B has it).
fn host_has_port_back(net: &Net, b: &Attached) -> Checked<Option<String>> {
    let host = net.host();
    let _host_server = net
        .ctx
        .tools
        .serve(host, &[HOST_PORT], &[HOST_PORT], "host", 30)
        .map_err(CheckError::world("serving the host port in the host netns"))?;
    let want_tcp = format!("host tcp/{HOST_PORT}");
    let want_udp = format!("host udp/{HOST_PORT}");
    let mut rows = vec![
        ("from the host", host, false, NODE_V4, &want_tcp),
        ("tcp from pod B", &b.pod.netns, false, NODE_V4, &want_tcp),
        ("udp from pod B", &b.pod.netns, true, NODE_V4, &want_udp),
    ];
    if b.ip(6).is_some() {
        rows.push((
            "ipv6 tcp from pod B",
            &b.pod.netns,
            false,
            NODE_V6,
            &want_tcp,
        ));
    }
    for (what, from, udp, ip, want) in rows {
        expect_reply(net.request(from, udp, sock(ip, HOST_PORT)), want)
            .map_err(|e| e.within(what))?;
    }
    Ok(None)
}
