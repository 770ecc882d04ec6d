// SPDX-License-Identifier: MIT

mod attribute;
mod iptuple;
mod protoinfo;
mod protoinfotcp;
mod prototuple;
mod status;
mod tcp_flags;
mod tuple;

pub use attribute::ConntrackAttribute;
pub use iptuple::IPTuple;
pub use protoinfo::ProtoInfo;
pub use protoinfotcp::ProtoInfoTCP;
pub use prototuple::{ProtoTuple, Protocol};
pub use status::Status;
pub use tcp_flags::TCPFlags;
pub use tuple::Tuple;
