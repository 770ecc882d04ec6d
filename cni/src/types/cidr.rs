//! `Cidr`: an address with its prefix length, host bits kept (`10.1.2.3/24`),
//! as results carry them. Unlike `ipnetwork`'s parser it requires the `/`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IP address with a prefix length, e.g. `10.22.0.5/16` or `fd00::5/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNetwork);

impl Cidr {
    /// An address with a prefix length; `None` when the prefix is too long for the family.
    pub fn new(ip: IpAddr, prefix: u8) -> Option<Cidr> {
        IpNetwork::new(ip, prefix).ok().map(Cidr)
    }
    /// The address itself (host bits kept).
    pub fn ip(&self) -> IpAddr {
        self.0.ip()
    }
    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.0.prefix()
    }
    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.0.network()
    }
    /// True for an IPv4 address.
    pub fn is_ipv4(&self) -> bool {
        self.0.is_ipv4()
    }
    /// True when `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }
    /// The network as an `ipnetwork` value (host bits kept).
    pub fn as_network(&self) -> IpNetwork {
        self.0
    }
}

/// The text is not `address/prefix`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR address: {0}")]
pub struct CidrError(pub String);

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, prefix) = s.split_once('/').ok_or_else(|| CidrError(s.to_string()))?;
        let ip: IpAddr = ip.parse().map_err(|_| CidrError(s.to_string()))?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CidrError(s.to_string()));
        }
        let prefix: u8 = prefix.parse().map_err(|_| CidrError(s.to_string()))?;
        Cidr::new(ip, prefix).ok_or_else(|| CidrError(s.to_string()))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.ip(), self.0.prefix())
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_host_bits_and_requires_prefix() {
        let c: Cidr = "10.1.2.3/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.1.2.3/24");
        assert_eq!(c.network().to_string(), "10.1.2.0");
        assert!("10.1.2.3".parse::<Cidr>().is_err());
        assert!("10.1.2.3/33".parse::<Cidr>().is_err());
        assert!("10.1.2.3/+3".parse::<Cidr>().is_err());
        assert_eq!(
            "fd00::5/64".parse::<Cidr>().unwrap().to_string(),
            "fd00::5/64"
        );
    }
}
