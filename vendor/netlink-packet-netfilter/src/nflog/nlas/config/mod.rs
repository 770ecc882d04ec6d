// SPDX-License-Identifier: MIT
mod config_cmd;
mod config_flags;
mod config_mode;
mod nla;
mod timeout;

pub use config_cmd::ConfigCmd;
pub use config_flags::ConfigFlags;
pub use config_mode::{ConfigMode, CopyMode};
pub use nla::ConfigNla;
pub use timeout::Timeout;
