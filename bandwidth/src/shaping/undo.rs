//! The undo journal of an ADD: what it created so far, recorded as soon as
//! each object exists, and deleting exactly that (newest first) when a later
//! step fails. Never touches what it did not record.

use netlink_packet_route::link::InfoKind;
use netlink_packet_route::tc::TcHandle;

use cni::rtnl::link_kind;

use super::{unless_gone, Host, HostVeth};
use crate::error::TcError;
use crate::tc;

/// What an ADD created so far, for undoing it when a later step fails.
#[derive(Debug, Default)]
pub(super) struct Created {
    /// The root qdisc on the host veth.
    pub root_qdisc: bool,
    /// The ingress qdisc on the host veth.
    pub ingress_qdisc: bool,
    /// The IFB's name and, once known, its ifindex.
    pub ifb: Option<(String, Option<u32>)>,
    /// Created exclusively without reading the kernel first.
    pub fast: bool,
    /// A fast ADD met something already there (EEXIST).
    pub conflict: bool,
}

impl Created {
    /// The journal of a fast ADD (nothing read first).
    pub fn fast() -> Created {
        Created {
            fast: true,
            ..Created::default()
        }
    }

    /// Records that a fast ADD's exclusive create met something already
    /// there, which sends the ADD the careful way.
    pub fn conflict_if_exists(&mut self, e: &TcError) {
        self.conflict = self.fast && e.is_exists();
    }
}

impl Host {
    /// Undoes what a failed ADD created: `Ok(e)` when everything was
    /// undone, `Err` with `e` and what could not be undone otherwise.
    pub(super) fn undone(
        &self,
        e: TcError,
        created: &Created,
        veth: &HostVeth,
    ) -> Result<TcError, TcError> {
        let undo = self.undo(created, veth);
        if undo.is_empty() {
            return Ok(e);
        }
        Err(TcError::UndoFailed {
            error: Box::new(e),
            undo,
        })
    }

    /// Deletes what a failed ADD created, newest first; returns what could
    /// not be deleted. An ingress qdisc we created stays when a filter that
    /// is not ours appeared on it meanwhile.
    fn undo(&self, created: &Created, veth: &HostVeth) -> Vec<TcError> {
        let mut errors = Vec::new();
        let on = format!("host veth {} (ifindex {})", veth.name, veth.index);
        if let Some((name, index)) = &created.ifb {
            let index = match index {
                Some(i) => Some(*i),
                None => match self.link(name) {
                    Ok(l) => l
                        .filter(|l| link_kind(l) == Some(InfoKind::Ifb))
                        .map(|l| l.header.index),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                },
            };
            if let Some(index) = index {
                self.delete_ifb(name, index, &mut errors);
            }
        }
        if created.ingress_qdisc {
            self.remove_ingress_qdisc_if_unused(veth.index, &on, &mut errors);
        }
        if created.root_qdisc {
            let deleted = tc::del_qdisc(&self.nl, veth.index, TcHandle::ROOT);
            unless_gone(
                deleted,
                format!("deleting the root qdisc on {on}"),
                &mut errors,
            );
        }
        errors
    }
}
