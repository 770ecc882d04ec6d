//! Go-compatible JSON decoding: every input a plugin reads (its stdin, the
//! `runtimeConfig`/`args`/`prevResult` inside it, debug and state files) is
//! decoded here with the rules of Go's `encoding/json`, because every runtime
//! that calls us is written in Go and writes what Go's encoder writes
//! (containerd marshals structs without JSON tags: `{"HostPort":80}`).
//!
//! The rules, applied to every struct at every depth (through `Option`,
//! sequences, map values, newtype structs and enum variants):
//! - an object key names the field whose (serde) name it equals; otherwise
//!   the first field whose name equals it **ASCII-case-insensitively** (Go
//!   folds Unicode simply: `K` (U+212A) also matches `k` there; we fold ASCII
//!   only, which is what runtimes send);
//! - when several keys name the same field, the **last** one in the document
//!   wins (Go overwrites; serde would say "duplicate field");
//! - a key whose value is `null` is **absent** (Go leaves the field alone), so
//!   `#[serde(default)]` applies;
//! - keys naming no field go to the struct's own visitor unchanged: derive
//!   ignores them (or reports them under `deny_unknown_fields`).
//!
//! Map keys are exact, as in Go (`map[string]T`); so are enum variant names
//! and every value. Objects are decoded in document order ([`Document`]
//! keeps it and keeps duplicate keys), so types such as tuning's sysctl map
//! can still see duplicates and be deliberately stricter than Go.
//!
//! Limits (the serde data model gives a deserializer nothing more to go on):
//! - A struct with a `#[serde(flatten)]` field is deserialized as a map, so
//!   serde never names its fields: such types declare them with
//!   [`go_fields!`](crate::go_fields), which matches keys with these same
//!   rules before the derived code runs.
//! - `untagged`/internally tagged enums buffer their input through
//!   `deserialize_any` and then see keys as written.
//! - Aliases are fields of their own here: a key and its alias both present
//!   is still serde's "duplicate field".
//! - [`from_value`] works on a `serde_json::Value`, whose objects have
//!   already merged exact duplicates and sorted their keys: "last wins"
//!   among keys differing only in case is then by key order, not document
//!   order. Inputs read from bytes ([`from_slice`]) keep document order.
//!
//! Errors name the path to the value that failed, with keys as written:
//! `runtimeConfig.portMappings[0].HostPort: invalid type: string "80",
//! expected i64`.

mod de;
mod document;
mod error;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use document::Document;
pub use error::Error;

/// Decodes `T` from JSON bytes with Go's rules (see the module docs).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    Document::parse(bytes)?.decode()
}

/// Decodes `T` from a JSON string with Go's rules.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    from_slice(text.as_bytes())
}

/// Decodes `T` from an already parsed value with Go's rules (object keys in
/// the value's order; see the module docs).
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    Document::from(value).decode()
}

/// The field `key` names among `fields`: the exact match, else the first
/// ASCII-case-insensitive one (Go's rule).
pub fn field_for<'f>(key: &str, fields: &[&'f str]) -> Option<&'f str> {
    fields
        .iter()
        .find(|f| **f == key)
        .or_else(|| fields.iter().find(|f| f.eq_ignore_ascii_case(key)))
        .copied()
}

/// `obj` with Go's matching applied against `fields` (the keys of a struct
/// that is read by hand rather than derived): keys naming a field are
/// renamed to it (the last one written wins, `null` ones are dropped); other
/// keys are kept as written.
pub fn match_keys(obj: Map<String, Value>, fields: &'static [&'static str]) -> Map<String, Value> {
    let entries = obj
        .into_iter()
        .map(|(k, v)| (k, Document::from(v)))
        .collect();
    de::resolve_fields(entries, fields)
        .into_iter()
        .map(|(field, _, v)| (field, Value::from(v)))
        .collect()
}

/// The value of struct field `field` in `obj`, read by hand with Go's
/// matching: the last key (in the map's order) naming it that is not
/// `null`.
pub fn get<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    obj.iter()
        .filter(|(k, v)| !v.is_null() && k.eq_ignore_ascii_case(field))
        .map(|(_, v)| v)
        .next_back()
}

/// Declares the serialized field names of a struct that has a
/// `#[serde(flatten)]` catch-all, so that it is decoded with Go's rules by
/// any deserializer. The struct derives `Serialize, Deserialize` with
/// `#[serde(remote = "Self")]` (which turns the derived code into inherent
/// functions); this macro supplies the trait impls around them:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// #[derive(Debug, Serialize, Deserialize)]
/// #[serde(remote = "Self")]
/// struct Link {
///     #[serde(default)]
///     name: String,
///     #[serde(flatten)]
///     extra: serde_json::Map<String, serde_json::Value>,
/// }
/// cni::go_fields!(Link, ["name"]);
///
/// let l: Link = serde_json::from_str(r#"{"Name":"eth0","Other":1}"#).unwrap();
/// assert_eq!(l.name, "eth0");
/// assert_eq!(l.extra["Other"], 1);
/// ```
///
/// Known keys are renamed to their field and `null` known keys dropped;
/// unknown keys reach the catch-all as written.
#[macro_export]
macro_rules! go_fields {
    ($ty:ty, [$($field:literal),* $(,)?]) => {
        impl $ty {
            /// The serialized names of this type's named fields (Go-style matching).
            pub const GO_FIELDS: &'static [&'static str] = &[$($field),*];
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                <$ty>::serialize(self, s)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                $crate::gojson::decode_flattened(d, <$ty>::GO_FIELDS, |doc| <$ty>::deserialize(doc))
            }
        }
    };
}

/// The body of [`go_fields!`]: reads any input as a [`Document`], matches
/// its keys against `fields` and hands the result to the derived code.
#[doc(hidden)]
pub fn decode_flattened<'de, D, T>(
    d: D,
    fields: &'static [&'static str],
    derived: impl FnOnce(Document) -> Result<T, Error>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let doc = <Document as serde::Deserialize>::deserialize(d)?;
    let doc = match doc {
        Document::Object(entries) => Document::Object(
            de::resolve_fields(entries, fields)
                .into_iter()
                .map(|(field, _, v)| (field, v))
                .collect(),
        ),
        other => other,
    };
    derived(doc).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests;
