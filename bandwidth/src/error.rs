//! [`TcError`]: everything that can go wrong while bandwidth finds the veth
//! and applies, verifies or removes shaping, and its one conversion to
//! [`CniError`] (the only place that picks a CNI error code for the kernel
//! side). Messages say what was being done to what; the kernel's errno stays
//! readable ([`TcError::errno`]) so callers judge "already there" and
//! "gone" without parsing text.

use std::fmt;

use cni::rtnl::{RtnlError, ENODEV, ENOENT};
use cni::{CniError, ErrorCode};

/// A kernel-side failure of the bandwidth plugin.
#[derive(Debug, thiserror::Error)]
pub enum TcError {
    /// A netlink request failed; `what` names the request and its object.
    #[error("bandwidth: {what}: {source}")]
    Netlink {
        /// E.g. `creating tbf qdisc 1: parent root on host veth v1 (ifindex 7)`.
        what: String,
        /// The kernel's (or the socket's) answer.
        source: RtnlError,
    },
    /// Creating the redirect filter failed; an EINVAL gets a hint.
    #[error("bandwidth: {what}: {source}{}", redirect_hint(source, *prio))]
    Redirect {
        /// The filter and both ends of the redirect.
        what: String,
        /// The kernel's answer.
        source: RtnlError,
        /// The filter's priority.
        prio: u16,
    },
    /// The container interface is not in its netns.
    #[error("bandwidth: container interface {ifname} not found in netns {netns}")]
    NoContainerInterface {
        /// `CNI_IFNAME`.
        ifname: String,
        /// `CNI_NETNS`.
        netns: String,
    },
    /// The container interface is not a veth.
    #[error(
        "bandwidth: container interface {ifname} has no veth peer: it is a {kind} link; \
         bandwidth shapes the host end of a veth pair (use it after ptp or bridge)"
    )]
    NotAVeth {
        /// `CNI_IFNAME`.
        ifname: String,
        /// Its link kind, lowercase.
        kind: String,
    },
    /// The container veth reports no peer index.
    #[error("bandwidth: container interface {ifname} has no veth peer (no IFLA_LINK)")]
    NoVethPeer {
        /// `CNI_IFNAME`.
        ifname: String,
    },
    /// The peer index names no veth of ours in the host netns.
    #[error(
        "bandwidth: veth peer with index {peer} of container interface {ifname} is not in host ns"
    )]
    PeerNotInHost {
        /// `CNI_IFNAME`.
        ifname: String,
        /// The peer's ifindex.
        peer: u32,
    },
    /// Someone else's root qdisc is on the veth.
    #[error(
        "bandwidth: host veth {veth} already has a root qdisc {kind} {major:x}: that bandwidth \
         did not create; remove it or drop ingressRate"
    )]
    ForeignRoot {
        /// The host veth.
        veth: String,
        /// The qdisc's kind.
        kind: String,
        /// Its handle's major number.
        major: u16,
    },
    /// A link that is not our IFB holds the IFB's name.
    #[error(
        "bandwidth: cannot create ifb {name}: the name is taken by link {holder} (ifindex \
         {index}, {kind}, alias {alias:?}) that bandwidth does not own for {owner}; it was left alone"
    )]
    IfbNameTaken {
        /// The IFB name.
        name: String,
        /// The holder's name.
        holder: String,
        /// The holder's ifindex.
        index: u32,
        /// The holder's kind.
        kind: String,
        /// The holder's alias.
        alias: String,
        /// Our owner tag.
        owner: String,
    },
    /// The IFB was created but could not be found right after.
    #[error("bandwidth: ifb {0} vanished after creation")]
    IfbVanished(String),
    /// CHECK: the kernel differs from the plan.
    #[error("bandwidth: {0}")]
    Mismatch(String),
    /// Removing what an earlier ADD of the same owner left failed.
    #[error("bandwidth: removing the shaping of an earlier ADD: {0}")]
    EarlierAdd(Box<TcError>),
    /// An ADD failed and undoing it failed too.
    #[error("{error}; undoing the ADD also failed: {}", Joined(undo))]
    UndoFailed {
        /// Why the ADD failed.
        error: Box<TcError>,
        /// What could not be undone.
        undo: Vec<TcError>,
    },
    /// DEL or GC failed for one or more objects (it kept going).
    #[error("{}", Joined(.0))]
    Teardown(Vec<TcError>),
    /// STATUS: the kernel refused to create an object shaping needs.
    #[error("bandwidth: the kernel cannot create {what} (probed in a throwaway netns): {source}")]
    Unsupported {
        /// The object, e.g. `a tbf root qdisc`.
        what: &'static str,
        /// The kernel's answer.
        source: RtnlError,
    },
    /// netlink or tc is not usable at all (STATUS).
    #[error(transparent)]
    NotUsable(Box<TcError>),
}

