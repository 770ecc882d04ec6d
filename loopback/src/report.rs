//! Pure decisions of the loopback plugin: which addresses `lo` may carry and
//! the result ADD reports for them. No kernel access, no I/O.

use cni::types::{Cidr, Interface, IpConfig};
use cni::CniResult;

/// The first address on `lo` that is not a loopback address, if any.
/// Loopback means 127.0.0.0/8 for IPv4 and ::1 for IPv6.
pub fn first_non_loopback(addresses: &[Cidr]) -> Option<Cidr> {
    addresses.iter().copied().find(|a| !a.ip().is_loopback())
}

/// The result for `lo` in `netns`: one interface and the first IPv4 and the
/// first IPv6 address present (normally 127.0.0.1/8 and ::1/128; a netns
/// with IPv6 disabled has only the first).
pub fn loopback_result(addresses: &[Cidr], netns: &str) -> CniResult {
    let mut result = CniResult::default();
    result.interfaces.push(Interface {
        name: "lo".into(),
        mac: Some("00:00:00:00:00:00".into()),
        sandbox: Some(netns.to_string()),
        ..Interface::default()
    });
    let first_v4 = addresses.iter().find(|a| a.is_ipv4());
    let first_v6 = addresses.iter().find(|a| !a.is_ipv4());
    for address in [first_v4, first_v6].into_iter().flatten() {
        result.ips.push(IpConfig {
            interface: Some(0),
            address: *address,
            gateway: None,
            extra: Default::default(),
        });
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn only_loopback_addresses_pass() {
        assert_eq!(
            first_non_loopback(&cidrs(&["127.0.0.1/8", "::1/128", "127.5.0.1/8"])),
            None
        );
        assert_eq!(
            first_non_loopback(&cidrs(&["127.0.0.1/8", "10.1.2.3/8", "fd00::1/64"])),
            Some("10.1.2.3/8".parse().unwrap())
        );
        assert_eq!(
            first_non_loopback(&cidrs(&["::2/128"])),
            Some("::2/128".parse().unwrap())
        );
    }

    #[test]
    fn result_has_lo_and_the_first_address_of_each_family() {
        let r = loopback_result(
            &cidrs(&["127.0.0.1/8", "127.0.0.2/8", "::1/128"]),
            "/run/netns/x",
        );
        assert_eq!(r.interfaces.len(), 1);
        assert_eq!(r.interfaces[0].name, "lo");
        assert_eq!(r.interfaces[0].sandbox.as_deref(), Some("/run/netns/x"));
        let ips: Vec<String> = r.ips.iter().map(|i| i.address.to_string()).collect();
        assert_eq!(ips, ["127.0.0.1/8", "::1/128"]);
        assert!(r.ips.iter().all(|i| i.interface == Some(0)));
        let v4_only = loopback_result(&cidrs(&["127.0.0.1/8"]), "/n");
        assert_eq!(v4_only.ips.len(), 1);
    }
}
