//! The deserializer: [`Document`] as a `serde::Deserializer` that applies
//! Go's key rules to every struct (`deserialize_struct` and struct enum
//! variants) and hands everything else over unchanged, wrapping every nested
//! value so the rules hold at any depth.

use serde::de::value::StringDeserializer;
use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, Error as _, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};

use super::document::Document;
use super::{field_for, Error};

/// Go's matching of an object's entries against a struct's `fields`:
/// returns `(key for the visitor, key as written, value)`, one entry per
/// named field (the last one written; `null` ones dropped), then the keys
/// that name no field, as written and in order.
pub(crate) fn resolve_fields(
    entries: Vec<(String, Document)>,
    fields: &'static [&'static str],
) -> Vec<(String, String, Document)> {
    let mut out: Vec<(String, String, Document)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        match field_for(&key, fields) {
            Some(field) => {
                let existing = out.iter().position(|(f, _, _)| f == field);
                if value == Document::Null {
                    // Go leaves the field alone; an earlier value stays.
                    continue;
                }
                match existing {
                    Some(i) => out[i] = (field.to_string(), key, value),
                    None => out.push((field.to_string(), key, value)),
                }
            }
            None => out.push((key.clone(), key, value)),
        }
    }
    out
}

impl Document {
    fn invalid_type<E: serde::de::Error>(&self, exp: &dyn serde::de::Expected) -> E {
        let unexp = match self {
            Document::Null => Unexpected::Unit,
            Document::Bool(b) => Unexpected::Bool(*b),
            Document::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => Unexpected::Unsigned(u),
                (_, Some(i), _) => Unexpected::Signed(i),
                (_, _, Some(f)) => Unexpected::Float(f),
                _ => Unexpected::Other("number"),
            },
            Document::String(s) => Unexpected::Str(s),
            Document::Array(_) => Unexpected::Seq,
            Document::Object(_) => Unexpected::Map,
        };
        E::invalid_type(unexp, exp)
    }
}

impl IntoDeserializer<'_, Error> for Document {
    type Deserializer = Document;
    fn into_deserializer(self) -> Document {
        self
    }
}

impl<'de> Deserializer<'de> for Document {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Document::Null => visitor.visit_unit(),
            Document::Bool(b) => visitor.visit_bool(b),
            Document::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Document::String(s) => visitor.visit_string(s),
            Document::Array(items) => visit_array(items, visitor),
            Document::Object(entries) => visit_object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), k, v))
                    .collect(),
                visitor,
            ),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Document::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Document::Object(entries) => visit_object(resolve_fields(entries, fields), visitor),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Document::String(variant) => visitor.visit_enum(Variant {
                name: variant,
                value: None,
            }),
            Document::Object(mut entries) if entries.len() == 1 => {
                let (name, value) = entries.remove(0);
                visitor.visit_enum(Variant {
                    name,
                    value: Some(value),
                })
            }
            other => Err(other.invalid_type(&"a string or an object with one key")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

fn visit_array<'de, V: Visitor<'de>>(items: Vec<Document>, visitor: V) -> Result<V::Value, Error> {
    let len = items.len();
    let mut seq = Seq {
        items: items.into_iter().enumerate(),
    };
    let value = visitor.visit_seq(&mut seq)?;
    match seq.items.len() {
        0 => Ok(value),
        left => Err(Error::invalid_length(
            len,
            &format!("{} elements", len - left).as_str(),
        )),
    }
}

fn visit_object<'de, V: Visitor<'de>>(
    entries: Vec<(String, String, Document)>,
    visitor: V,
) -> Result<V::Value, Error> {
    visitor.visit_map(Entries {
        entries: entries.into_iter(),
        value: None,
    })
}

struct Seq {
    items: std::iter::Enumerate<std::vec::IntoIter<Document>>,
}

impl<'de> SeqAccess<'de> for &mut Seq {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            None => Ok(None),
            Some((i, item)) => seed.deserialize(item).map(Some).map_err(|e| e.at_index(i)),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// `(key for the visitor, key as written, value)`.
struct Entries {
    entries: std::vec::IntoIter<(String, String, Document)>,
    value: Option<(String, Document)>,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, written, value)) = self.entries.next() else {
            return Ok(None);
        };
        let k: StringDeserializer<Error> = key.into_deserializer();
        let out = seed.deserialize(k).map_err(|e| e.at_key(&written))?;
        self.value = Some((written, value));
        Ok(Some(out))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (written, value) = self
            .value
            .take()
            .ok_or_else(|| Error::custom("a map value was asked for before its key"))?;
        seed.deserialize(value).map_err(|e| e.at_key(&written))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An enum variant: `"Name"` (unit) or `{"Name": value}`.
struct Variant {
    name: String,
    value: Option<Document>,
}

impl<'de> EnumAccess<'de> for Variant {
    type Error = Error;
    type Variant = VariantValue;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, VariantValue), Error> {
        let k: StringDeserializer<Error> = self.name.clone().into_deserializer();
        let v = seed.deserialize(k)?;
        Ok((
            v,
            VariantValue {
                name: self.name,
                value: self.value,
            },
        ))
    }
}

struct VariantValue {
    name: String,
    value: Option<Document>,
}

impl VariantValue {
    fn value(self) -> Result<(String, Document), Error> {
        match self.value {
            Some(v) => Ok((self.name, v)),
            None => Err(Error::invalid_type(
                Unexpected::UnitVariant,
                &"a variant with a value",
            )),
        }
    }
}

impl<'de> VariantAccess<'de> for VariantValue {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            None | Some(Document::Null) => Ok(()),
            Some(other) => Err(other.invalid_type(&"a unit variant")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        let (name, value) = self.value()?;
        seed.deserialize(value).map_err(|e| e.at_key(&name))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        let (name, value) = self.value()?;
        value.deserialize_seq(visitor).map_err(|e| e.at_key(&name))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (name, value) = self.value()?;
        value
            .deserialize_struct("", fields, visitor)
            .map_err(|e| e.at_key(&name))
    }
}
