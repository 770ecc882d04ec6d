//! tuning inside the pod netns: after a main plugin ADD, tuning ADD (run
//! directly with that prevResult, so its DEL can be observed before the main
//! plugin deletes the interface) sets MTU, promisc, txqueuelen, MAC (also in
//! the result) and two sysctls; CHECK passes; DEL restores the link
//! attributes and the sysctls and leaves no backup file.

use cni::CniVersion;
use serde_json::{json, Map, Value};

use super::{
    invoke, one_line, Attached, CheckError, Checked, Ctx, MainPlugin, Net, PluginRun, Recorder,
};

const MAC: &str = "c2:11:22:33:44:55";
const MTU: u64 = 1400;
const TXQLEN: u64 = 500;
const SOMAXCONN: &str = "512";
const ARP_IGNORE: &str = "1";

/// The link attributes tuning changes, as the kernel shows them.
#[derive(Debug, Clone, PartialEq)]
struct LinkState {
    mtu: u64,
    promisc: bool,
    txqlen: u64,
    mac: String,
}

fn link_state(a: &Attached) -> Checked<LinkState> {
    let l =
        a.pod.netns.link(&a.pod.ifname).ok_or_else(|| {
            CheckError::unexpected(format!("{} not found in the pod", a.pod.ifname))
        })?;
    Ok(LinkState {
        mtu: l["mtu"].as_u64().unwrap_or_default(),
        promisc: l["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "PROMISC")),
        txqlen: l["txqlen"].as_u64().unwrap_or_default(),
        mac: l["address"].as_str().unwrap_or_default().to_string(),
    })
}

fn sysctls(a: &Attached) -> Checked<(String, String)> {
    let ns = &a.pod.netns;
    let somaxconn = ns.read_sysctl("net/core/somaxconn")?;
    let arp = ns.read_sysctl(&format!("net/ipv4/conf/{}/arp_ignore", a.pod.ifname))?;
    Ok((somaxconn, arp))
}

pub(super) fn run(ctx: &Ctx, r: &mut Recorder, version: CniVersion, main: MainPlugin) {
    let net = match Net::new(ctx, "tu", version, main) {
        Ok(n) => n,
        Err(e) => return r.setup_failed(e),
    };
    let mut a = match net.pod("tua", 0, &[], Map::new()) {
        Ok(a) => a,
        Err(e) => return r.setup_failed(e),
    };
    let prev = match net.add(&mut a) {
        Ok(v) => v,
        Err(e) => {
            r.setup_failed(format!("main plugin {e}"));
            let _ = net.del(&a);
            return;
        }
    };
    tuning_checks(ctx, r, &net, &a, prev);
    r.check("main-del", || net.del(&a).map(|_| None));
    r.check("no-backup-left", || {
        let left = crate::topology::files_under(&net.dir("tuning"));
        if left.is_empty() {
            Ok(None)
        } else {
            Err(CheckError::unexpected(format!(
                "backup files left in dataDir: {left:?}"
            )))
        }
    });
}

/// tuning run directly on one attached pod, the way a runtime runs it.
struct Direct<'a, 'c> {
    ctx: &'a Ctx,
    net: &'a Net<'c>,
    a: &'a Attached,
    netns: String,
}

impl Direct<'_, '_> {
    /// The configuration with `prev` as prevResult.
    fn conf(&self, prev: &Value) -> Vec<u8> {
        json!({
            "cniVersion": self.net.version.as_str(),
            "name": self.net.name,
            "type": "tuning",
            "mtu": MTU,
            "promisc": true,
            "txQLen": TXQLEN,
            "mac": MAC,
            "sysctl": {
                "net.core.somaxconn": SOMAXCONN,
                "net.ipv4.conf.IFNAME.arp_ignore": ARP_IGNORE,
            },
            "dataDir": self.net.dir("tuning").to_string_lossy(),
            "prevResult": prev,
        })
        .to_string()
        .into_bytes()
    }

    fn run(&self, command: &str, prev: &Value) -> Checked<PluginRun> {
        invoke(
            Some(self.net.host()),
            &self.ctx.plugin_path("tuning"),
            &[
                ("CNI_COMMAND", command),
                ("CNI_CONTAINERID", &self.a.rt.container_id),
                ("CNI_NETNS", &self.netns),
                ("CNI_IFNAME", &self.a.pod.ifname),
                ("CNI_PATH", &self.ctx.opts.plugins.to_string_lossy()),
            ],
            &self.conf(prev),
        )
    }

    /// `command` must exit 0; `what` names it in the failure.
    fn succeeds(&self, what: &str, command: &str, prev: &Value) -> Checked<PluginRun> {
        let out = self.run(command, prev)?;
        if out.code == Some(0) {
            Ok(out)
        } else {
            Err(CheckError::unexpected(format!(
                "{what} exited {:?}: {}",
                out.code,
                one_line(&out.stdout)
            )))
        }
    }
}

fn tuning_checks(ctx: &Ctx, r: &mut Recorder, net: &Net, a: &Attached, prev: Value) {
    let (orig_link, orig_sysctls) = match (link_state(a), sysctls(a)) {
        (Ok(l), Ok(s)) => (l, s),
        (Err(e), _) | (_, Err(e)) => return r.setup_failed(e),
    };
    let netns = a.pod.netns.path().to_string_lossy().into_owned();
    let tuning = Direct { ctx, net, a, netns };
    let mut result = Value::Null;
    let added = r.check("add", || {
        let out = tuning.succeeds("tuning ADD", "ADD", &prev)?;
        result = serde_json::from_str(out.stdout.trim()).map_err(|e| {
            CheckError::unexpected(format!("tuning ADD printed no result JSON ({e})"))
        })?;
        Ok(None)
    });
    if !added {
        let _ = tuning.run("DEL", &prev);
        return;
    }
    applied_checks(r, a, &result);
    if net.version.allows_check() {
        r.check("check", || {
            tuning
                .succeeds("tuning CHECK", "CHECK", &result)
                .map(|_| None)
        });
    }
    if !r.check("del", || {
        tuning.succeeds("tuning DEL", "DEL", &result).map(|_| None)
    }) {
        return;
    }
    r.check("link-attributes-restored", || {
        let now = link_state(a)?;
        if now == orig_link {
            Ok(None)
        } else {
            Err(CheckError::unexpected(format!(
                "link is {now:?}, was {orig_link:?} before ADD"
            )))
        }
    });
    r.check("sysctls-restored", || {
        let now = sysctls(a)?;
        if now == orig_sysctls {
            Ok(None)
        } else {
            Err(CheckError::unexpected(format!(
                "somaxconn={} arp_ignore={}, were {}/{} before ADD",
                now.0, now.1, orig_sysctls.0, orig_sysctls.1
            )))
        }
    });
    r.check("del-again", || {
        tuning.succeeds("second DEL", "DEL", &result).map(|_| None)
    });
}

/// After ADD: the link attributes and sysctls inside the pod, and the MAC
/// the result reports.
fn applied_checks(r: &mut Recorder, a: &Attached, result: &Value) {
    match link_state(a) {
        Err(e) => r.setup_failed(e),
        Ok(now) => {
            let attrs = [
                ("mtu", now.mtu.to_string(), MTU.to_string()),
                ("promisc", now.promisc.to_string(), "true".to_string()),
                ("txqlen", now.txqlen.to_string(), TXQLEN.to_string()),
                ("mac", now.mac.clone(), MAC.to_string()),
            ];
            for (name, got, want) in attrs {
                r.check(name, || {
                    if got == want {
                        Ok(None)
                    } else {
                        Err(CheckError::unexpected(format!(
                            "{name} is {got} inside the pod, configured {want}"
                        )))
                    }
                });
            }
        }
    }
    r.check("sysctls", || {
        let now = sysctls(a)?;
        if now == (SOMAXCONN.to_string(), ARP_IGNORE.to_string()) {
            Ok(None)
        } else {
            Err(CheckError::unexpected(format!(
                "somaxconn={} arp_ignore={} inside the pod, configured {SOMAXCONN}/{ARP_IGNORE}",
                now.0, now.1
            )))
        }
    });
    r.check("result-mac", || {
        let ifs = result["interfaces"].as_array().cloned().unwrap_or_default();
        let macs: Vec<&str> = ifs
            .iter()
            .filter(|i| i["name"] == a.pod.ifname.as_str())
            .filter_map(|i| i["mac"].as_str())
            .collect();
        if ifs.is_empty() {
            // 0.1.0/0.2.0 results carry no interfaces.
            return Ok(Some("result layout has no interfaces".into()));
        }
        if macs.contains(&MAC) {
            Ok(None)
        } else {
            Err(CheckError::unexpected(format!(
                "result reports {macs:?} for {}, link has {MAC}",
                a.pod.ifname
            )))
        }
    });
}