/// `a; b; c` of the errors' messages.
struct Joined<'a>(&'a [TcError]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

fn redirect_hint(source: &RtnlError, prio: u16) -> String {
    if source.errno() == Some(libc::EINVAL) {
        format!(
            " (its ingress hook may already have a filter of another protocol at priority {prio})"
        )
    } else {
        String::new()
    }
}

impl TcError {
    /// `bandwidth: <what>: <errno text>` for a failed netlink request.
    pub fn netlink(what: impl fmt::Display) -> impl FnOnce(RtnlError) -> TcError {
        move |source| TcError::Netlink {
            what: what.to_string(),
            source,
        }
    }

    /// The kernel's errno, when the failure is its answer to a request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            TcError::Netlink { source, .. } | TcError::Redirect { source, .. } => source.errno(),
            _ => None,
        }
    }

    /// The kernel answered EEXIST: the object is already there.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// The object (or its device) is gone: ENODEV, ENOENT, or the EINVAL tc
    /// answers for a qdisc/filter that is not there.
    pub fn is_gone(&self) -> bool {
        matches!(
            self.errno(),
            Some(ENODEV) | Some(ENOENT) | Some(libc::EINVAL)
        )
    }

    /// `Err(Teardown)` when any of `errors` happened.
    pub fn all(errors: Vec<TcError>) -> Result<(), TcError> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TcError::Teardown(errors))
        }
    }
}

impl From<TcError> for CniError {
    fn from(e: TcError) -> Self {
        match e {
            TcError::NotUsable(_) => CniError::new(ErrorCode::PluginNotAvailable, e.to_string()),
            _ => CniError::internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_survives_and_codes_are_picked_here() {
        let e = TcError::netlink("creating ifb bwp0")(RtnlError::Errno(libc::EEXIST));
        assert!(e.is_exists() && !e.is_gone());
        assert_eq!(
            e.to_string(),
            format!(
                "bandwidth: creating ifb bwp0: {}",
                std::io::Error::from_raw_os_error(libc::EEXIST)
            )
        );
        let gone = TcError::netlink("x")(RtnlError::Errno(libc::ENODEV));
        assert!(gone.is_gone());
        let all = TcError::all(vec![e, gone]).unwrap_err();
        assert!(
            all.to_string().contains("(os error 17); bandwidth: x: "),
            "{all}"
        );
        assert_eq!(CniError::from(all).code, ErrorCode::Internal);
        let down = TcError::NotUsable(Box::new(TcError::IfbVanished("i".into())));
        let down = CniError::from(down);
        assert_eq!(down.code, ErrorCode::PluginNotAvailable);
        assert_eq!(down.msg, "bandwidth: ifb i vanished after creation");
    }

    #[test]
    fn a_redirect_einval_gets_the_priority_hint() {
        let e = TcError::Redirect {
            what: "adding".into(),
            source: RtnlError::Errno(libc::EINVAL),
            prio: 0xbd,
        };
        assert!(e.to_string().ends_with("at priority 189)"), "{e}");
        let e = TcError::Redirect {
            what: "adding".into(),
            source: RtnlError::Errno(libc::EPERM),
            prio: 1,
        };
        assert!(!e.to_string().contains("priority"), "{e}");
    }
}
