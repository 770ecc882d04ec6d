//! The CNI contract shared by every plugin and the conformance runtime:
//! versions, results and their conversions, errors, the skel that owns the
//! process boundary, CNI_ARGS, and netns/sysctl helpers and the one netlink socket layer. No plugin
//! logic lives here.

pub mod args;
pub mod error;
pub mod netlink;
pub mod netns;
pub mod rtnl;
pub mod skel;
pub mod sysctl;
pub mod types;
pub mod version;

pub use error::{CniError, ErrorCode};
pub use skel::{CmdArgs, Command, GcRequest, Plugin, Reply, Request, StatusRequest};
pub use types::CniResult;
pub use version::CniVersion;
#[cfg(feature = "testing")]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub mod testing;
