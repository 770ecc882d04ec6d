// SPDX-License-Identifier: MIT

mod message;

pub use self::message::ControlMessage;
