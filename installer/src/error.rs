//! The installer's one error type: what was being done to which file, and
//! why. Messages are lowercase and name the object acted on.

use crate::conflist::EditError;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error("plugin {plugin}: refusing to install it: {reason}")]
    Verify { plugin: String, reason: String },
    #[error("{0}")]
    Settings(String),
    #[error("{file}: converting it to a conflist would replace {target}, which is not ours; remove one of them")]
    Occupied { file: String, target: String },
}
