//! bandwidth on the wire: a pod shaped to a configured rate in both
//! directions; TCP goodput measured inside the namespaces (after a warm-up
//! that excludes the burst) and converted to link-layer bits must be within
//! ±10% of the configured rate; CHECK passes; DEL leaves no IFB behind.

use std::time::Duration;

use cni::CniVersion;
use serde_json::{json, Map};

use super::{sock, Ctx, MainPlugin, Net, Recorder};
use crate::tools::Throughput;

/// Configured rate (bit/s) in both directions.
pub(crate) const RATE: u64 = 10_000_000;
/// Configured burst (bits): 20 KB, well below a second's worth.
pub(crate) const BURST: u64 = 160_000;
/// How long each direction is measured.
pub(crate) const SECONDS: f64 = 1.5;
pub(crate) const WARMUP: Duration = Duration::from_millis(300);

/// Link-layer bits per second for a TCP goodput over a link of `mtu`
/// (Ethernet 14 + IPv4 20 + TCP with timestamps 32 bytes per segment).
pub(crate) fn wire_bps(t: &Throughput, mtu: u64) -> f64 {
    let payload = mtu.saturating_sub(52).max(1) as f64;
    t.steady_bps() * (payload + 66.0) / payload
}

/// "8.91 Mbit/s of 10.00 (0.89)" and whether it is within ±10%.
pub(crate) fn judge(measured: f64, configured: u64) -> (bool, String) {
    let ratio = measured / configured as f64;
    (
        (0.9..=1.1).contains(&ratio),
        format!(
            "{:.2} Mbit/s of {:.2} configured (ratio {ratio:.3})",
            measured / 1e6,
            configured as f64 / 1e6
        ),
    )
}

/// Measures up to three times while the result is outside ±10% (a loaded
/// 2-core machine can starve one short run); passes when one attempt is
/// within range, and reports every attempt.
pub(crate) fn rate_check(
    configured: u64,
    mut measure: impl FnMut() -> Result<f64, String>,
) -> Result<Option<String>, String> {
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let (ok, text) = judge(measure()?, configured);
        attempts.push(text);
        if ok {
            return Ok(Some(attempts.join("; after a retry: ")));
        }
    }
    Err(attempts.join("; "))
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
    let mtu = a
        .pod
        .netns
        .link(&a.pod.ifname)
        .and_then(|l| l["mtu"].as_u64())
        .unwrap_or(1500);
    let host = net.host();
    r.check("ingress-rate", || {
        let pod_ip = a.ip(4).ok_or("pod has no IPv4 address")?;
        rate_check(RATE, || {
            ctx.tools
                .throughput(
                    host,
                    &a.pod.netns,
                    std::net::SocketAddr::new(pod_ip, 5201),
                    SECONDS,
                    WARMUP,
                )
                .map(|t| wire_bps(&t, mtu))
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("towards the pod: {e}"))
    });
    r.check("egress-rate", || {
        rate_check(RATE, || {
            ctx.tools
                .throughput(
                    &a.pod.netns,
                    host,
                    sock(&net.gateway(0, 4), 5202),
                    SECONDS,
                    WARMUP,
                )
                .map(|t| wire_bps(&t, mtu))
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("from the pod: {e}"))
    });
    if version.allows_check() {
        r.check("check", || net.check(&a).map(|_| None));
    }
    r.check("del", || net.del(&a).map(|_| None));
    r.check("no-ifb-left", || {
        let left = net.ifbs();
        if left.is_empty() {
            Ok(None)
        } else {
            Err(format!("IFB links left in the host netns: {left:?}"))
        }
    });
    r.check("del-again", || net.del(&a).map(|_| None));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_rate_adds_header_overhead() {
        let t = Throughput {
            bytes: 0,
            seconds: 0.0,
            steady_bytes: 1_448_000,
            steady_seconds: 1.0,
            steady_slope_bps: None,
        };
        let bps = wire_bps(&t, 1500);
        assert!((bps - 1_514_000.0 * 8.0).abs() < 1.0, "{bps}");
        assert!(judge(9.5e6, 10_000_000).0);
        assert!(!judge(8.5e6, 10_000_000).0);
        assert!(!judge(11.5e6, 10_000_000).0);
    }
}
