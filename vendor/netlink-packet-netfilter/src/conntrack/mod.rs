// SPDX-License-Identifier: MIT

mod attributes;
mod message;

pub use self::attributes::{
    ConntrackAttribute, IPTuple, ProtoInfo, ProtoInfoTCP, ProtoTuple, Protocol,
    Status, TCPFlags, Tuple,
};
pub use self::message::{ConntrackMessage, ConntrackMessageType};
