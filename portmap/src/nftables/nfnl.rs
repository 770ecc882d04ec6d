//! Our set elements over nfnetlink, without spawning `nft`: the hot path of
//! ADD and DEL (create, add, get and delete elements of our maps and sets
//! in one atomic batch) as `netlink-packet-netfilter` messages sent through
//! cni's netfilter socket ([`cni::netlink::netfilter`], which also closes it
//! in the background after the kernel's RCU grace period). The bytes the
//! crate does not model are in `raw.rs`. Tables, chains and rules
//! stay with `nft.rs` (the `nft` process).

use cni::netlink::netfilter::{BatchError, Nfnl as Socket};
use cni::netlink::NetlinkError;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_netfilter::nftables::{
    DataAttribute, ListAttribute, NfTablesMessage, SetElementAttribute, SetElementList,
    SetElementMessage,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};

use super::elements::{ElementData, SetElement, TABLE};
use super::raw::{decode_comment, encode_comment, encode_fields};

/// A failed nfnetlink exchange.
#[derive(Debug, thiserror::Error)]
pub enum NfnlError {
    /// The socket could not be opened or used.
    #[error("nfnetlink socket: {0}")]
    Socket(NetlinkError),
    /// The kernel refused the batch (nothing was committed).
    #[error("nf_tables: {0}")]
    Kernel(BatchError),
    /// The owner comment does not fit nft's udata.
    #[error("nf_tables: element {0} cannot be encoded")]
    Encode(String),
}

impl NfnlError {
    fn errno(&self) -> Option<i32> {
        match self {
            NfnlError::Kernel(e) => e.errno(),
            NfnlError::Socket(e) => e.errno(),
            NfnlError::Encode(_) => None,
        }
    }
    /// The table, a set or an element does not exist.
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(libc::ENOENT)
    }
    /// A `create`d element exists already.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }
}

/// A dumped element: its key bytes and owner comment.
pub type RawElement = (Vec<u8>, Option<String>);

/// One element operation of a batch.
#[derive(Debug, Clone, Copy)]
pub enum ElementOp<'a> {
    /// Adds the element with the owner comment; fails with EEXIST when it
    /// exists and the element is `exclusive` (nft's `create element`).
    Add(&'a SetElement, &'a str),
    /// Deletes the element (ENOENT when it is absent).
    Delete(&'a SetElement),
}

/// Our set-element session: an nfnetlink socket in the current netns.
#[derive(Debug)]
pub struct Nfnl {
    sock: Socket,
}

/// An element given as bytes: the layout's sentinels, whose keys no
/// [`SetElement`] field can express.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMember {
    /// The set or map.
    pub set: String,
    /// The key as nf_tables holds it.
    pub key: Vec<u8>,
    /// A map element's data.
    pub data: Option<DataAttribute>,
}

/// The element list message for one element of our table.
fn element_list(elem: &SetElement, attrs: Vec<SetElementAttribute>) -> SetElementMessage {
    raw_element_list(&elem.set, encode_fields(&elem.key), attrs)
}

fn raw_element_list(set: &str, key: Vec<u8>, attrs: Vec<SetElementAttribute>) -> SetElementMessage {
    let mut all = vec![SetElementAttribute::Key(DataAttribute::Value(key))];
    all.extend(attrs);
    SetElementMessage {
        attributes: vec![
            SetElementList::Table(TABLE.to_string()),
            SetElementList::Set(set.to_string()),
            SetElementList::Elements(vec![ListAttribute::Element(all)]),
        ],
    }
}

fn add_message(elem: &SetElement, comment: &str) -> Result<(NfTablesMessage, u16), NfnlError> {
    let udata = encode_comment(comment).ok_or_else(|| NfnlError::Encode(elem.to_string()))?;
    let mut attrs = Vec::with_capacity(2);
    if let ElementData::Fields(value) = &elem.data {
        attrs.push(SetElementAttribute::Data(DataAttribute::Value(
            encode_fields(value),
        )));
    }
    attrs.push(SetElementAttribute::UserData(udata));
    let excl = if elem.exclusive { NLM_F_EXCL } else { 0 };
    Ok((
        NfTablesMessage::NewSetElement(element_list(elem, attrs)),
        NLM_F_CREATE | excl,
    ))
}

/// One element as the kernel holds it (a GET's answer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    /// Its owner comment.
    pub comment: Option<String>,
    /// A map element's value bytes (`decode_fields` in `raw.rs` reads
    /// them back).
    pub data: Option<Vec<u8>>,
}

