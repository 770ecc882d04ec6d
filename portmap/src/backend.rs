//! The seam between portmap's verbs and the kernel: a [`Firewall`] takes a
//! pod's plan (or, for DEL and GC, just owners) and makes the host match it.
//! nftables ([`crate::nftables`], the default) and iptables
//! ([`crate::iptables`], upstream's layout) are sibling modules implementing
//! the same trait, chosen here from the configuration — never an `if`
//! inside a backend.

use std::collections::BTreeSet;

use cni::args::Owner;
use cni::types::Attachment;
use cni::CniError;

use crate::config::{Backend, Config};
use crate::iptables::Iptables;
use crate::nftables::Nftables;
use crate::plan::{MapKey, PodPlan};

/// What a backend does for each verb.
pub trait Firewall {
    /// ADD: installs the plan (idempotent for the same owner, refused when
    /// another attachment owns one of the host ports).
    fn add(&self, plan: &PodPlan) -> Result<(), CniError>;
    /// CHECK: compares what is installed for the plan's owner with the plan.
    fn check(&self, plan: &PodPlan) -> Result<(), CniError>;
    /// DEL: removes everything `owner` installed, without config or
    /// prevResult; `extra_udp` are UDP keys from the configuration, for
    /// conntrack cleanup when nothing is installed.
    fn del(&self, owner: &Owner, extra_udp: &BTreeSet<MapKey>) -> Result<(), CniError>;
    /// GC: removes what attachments of `network` not in `valid` installed.
    fn gc(&self, network: &str, valid: &[Attachment]) -> Result<(), CniError>;
    /// STATUS: whether the backend can work on this host.
    fn status(&self) -> Result<(), CniError>;
}

/// The backend `config` asks for.
pub fn for_config(config: &Config) -> Box<dyn Firewall> {
    match config.backend {
        Backend::Nftables => Box::new(Nftables::default()),
        Backend::Iptables => Box::new(Iptables),
    }
}

/// The backend a DEL tears down with: the configured one, or the default
/// when the configuration does not validate (DEL finds what it owns by the
/// owner tag, so a configuration it cannot read never blocks teardown).
pub fn for_teardown(config: Option<&Config>) -> Box<dyn Firewall> {
    match config {
        Some(config) => for_config(config),
        None => Box::new(Nftables::default()),
    }
}
