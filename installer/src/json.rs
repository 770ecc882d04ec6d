//! An order-keeping JSON value for editing files other programs own, and the
//! key lookups Go's `encoding/json` does when libcni reads them.
//!
//! The workspace's `serde_json::Value` sorts object keys (no `preserve_order`
//! feature, on purpose: enabling it would be unified into every crate and
//! change the plugins' output). A conflist we rewrite should keep its keys
//! where their author put them, duplicates included, so this module keeps
//! objects as a list of pairs. It owns no I/O.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON value whose objects keep their keys in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Object),
}

/// A JSON object as written: keys in order, duplicates kept.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object(pub Vec<(String, Json)>);

impl Json {
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }
    pub fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }
    /// Converts a `serde_json::Value` (keys in its own, sorted order).
    pub fn from_value(v: serde_json::Value) -> Json {
        match v {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(b),
            serde_json::Value::Number(n) => Json::Number(n),
            serde_json::Value::String(s) => Json::String(s),
            serde_json::Value::Array(a) => {
                Json::Array(a.into_iter().map(Json::from_value).collect())
            }
            serde_json::Value::Object(m) => Json::Object(Object(
                m.into_iter()
                    .map(|(k, v)| (k, Json::from_value(v)))
                    .collect(),
            )),
        }
    }
}

/// Go's `encoding/json` matches struct fields case-insensitively with
/// Unicode simple folding; for ASCII field names that is ASCII case plus the
/// two non-ASCII letters that fold into ASCII (U+017F ſ → s, U+212A K → k).
fn go_fold_eq(key: &str, field: &str) -> bool {
    let folded = key.chars().map(|c| match c {
        '\u{17F}' => 's',
        '\u{212A}' => 'k',
        c => c.to_ascii_lowercase(),
    });
    folded.eq(field.chars().map(|c| c.to_ascii_lowercase()))
}

impl Object {
    /// A key as a Go `map[string]interface{}` sees it (libcni reads a
    /// conflist's top level this way): exact match, the last one wins.
    pub fn get_map_key(&self, key: &str) -> Option<&Json> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// Index of the pair a Go struct field named `field` takes its value
    /// from: every key matching exactly or case-insensitively assigns the
    /// field in document order, so the last such key wins.
    pub fn struct_field_index(&self, field: &str) -> Option<usize> {
        self.0.iter().rposition(|(k, _)| go_fold_eq(k, field))
    }
    /// The value a Go struct field named `field` gets; `null` counts as absent.
    pub fn get_struct_field(&self, field: &str) -> Option<&Json> {
        self.struct_field_index(field)
            .map(|i| &self.0[i].1)
            .filter(|v| !v.is_null())
    }
    /// Sets `key`: replaces the value of the last exact match, else appends.
    pub fn set(&mut self, key: &str, value: Json) {
        match self.0.iter().rposition(|(k, _)| k == key) {
            Some(i) => self.0[i].1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(v) => s.serialize_str(v),
            Json::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Json::Object(o) => {
                let mut map = s.serialize_map(Some(o.0.len()))?;
                for (k, v) in &o.0 {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(n)
            .map(Json::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Json::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            out.push((k, v));
        }
        Ok(Json::Object(Object(out)))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_duplicates_through_a_round_trip() {
        let text = r#"{"z":1,"a":{"y":null,"b":[true,1.5,-3]},"z":"again"}"#;
        let v: Json = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), text);
    }

    #[test]
    fn struct_fields_fold_case_and_the_last_match_wins() {
        let v: Json = serde_json::from_str(r#"{"type":"a","TYPE":"b","Name":"n"}"#).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(o.get_struct_field("type").and_then(Json::as_str), Some("b"));
        assert_eq!(o.get_map_key("type").and_then(Json::as_str), Some("a"));
        assert_eq!(o.get_map_key("name"), None);
        let kelvin: Json = serde_json::from_str("{\"masqAll\":1,\"\u{17F}nat\":false}").unwrap();
        assert!(kelvin
            .as_object()
            .unwrap()
            .get_struct_field("snat")
            .is_some());
    }

    #[test]
    fn null_is_absent_for_struct_fields() {
        let v: Json = serde_json::from_str(r#"{"capabilities":null}"#).unwrap();
        assert_eq!(
            v.as_object().unwrap().get_struct_field("capabilities"),
            None
        );
    }
}