/// The element in a NEWSETELEM answer, if any.
fn installed_of(answer: &[NfTablesMessage]) -> Option<Installed> {
    answer.iter().find_map(|m| match m {
        NfTablesMessage::NewSetElement(msg) => msg.attributes.iter().find_map(|l| match l {
            SetElementList::Elements(list) => list.iter().find_map(|e| match e {
                ListAttribute::Element(attrs) => {
                    let mut out = Installed::default();
                    for a in attrs {
                        match a {
                            SetElementAttribute::UserData(u) => out.comment = decode_comment(u),
                            SetElementAttribute::Data(DataAttribute::Value(v)) => {
                                out.data = Some(v.clone());
                            }
                            _ => {}
                        }
                    }
                    Some(out)
                }
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

impl Nfnl {
    /// A socket in the calling thread's netns.
    pub fn open() -> Result<Nfnl, NfnlError> {
        Ok(Nfnl {
            sock: Socket::open().map_err(NfnlError::Socket)?,
        })
    }

    /// The socket, for other nfnetlink subsystems (conntrack) so that one
    /// socket is closed, in the background.
    pub fn socket(&self) -> &Socket {
        &self.sock
    }

    /// Applies the operations as one atomic nf_tables transaction (all or
    /// nothing). Element operations need no set type information: values
    /// are encoded from the plan's typed fields.
    pub fn transact(&mut self, ops: &[ElementOp<'_>]) -> Result<(), NfnlError> {
        let msgs = ops
            .iter()
            .map(|op| match op {
                ElementOp::Add(elem, comment) => add_message(elem, comment),
                ElementOp::Delete(elem) => Ok((
                    NfTablesMessage::DeleteSetElement(element_list(elem, Vec::new())),
                    0,
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.sock
            .nftables_batch(NetfilterProtoFamily::Inet, msgs)
            .map_err(NfnlError::Kernel)
    }

    /// These elements as installed (`None`: absent), fetched with one
    /// request per element in one send.
    pub fn lookup(&mut self, elems: &[&SetElement]) -> Result<Vec<Option<Installed>>, NfnlError> {
        if elems.is_empty() {
            return Ok(Vec::new());
        }
        let gets = elems
            .iter()
            .map(|e| NfTablesMessage::GetSetElement(element_list(e, Vec::new())))
            .collect();
        let answers = self
            .sock
            .nftables_get(NetfilterProtoFamily::Inet, gets)
            .map_err(NfnlError::Socket)?;
        Ok(answers
            .iter()
            .map(|a| a.as_deref().ok().and_then(installed_of))
            .collect())
    }

    /// The owner comments of these elements (`None`: absent or no
    /// comment), as [`Self::lookup`] fetches them.
    pub fn comments(&mut self, elems: &[&SetElement]) -> Result<Vec<Option<String>>, NfnlError> {
        Ok(self
            .lookup(elems)?
            .into_iter()
            .map(|i| i.and_then(|i| i.comment))
            .collect())
    }

    /// Whether each raw element exists (one GET each, one send).
    pub fn present(&mut self, members: &[RawMember]) -> Result<Vec<bool>, NfnlError> {
        let gets = members
            .iter()
            .map(|m| {
                NfTablesMessage::GetSetElement(raw_element_list(&m.set, m.key.clone(), Vec::new()))
            })
            .collect();
        let answers = self
            .sock
            .nftables_get(NetfilterProtoFamily::Inet, gets)
            .map_err(NfnlError::Socket)?;
        Ok(answers.iter().map(Result::is_ok).collect())
    }

    /// Adds the raw elements with `comment` in one transaction (`add`
    /// semantics: an existing identical element is fine).
    pub fn add_raw(&mut self, members: &[RawMember], comment: &str) -> Result<(), NfnlError> {
        let udata =
            encode_comment(comment).ok_or_else(|| NfnlError::Encode(comment.to_string()))?;
        let msgs = members
            .iter()
            .map(|m| {
                let mut attrs = Vec::with_capacity(2);
                if let Some(d) = &m.data {
                    attrs.push(SetElementAttribute::Data(d.clone()));
                }
                attrs.push(SetElementAttribute::UserData(udata.clone()));
                let msg = raw_element_list(&m.set, m.key.clone(), attrs);
                (NfTablesMessage::NewSetElement(msg), NLM_F_CREATE)
            })
            .collect();
        self.sock
            .nftables_batch(NetfilterProtoFamily::Inet, msgs)
            .map_err(NfnlError::Kernel)
    }

    /// Every element of our set `set`: its key bytes and owner comment
    /// (one dump; a missing table or set is an empty list).
    pub fn elements(&mut self, set: &str) -> Result<Vec<RawElement>, NfnlError> {
        let dump = NfTablesMessage::GetSetElement(SetElementMessage {
            attributes: vec![
                SetElementList::Table(TABLE.to_string()),
                SetElementList::Set(set.to_string()),
            ],
        });
        let msg =
            NetfilterMessage::new(NetfilterHeader::new(NetfilterProtoFamily::Inet, 0, 0), dump);
        let answers = match self.sock.request(msg, NLM_F_DUMP) {
            Ok(a) => a,
            Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(Vec::new()),
            Err(e) => return Err(NfnlError::Socket(e)),
        };
        let mut out = Vec::new();
        for m in answers {
            let NetfilterMessageInner::NfTables(NfTablesMessage::NewSetElement(msg)) = m.inner
            else {
                continue;
            };
            for list in msg.attributes {
                let SetElementList::Elements(elems) = list else {
                    continue;
                };
                for e in elems {
                    let ListAttribute::Element(attrs) = e else {
                        continue;
                    };
                    let mut key = None;
                    let mut comment = None;
                    for a in attrs {
                        match a {
                            SetElementAttribute::Key(DataAttribute::Value(v)) => key = Some(v),
                            SetElementAttribute::UserData(u) => comment = decode_comment(&u),
                            _ => {}
                        }
                    }
                    if let Some(key) = key {
                        out.push((key, comment));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Closes the socket without waiting for the kernel's RCU grace period
    /// ([`cni::netlink::netfilter`] explains why, and why it stays).
    pub fn close_in_background(self) {
        self.sock.close_in_background();
    }

    /// Closes the socket in the background after `work` (conntrack
    /// cleanup) ran on it there, off the critical path.
    pub fn close_in_background_after(self, work: impl FnOnce(&Socket)) {
        self.sock.close_in_background_after(work);
    }
}
