//! The decoding error: serde's message plus the path (keys as written,
//! array indices) to the value it is about.

use std::fmt;

/// One step of the path to a value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A decoding failure: `path: message` (no path for syntax errors and for
/// the top-level value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Innermost first: segments are pushed as the error travels outwards.
    path: Vec<Segment>,
    msg: String,
}

impl Error {
    pub(crate) fn msg(msg: impl Into<String>) -> Error {
        Error {
            path: Vec::new(),
            msg: msg.into(),
        }
    }

    pub(crate) fn at_key(mut self, key: &str) -> Error {
        self.path.push(Segment::Key(key.to_string()));
        self
    }

    pub(crate) fn at_index(mut self, i: usize) -> Error {
        self.path.push(Segment::Index(i));
        self
    }

    /// The path to the value, e.g. `runtimeConfig.portMappings[0].hostPort`
    /// (empty for the top level). Keys that are not plain words are quoted:
    /// `sysctl["net.core.somaxconn"]`.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for seg in self.path.iter().rev() {
            match seg {
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
                Segment::Key(k) if is_word(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Segment::Key(k) => out.push_str(&format!("[{k:?}]")),
            }
        }
        out
    }

    /// serde's message without the path.
    pub fn message(&self) -> &str {
        &self.msg
    }
}

fn is_word(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}: {}", self.path(), self.msg)
        }
    }
}

impl std::error::Error for Error {}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error::msg(msg.to_string())
    }
}
