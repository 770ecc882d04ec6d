//! The bytes `netlink-packet-netfilter` leaves to its users, in one place:
//! an element key or value as nf_tables registers hold it (the crate
//! carries it as an opaque `DataAttribute::Value`), and the owner comment
//! in libnftnl's `udata` TLV format (an opaque `UserData` to the crate), so
//! that `nft list` shows the comments we write over netlink. Pure.

use std::net::IpAddr;

use super::elements::Field;
use crate::config::Protocol;

/// `NFTNL_UDATA_SET_ELEM_COMMENT`: the udata type of an element comment.
const NFTNL_UDATA_SET_ELEM_COMMENT: u8 = 0;

/// A key or value as nf_tables holds it: a single field as is, a
/// concatenation with each field padded to 4 bytes; addresses and ports in
/// network order.
pub fn encode_fields(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    if let [Field::Port(p)] = fields {
        return p.to_be_bytes().to_vec();
    }
    if let [Field::Proto(p)] = fields {
        return vec![p.number()];
    }
    for f in fields {
        match f {
            Field::Addr(IpAddr::V4(ip)) => out.extend_from_slice(&ip.octets()),
            Field::Addr(IpAddr::V6(ip)) => out.extend_from_slice(&ip.octets()),
            Field::Proto(p) => out.extend_from_slice(&[p.number(), 0, 0, 0]),
            Field::Port(p) => {
                out.extend_from_slice(&p.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
        }
    }
    out
}

/// Bytes read back as fields of the same kinds as `like` (the inverse of
/// [`encode_fields`] for that shape); `None` when they do not fit it.
pub fn decode_fields(like: &[Field], bytes: &[u8]) -> Option<Vec<Field>> {
    let single = like.len() == 1;
    let mut out = Vec::with_capacity(like.len());
    let mut at = 0;
    for f in like {
        let (field, width) = match f {
            Field::Addr(IpAddr::V4(_)) => {
                let a: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
                (Field::Addr(IpAddr::from(a)), 4)
            }
            Field::Addr(IpAddr::V6(_)) => {
                let a: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
                (Field::Addr(IpAddr::from(a)), 16)
            }
            Field::Proto(_) => {
                let n = *bytes.get(at)?;
                let p = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
                    .into_iter()
                    .find(|p| p.number() == n)?;
                (Field::Proto(p), if single { 1 } else { 4 })
            }
            Field::Port(_) => {
                let p: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
                (
                    Field::Port(u16::from_be_bytes(p)),
                    if single { 2 } else { 4 },
                )
            }
        };
        out.push(field);
        at += width;
    }
    (at == bytes.len()).then_some(out)
}

/// A `hostip_*` map key read back: (host address, protocol number, port);
/// `None` when the bytes are not an `addr . proto . port` concatenation.
pub fn decode_hostip_key(v6: bool, bytes: &[u8]) -> Option<(IpAddr, u8, u16)> {
    let n = if v6 { 16 } else { 4 };
    if bytes.len() != n + 8 {
        return None;
    }
    let ip = if v6 {
        let a: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
        IpAddr::from(a)
    } else {
        let a: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        IpAddr::from(a)
    };
    let port = u16::from_be_bytes([bytes[n + 4], bytes[n + 5]]);
    Some((ip, bytes[n], port))
}

/// nft's udata TLV with the comment (NUL-terminated, as libnftnl writes
/// it); `None` when it is too long for one TLV.
pub fn encode_comment(comment: &str) -> Option<Vec<u8>> {
    let len = u8::try_from(comment.len() + 1).ok()?;
    let mut out = vec![NFTNL_UDATA_SET_ELEM_COMMENT, len];
    out.extend_from_slice(comment.as_bytes());
    out.push(0);
    Some(out)
}

/// The comment in an element's udata, if it has one.
pub fn decode_comment(udata: &[u8]) -> Option<String> {
    let mut i = 0;
    while i + 2 <= udata.len() {
        let (kind, len) = (udata[i], usize::from(udata[i + 1]));
        let value = udata.get(i + 2..i + 2 + len)?;
        if kind == NFTNL_UDATA_SET_ELEM_COMMENT {
            let text = value.strip_suffix(&[0]).unwrap_or(value);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        i += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_padded_like_nft_registers() {
        let key = [
            Field::Addr("10.0.0.5".parse().unwrap()),
            Field::Proto(Protocol::Udp),
            Field::Port(8080),
        ];
        assert_eq!(
            encode_fields(&key),
            vec![10, 0, 0, 5, 17, 0, 0, 0, 0x1f, 0x90, 0, 0]
        );
        assert_eq!(encode_fields(&[Field::Port(80)]), vec![0, 80]);
        let ip = "10.0.0.5".parse().unwrap();
        assert_eq!(
            decode_hostip_key(false, &encode_fields(&key)),
            Some((ip, 17, 8080))
        );
        assert_eq!(decode_hostip_key(true, &encode_fields(&key)), None);
        let v6: Field = Field::Addr("fd00::5".parse().unwrap());
        for like in [key.to_vec(), vec![Field::Port(80)], vec![v6], vec![key[0]]] {
            assert_eq!(decode_fields(&like, &encode_fields(&like)), Some(like));
        }
        assert_eq!(decode_fields(&[Field::Port(1)], &[0, 80, 0]), None);
        assert_eq!(decode_fields(&[v6], &[10, 0, 0, 5]), None);
    }

    #[test]
    fn comments_round_trip_through_udata() {
        let u = encode_comment("net/ctr/eth0").unwrap();
        assert_eq!(u[..2], [0, 13]);
        assert_eq!(decode_comment(&u).as_deref(), Some("net/ctr/eth0"));
        assert_eq!(decode_comment(&[1, 1, 0]), None);
        assert!(encode_comment(&"x".repeat(300)).is_none());
    }
}
