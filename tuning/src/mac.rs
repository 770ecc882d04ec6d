//! The MAC address tuning sets: a 6-byte unicast Ethernet address, parsed
//! from config text (colons or hyphens, any case), shown lowercased with
//! colons (in messages, backups and plan snapshots). No I/O.

use std::fmt;

use serde::Serialize;

/// A 6-byte unicast Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

/// Why a text is not a MAC tuning can set; each names the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    #[error("{text:?} is not a MAC address (want 6 hex octets)")]
    OctetCount { text: String },
    #[error("{text:?} is not a MAC address (octet {octet:?})")]
    Octet { text: String, octet: String },
    #[error("{text:?} is a multicast address; an interface needs a unicast MAC")]
    Multicast { text: String },
    #[error("{text:?} is the all-zero address")]
    Zero { text: String },
}

impl Mac {
    /// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (any case).
    pub fn parse(s: &str) -> Result<Mac, MacError> {
        let text = || s.to_string();
        let sep = if s.contains('-') { '-' } else { ':' };
        let parts: Vec<&str> = s.split(sep).collect();
        if parts.len() != 6 {
            return Err(MacError::OctetCount { text: text() });
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(&parts) {
            let bad = || MacError::Octet {
                text: text(),
                octet: p.to_string(),
            };
            if p.len() != 2 {
                return Err(bad());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if out[0] & 1 == 1 {
            return Err(MacError::Multicast { text: text() });
        }
        if out == [0; 6] {
            return Err(MacError::Zero { text: text() });
        }
        Ok(Mac(out))
    }

    /// Accepts the raw bytes of a link's address (any length; only 6-byte
    /// addresses become a `Mac`).
    pub fn from_bytes(b: &[u8]) -> Option<Mac> {
        <[u8; 6]>::try_from(b).ok().map(Mac)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Plans and snapshots show a MAC as its text.
impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_either_separator_and_rejects_naming_the_text() {
        let m = Mac::parse("02-AB-00-00-00-01").unwrap();
        assert_eq!(m.to_string(), "02:ab:00:00:00:01");
        assert_eq!(Mac::parse(&m.to_string()).unwrap(), m);
        for (text, why) in [
            ("02:00:00:00:01", "want 6 hex octets"),
            ("02:00:00:00:00:0g", "octet \"0g\""),
            ("02:00:00:00:00:001", "octet \"001\""),
            ("01:00:5e:00:00:01", "multicast"),
            ("00:00:00:00:00:00", "all-zero"),
        ] {
            let e = Mac::parse(text).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{text:?}")) && e.contains(why),
                "{text}: {e}"
            );
        }
    }
}
