//! The CNI contract shared by every plugin and the conformance runtime:
//! versions, results and their conversions, errors, the skel that owns the
//! process boundary, CNI_ARGS, Go-compatible JSON decoding (`gojson`, what
//! every input goes through), netns and sysctl helpers, and the one netlink
//! socket layer (`netlink`, re-exported for routes as `rtnl`). No plugin
//! logic lives here.

#![warn(missing_docs)]

pub mod args;
pub mod error;
pub mod failpoint;
pub mod fixture;
pub mod gojson;
pub mod netlink;
pub mod netns;
pub mod rtnl;
pub mod skel;
pub mod sysctl;
pub mod types;
pub mod version;

pub use error::{CniError, ErrorCode};
pub use skel::{CmdArgs, Command, GcRequest, Log, Plugin, Reply, Request, StatusRequest};
pub use types::CniResult;
pub use version::CniVersion;
#[cfg(feature = "testing")]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub mod testing;
