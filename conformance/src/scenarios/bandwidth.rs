//! bandwidth on the wire: a pod shaped to a configured rate in both
//! directions; the bytes its TBF qdiscs release, counted by the kernel over
//! a window after a warm-up that excludes the burst, must give a rate
//! within ±10% of the configured one (see [`crate::throughput`] for why that
//! holds on a loaded machine); CHECK passes; DEL leaves no IFB behind.

use std::net::SocketAddr;
use std::time::Duration;

use cni::CniVersion;
use serde_json::{json, Map};

use super::{sock, CheckError, Checked, Ctx, MainPlugin, Net, Recorder};
use crate::throughput::{measure_within, shaped_bounds, shaper_counters, Counter};
use crate::topology::{Netns, Tools};

/// Configured rate (bit/s) in both directions.
pub(crate) const RATE: u64 = 10_000_000;
/// Configured burst (bits): 20 KB, well below a second's worth.
pub(crate) const BURST: u64 = 160_000;
/// The measurement window of each direction.
pub(crate) const SECONDS: f64 = 1.5;
pub(crate) const WARMUP: Duration = Duration::from_millis(300);

/// Measures the rate of TCP from `from` to `to` (in `to_ns`) through the
/// one shaped pod of the world whose host netns is `host`: counted at the
/// TBF on its host veth (towards the pod) or on its IFB (from the pod),
/// within ±10% of `configured` (mean not above, best part not below;
/// re-measured, with the reason in the text, only when below).
pub(crate) fn shaped_rate(
    tools: &Tools,
    host: &Netns,
    (from, to_ns, to): (&Netns, &Netns, SocketAddr),
    towards_pod: bool,
    configured: u64,
) -> Checked<String> {
    let (to_pod, from_pod) = shaper_counters(&host.path())?;
    let at = if towards_pod { to_pod } else { from_pod };
    let counter = Counter::open(&host.path(), at)?;
    let (low, high) = shaped_bounds(configured as f64);
    measure_within(low, high, || {
        tools
            .throughput(from, to_ns, to, &counter, SECONDS, WARMUP)
            .map(|t| t.rates())
    })
    .map_err(|e| CheckError::from(e).within(format!("{counter:?}")))
    .map(|text| format!("{counter:?}: {text}"))
}

pub(super) fn run(ctx: &Ctx, r: &mut Recorder, version: CniVersion, main: MainPlugin) {
    let net = match Net::new(ctx, "bw", version, main) {
        Ok(n) => n,
        Err(e) => return r.setup_failed(e),
    };
    let chain = [json!({
        "type": "bandwidth",
        "ingressRate": RATE, "ingressBurst": BURST,
        "egressRate": RATE, "egressBurst": BURST,
    })];
    let mut a = match net.pod("bwa", 0, &chain, Map::new()) {
        Ok(a) => a,
        Err(e) => return r.setup_failed(e),
    };
    if !r.check("add", || net.add(&mut a).map(|_| None)) {
        let _ = net.del(&a);
        return;
    }
    let host = net.host();
    r.check("ingress-rate", || {
        let pod_ip = a
            .ip(4)
            .ok_or_else(|| CheckError::unexpected("pod has no IPv4 address"))?;
        shaped_rate(
            &ctx.tools,
            host,
            (host, &a.pod.netns, SocketAddr::new(pod_ip, 5201)),
            true,
            RATE,
        )
        .map(Some)
        .map_err(|e| e.within("towards the pod"))
    });
    r.check("egress-rate", || {
        shaped_rate(
            &ctx.tools,
            host,
            (&a.pod.netns, host, sock(&net.gateway(0, 4), 5202)),
            false,
            RATE,
        )
        .map(Some)
        .map_err(|e| e.within("from the pod"))
    });
    if version.allows_check() {
        r.check("check", || net.check(&a).map(|_| None));
    }
    r.check("del", || net.del(&a).map(|_| None));
    r.check("no-ifb-left", || {
        let left = net.ifbs_settled();
        if left.is_empty() {
            Ok(None)
        } else {
            Err(CheckError::unexpected(format!(
                "IFB links left in the host netns: {left:?}"
            )))
        }
    });
    r.check("del-again", || net.del(&a).map(|_| None));
}
