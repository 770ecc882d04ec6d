//! Editing JSON files other programs own, on `cni::gojson::Document` (the
//! workspace's order-keeping JSON value: objects are `(key, value)` lists in
//! document order, duplicates kept, serialized back the same way), plus the
//! key lookups Go's `encoding/json` does when libcni reads a conflist.
//!
//! Not `serde_json::Value`: without the `preserve_order` feature it sorts
//! keys, and enabling that feature would be unified into every crate of the
//! workspace and change the plugins' output. Owns no I/O.

pub use cni::gojson::Document as Json;

/// A JSON object as written: keys in order, duplicates kept.
pub type Object = Vec<(String, Json)>;

/// Accessors on a [`Json`] value.
pub trait JsonExt {
    fn as_object(&self) -> Option<&Object>;
    fn as_object_mut(&mut self) -> Option<&mut Object>;
    fn as_str(&self) -> Option<&str>;
    fn is_null(&self) -> bool;
}

impl JsonExt for Json {
    fn as_object(&self) -> Option<&Object> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }
    fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
    fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }
}

/// Go's key lookups on an [`Object`].
pub trait GoObject {
    /// A key as a Go `map[string]interface{}` sees it (libcni reads a
    /// conflist's top level this way): exact match, the last one wins.
    fn get_map_key(&self, key: &str) -> Option<&Json>;
    /// Index of the pair a Go struct field named `field` takes its value
    /// from: every key matching exactly or case-insensitively assigns the
    /// field in document order, so the last such key wins.
    fn struct_field_index(&self, field: &str) -> Option<usize>;
    /// The value a Go struct field named `field` gets; `null` counts as absent.
    fn get_struct_field(&self, field: &str) -> Option<&Json>;
    /// Sets `key`: replaces the value of the last exact match, else appends.
    fn set(&mut self, key: &str, value: Json);
}

impl GoObject for Object {
    fn get_map_key(&self, key: &str) -> Option<&Json> {
        self.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    fn struct_field_index(&self, field: &str) -> Option<usize> {
        // ASCII folding, as cni::gojson decodes every plugin's input.
        self.iter()
            .rposition(|(k, _)| k.eq_ignore_ascii_case(field))
    }
    fn get_struct_field(&self, field: &str) -> Option<&Json> {
        self.struct_field_index(field)
            .map(|i| &self[i].1)
            .filter(|v| !v.is_null())
    }
    fn set(&mut self, key: &str, value: Json) {
        match self.iter().rposition(|(k, _)| k == key) {
            Some(i) => self[i].1 = value,
            None => self.push((key.to_string(), value)),
        }
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
