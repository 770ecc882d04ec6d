//! A netlink session bound to one netns: the socket is created while the
//! current thread is inside the target netns (then the thread goes back at
//! once; a socket stays in the netns it was made in), driven by a
//! current-thread tokio runtime. Async never leaks out of this module's
//! callers: they call `block_on` with a future that uses `handle()`.

use std::future::Future;
use std::path::Path;

use futures_util::TryStreamExt;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::Handle;

use crate::error::CniError;
use crate::netns::{NetnsError, NetnsGuard};

/// A rtnetlink handle in one netns plus the runtime that drives it.
pub struct NetlinkSession {
    runtime: tokio::runtime::Runtime,
    handle: Handle,
}

/// errno values the kernel reports for missing objects.
pub const ENODEV: i32 = libc::ENODEV;
pub const ENOENT: i32 = libc::ENOENT;
pub const EEXIST: i32 = libc::EEXIST;

impl NetlinkSession {
    /// Opens a session in the netns at `netns`, or in the thread's current
    /// netns when `None`.
    pub fn open(netns: Option<&Path>) -> Result<NetlinkSession, NetlinkError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(NetlinkError::Runtime)?;
        let guard = netns.map(NetnsGuard::enter).transpose()?;
        let connection = {
            let _ctx = runtime.enter();
            rtnetlink::new_connection().map_err(NetlinkError::Socket)
        };
        if let Some(g) = guard {
            g.leave()?;
        }
        let (conn, handle, _) = connection?;
        runtime.spawn(conn);
        Ok(NetlinkSession { runtime, handle })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs a future on this session's runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Looks a link up by name; `Ok(None)` when it does not exist.
    pub fn link_by_name(&self, name: &str) -> Result<Option<LinkMessage>, rtnetlink::Error> {
        let req = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        self.block_on(async {
            let mut stream = req;
            match stream.try_next().await {
                Ok(msg) => Ok(msg),
                Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// Looks a link up by index; `Ok(None)` when it does not exist.
    pub fn link_by_index(&self, index: u32) -> Result<Option<LinkMessage>, rtnetlink::Error> {
        let req = self.handle.link().get().match_index(index).execute();
        self.block_on(async {
            let mut stream = req;
            match stream.try_next().await {
                Ok(msg) => Ok(msg),
                Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }
}

/// The positive errno of a netlink error, if it carries one.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// A readable description of a netlink error ("No such device (os error 19)").
pub fn describe(e: &rtnetlink::Error) -> String {
    match errno(e) {
        Some(n) => std::io::Error::from_raw_os_error(n).to_string(),
        None => e.to_string(),
    }
}

/// The name of a link message, if it has one.
pub fn link_name(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// Opening a netlink session failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("creating the netlink runtime: {0}")]
    Runtime(std::io::Error),
    #[error("opening a netlink socket: {0}")]
    Socket(std::io::Error),
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

impl NetlinkError {
    pub fn is_netns_missing(&self) -> bool {
        matches!(self, NetlinkError::Netns(e) if e.is_not_found())
    }
}

impl From<NetlinkError> for CniError {
    fn from(e: NetlinkError) -> Self {
        CniError::internal(e.to_string())
    }
}
