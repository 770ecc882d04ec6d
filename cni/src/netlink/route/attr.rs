//! Readers for the common attributes of a link message the kernel sent
//! (name, alias, MTU, MAC, kind, peer, root qdisc, link group). Pure: no socket, no
//! defaults chosen for the caller (a missing attribute is `None`).

use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};

fn attr<'m, T>(msg: &'m LinkMessage, f: impl Fn(&'m LinkAttribute) -> Option<T>) -> Option<T> {
    msg.attributes.iter().find_map(f)
}

/// The name of a link message, if it has one.
pub fn link_name(msg: &LinkMessage) -> Option<&str> {
    attr(msg, |a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// The alias (`IFLA_IFALIAS`) of a link message, if set.
pub fn link_alias(msg: &LinkMessage) -> Option<&str> {
    attr(msg, |a| match a {
        LinkAttribute::IfAlias(s) => Some(s.as_str()),
        _ => None,
    })
}

/// The link group (`IFLA_GROUP`; 0 is the default group), if present.
pub fn link_group(msg: &LinkMessage) -> Option<u32> {
    attr(msg, |a| match a {
        LinkAttribute::Group(g) => Some(*g),
        _ => None,
    })
}

/// The MTU of a link message, if present.
pub fn link_mtu(msg: &LinkMessage) -> Option<u32> {
    attr(msg, |a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// The hardware address of a link message as `aa:bb:…`, if it has one.
pub fn link_mac(msg: &LinkMessage) -> Option<String> {
    attr(msg, |a| match a {
        LinkAttribute::Address(b) if !b.is_empty() => Some(
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        _ => None,
    })
}

/// The kind (`veth`, `ifb`, …) of a link message, if it says.
pub fn link_kind(msg: &LinkMessage) -> Option<InfoKind> {
    attr(msg, |a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k.clone()),
            _ => None,
        }),
        _ => None,
    })
}

/// The kind in lowercase (`veth`, `ifb`), or `unknown kind`, for messages.
pub fn link_kind_name(msg: &LinkMessage) -> String {
    link_kind(msg).map_or("unknown kind".to_string(), |k| {
        format!("{k:?}").to_lowercase()
    })
}

/// The ifindex of the link's peer or lower device (`IFLA_LINK`), if any.
pub fn link_peer(msg: &LinkMessage) -> Option<u32> {
    attr(msg, |a| match a {
        LinkAttribute::Link(i) => Some(*i),
        _ => None,
    })
}

/// The kind of the link's root qdisc (`IFLA_QDISC`), when the kernel said.
pub fn link_qdisc(msg: &LinkMessage) -> Option<&str> {
    attr(msg, |a| match a {
        LinkAttribute::Qdisc(q) => Some(q.as_str()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_read_and_missing_ones_are_none() {
        let mut msg = LinkMessage::default();
        assert_eq!(link_name(&msg), None);
        assert_eq!(link_mtu(&msg), None);
        assert_eq!(link_kind_name(&msg), "unknown kind");
        msg.attributes = vec![
            LinkAttribute::IfName("veth0".into()),
            LinkAttribute::IfAlias("owner".into()),
            LinkAttribute::Mtu(1400),
            LinkAttribute::Address(vec![0x0a, 0x58, 0, 0, 0, 0xff]),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
            LinkAttribute::Link(7),
            LinkAttribute::Qdisc("noqueue".into()),
        ];
        assert_eq!(link_name(&msg), Some("veth0"));
        assert_eq!(link_alias(&msg), Some("owner"));
        assert_eq!(link_mtu(&msg), Some(1400));
        assert_eq!(link_mac(&msg).as_deref(), Some("0a:58:00:00:00:ff"));
        assert_eq!(link_kind(&msg), Some(InfoKind::Veth));
        assert_eq!(link_kind_name(&msg), "veth");
        assert_eq!(link_peer(&msg), Some(7));
        assert_eq!(link_qdisc(&msg), Some("noqueue"));
    }
}
