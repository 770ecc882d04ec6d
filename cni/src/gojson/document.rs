//! [`Document`]: a parsed JSON value that keeps its objects' keys in
//! document order, duplicates included, so decoding can apply Go's "last key
//! wins". It is what [`super::de`] deserializes from. It serializes back in
//! the same order, duplicates included, for tools that edit a file another
//! program owns (the installer rewriting a conflist).

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Number, Value};

use super::Error;

/// A JSON value whose objects are lists of `(key, value)` in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// `null` (Go: absent).
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number as written.
    Number(Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Document>),
    /// An object, its keys in the order written (duplicates kept).
    Object(Vec<(String, Document)>),
}

impl Document {
    /// Parses JSON bytes (syntax errors carry serde_json's line and column).
    pub fn parse(bytes: &[u8]) -> Result<Document, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::msg(e.to_string()))
    }

    /// Decodes `T` from this document with Go's rules.
    pub fn decode<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        T::deserialize(self)
    }

    /// True for a JSON object.
    pub fn is_object(&self) -> bool {
        matches!(self, Document::Object(_))
    }

    /// The JSON type's name, for messages (`an object`, `a string` …).
    pub fn kind(&self) -> &'static str {
        match self {
            Document::Null => "null",
            Document::Bool(_) => "a boolean",
            Document::Number(_) => "a number",
            Document::String(_) => "a string",
            Document::Array(_) => "an array",
            Document::Object(_) => "an object",
        }
    }
}

impl From<Value> for Document {
    fn from(v: Value) -> Document {
        match v {
            Value::Null => Document::Null,
            Value::Bool(b) => Document::Bool(b),
            Value::Number(n) => Document::Number(n),
            Value::String(s) => Document::String(s),
            Value::Array(items) => Document::Array(items.into_iter().map(Document::from).collect()),
            Value::Object(m) => {
                Document::Object(m.into_iter().map(|(k, v)| (k, Document::from(v))).collect())
            }
        }
    }
}

impl From<Document> for Value {
    /// Duplicate keys collapse to the last one, as Go's `map` decoding does.
    fn from(d: Document) -> Value {
        match d {
            Document::Null => Value::Null,
            Document::Bool(b) => Value::Bool(b),
            Document::Number(n) => Value::Number(n),
            Document::String(s) => Value::String(s),
            Document::Array(items) => Value::Array(items.into_iter().map(Value::from).collect()),
            Document::Object(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

impl Serialize for Document {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Document::Null => s.serialize_unit(),
            Document::Bool(b) => s.serialize_bool(*b),
            Document::Number(n) => n.serialize(s),
            Document::String(v) => s.serialize_str(v),
            Document::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Document::Object(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Document, D::Error> {
        d.deserialize_any(DocumentVisitor)
    }
}

struct DocumentVisitor;

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = Document;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Document, E> {
        Ok(Document::Null)
    }

    fn visit_none<E>(self) -> Result<Document, E> {
        Ok(Document::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Document, D::Error> {
        Document::deserialize(d)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Document, E> {
        Ok(Document::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Document, E> {
        Ok(Document::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Document, E> {
        Ok(Document::Number(n.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Document, E> {
        Number::from_f64(n)
            .map(Document::Number)
            .ok_or_else(|| E::custom(format!("{n} is not a JSON number")))
    }

    fn visit_str<E>(self, s: &str) -> Result<Document, E> {
        Ok(Document::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Document, E> {
        Ok(Document::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Document, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Document::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(entry) = map.next_entry::<String, Document>()? {
            entries.push(entry);
        }
        Ok(Document::Object(entries))
    }
}
