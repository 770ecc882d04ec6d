//! Wire types of the spec: the common network configuration fields, results in
//! every layout with explicit conversions, and the CIDR notation results use.

mod cidr;
mod netconf;
mod result;

pub use cidr::Cidr;
pub use netconf::{Attachment, NetConf};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
