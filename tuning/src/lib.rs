//! The `tuning` CNI plugin (work in progress).

use cni::{CniError, Reply, Request};

/// The plugin, for `cni::skel::run`.
pub struct Plugin;

impl cni::Plugin for Plugin {
    fn about(&self) -> String {
        "tuning CNI plugin".into()
    }
    fn add(&self, _req: &Request) -> Result<Reply, CniError> {
        Err(CniError::internal("tuning: not implemented yet"))
    }
    fn check(&self, _req: &Request) -> Result<Reply, CniError> {
        Err(CniError::internal("tuning: not implemented yet"))
    }
    fn del(&self, _req: &Request) -> Result<Reply, CniError> {
        Err(CniError::internal("tuning: not implemented yet"))
    }
}
