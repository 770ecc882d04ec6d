//! The `portmap` CNI plugin: hostPort DNAT on nftables with O(1) per-pod
//! work (set elements only) and per-packet map lookups, or on upstream's
//! iptables layout ([`iptables`]). Handlers here only
//! read the request, call the pure config/plan functions and hand the plan
//! to the configuration's [`backend::Firewall`], which
//! decides kernel effects with the backend-neutral helpers ([`conntrack`],
//! [`localnet`], the state files of [`state`]). See [`nftables::skeleton`]
//! for the nft layout, [`nftables`] for the cost of each verb and
//! [`localnet`] for localhost (127.0.0.1 works, ::1 cannot). Taking over
//! from upstream portmap ([`upstream`]) is each backend's own work: the
//! iptables backend shares upstream's layout, the nftables backend probes
//! for it on the socket of its own transaction.

pub mod backend;
pub mod conditions;
pub mod config;
pub mod conntrack;
pub mod flush_queue;
pub mod iptables;
pub mod localnet;
pub mod netns_state;
pub mod nftables;
pub mod plan;
pub mod state;
pub mod upstream;

use std::collections::BTreeSet;

use cni::{CniError, GcRequest, Reply, Request, StatusRequest};

use crate::config::{container_ips, ContainerIps};
use crate::plan::MapKey;

/// The plugin, for `cni::skel::run`.
pub struct Plugin;

fn prev_or_missing(req: &Request) -> Result<&cni::CniResult, CniError> {
    req.prev_result.as_ref().ok_or_else(|| {
        CniError::invalid_config("portmap: must be called as chained plugin: prevResult is missing")
    })
}

fn plan_for(req: &Request) -> Result<(plan::PodPlan, cni::CniResult), CniError> {
    let cfg = config::parse(&req.stdin)?;
    let prev = prev_or_missing(req)?.clone();
    let ips = container_ips(&prev, &req.cmd.ifname);
    Ok((plan::pod_plan(&cfg, &req.owner(), ips), prev))
}

fn firewall(plan: &plan::PodPlan) -> Box<dyn backend::Firewall> {
    backend::for_config(&plan.config)
}

impl cni::Plugin for Plugin {
    fn about(&self) -> String {
        "portmap CNI plugin (nftables or iptables, Rust)".into()
    }

    fn add(&self, req: &Request) -> Result<Reply, CniError> {
        let (plan, prev) = plan_for(req)?;
        localnet::refuse_non_local_host_ips(&plan)?;
        localnet::route_localnet_for(&plan)?;
        firewall(&plan).add(&plan)?;
        Ok(Reply::Result(prev))
    }

    fn check(&self, req: &Request) -> Result<Reply, CniError> {
        let (plan, _) = plan_for(req)?;
        firewall(&plan).check(&plan)?;
        Ok(Reply::Empty)
    }

    /// DEL needs nothing from the configuration: the owner finds every
    /// element and chain. The configured UDP mappings only add conntrack
    /// entries to flush, so a configuration that does not validate (a
    /// malformed `runtimeConfig`, say) is reported on stderr and ignored
    /// (upstream fails DEL there, and libcni then stops the whole DEL chain).
    fn del(&self, req: &Request) -> Result<Reply, CniError> {
        let cfg = config::parse(&req.stdin);
        let udp: BTreeSet<MapKey> = match &cfg {
            Ok(cfg) => {
                let ips = req
                    .prev_result
                    .as_ref()
                    .map(|p| container_ips(p, &req.cmd.ifname))
                    .unwrap_or(ContainerIps {
                        v4: Some(std::net::Ipv4Addr::UNSPECIFIED.into()),
                        v6: Some(std::net::Ipv6Addr::UNSPECIFIED.into()),
                    });
                plan::pod_plan(cfg, &req.owner(), ips)
                    .keys()
                    .into_iter()
                    .filter(|k| k.protocol == config::Protocol::Udp)
                    .collect()
            }
            Err(e) => {
                req.log.warn(format!(
                    "{} (ignored by DEL: removing what {} installed)",
                    e.msg,
                    req.owner().tag()
                ));
                BTreeSet::new()
            }
        };
        backend::for_teardown(cfg.as_ref().ok()).del(&req.owner(), &udp)?;
        Ok(Reply::Empty)
    }

    fn gc(&self, req: &GcRequest) -> Result<Reply, CniError> {
        let cfg = config::parse(&req.stdin)?;
        backend::for_config(&cfg).gc(&req.conf.name, &req.valid_attachments)?;
        Ok(Reply::Empty)
    }

    fn status(&self, req: &StatusRequest) -> Result<Reply, CniError> {
        let cfg = config::parse(&req.stdin)?;
        backend::for_config(&cfg).status()?;
        Ok(Reply::Empty)
    }
}
