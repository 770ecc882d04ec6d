//! Unit tests of Go's decoding rules as [`super`] implements them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::*;

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mapping {
    host_port: Option<i64>,
    #[serde(default)]
    protocol: String,
    #[serde(default, rename = "hostIP")]
    host_ip: Option<String>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    #[serde(default)]
    name: String,
    #[serde(default)]
    port_mappings: Vec<Mapping>,
    #[serde(default)]
    by_name: BTreeMap<String, Mapping>,
    #[serde(default)]
    one: Option<Mapping>,
    #[serde(default)]
    wrapped: Option<Wrapper>,
    #[serde(default)]
    raw: Option<Value>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
struct Wrapper(Mapping);

fn conf(text: &str) -> Conf {
    from_str(text).unwrap()
}

#[test]
fn go_marshalled_and_mixed_case_keys_match_fields() {
    let want = Mapping {
        host_port: Some(80),
        protocol: "tcp".into(),
        host_ip: Some("".into()),
    };
    for text in [
        r#"{"hostPort":80,"protocol":"tcp","hostIP":""}"#,
        r#"{"HostPort":80,"Protocol":"tcp","HostIP":""}"#,
        r#"{"hOsTpOrT":80,"PROTOCOL":"tcp","hostip":""}"#,
    ] {
        assert_eq!(from_str::<Mapping>(text).unwrap(), want, "{text}");
    }
}

#[test]
fn exact_match_wins_over_a_case_insensitive_one() {
    #[derive(Debug, Deserialize)]
    struct Two {
        #[serde(default)]
        mac: String,
        #[serde(rename = "MAC", default)]
        upper: String,
    }
    let t: Two = from_str(r#"{"MAC":"upper","mac":"lower"}"#).unwrap();
    assert_eq!((t.mac.as_str(), t.upper.as_str()), ("lower", "upper"));
    // No exact match: the first field in declaration order, as Go.
    let t: Two = from_str(r#"{"Mac":"folded"}"#).unwrap();
    assert_eq!((t.mac.as_str(), t.upper.as_str()), ("folded", ""));
    assert_eq!(field_for("Mac", &["mac", "MAC"]), Some("mac"));
    assert_eq!(field_for("MAC", &["mac", "MAC"]), Some("MAC"));
    assert_eq!(field_for("macs", &["mac"]), None);
}

#[test]
fn the_last_key_naming_a_field_wins_without_duplicate_errors() {
    let m: Mapping = from_str(r#"{"hostPort":1,"HostPort":2}"#).unwrap();
    assert_eq!(m.host_port, Some(2));
    let m: Mapping = from_str(r#"{"HostPort":2,"hostPort":1}"#).unwrap();
    assert_eq!(m.host_port, Some(1));
    let m: Mapping = from_str(r#"{"hostPort":1,"hostPort":3}"#).unwrap();
    assert_eq!(m.host_port, Some(3));
}

#[test]
fn null_is_absent() {
    let m: Mapping = from_str(r#"{"hostPort":null,"protocol":null,"hostIP":null}"#).unwrap();
    assert_eq!(m, Mapping::default());
    // A later null leaves the earlier value, as Go leaves the field alone.
    let m: Mapping = from_str(r#"{"protocol":"udp","Protocol":null}"#).unwrap();
    assert_eq!(m.protocol, "udp");
    let c = conf(r#"{"portMappings":null,"byName":null,"one":null,"raw":null}"#);
    assert_eq!(c, Conf::default());
}

#[test]
fn rules_apply_at_every_depth() {
    let c = conf(
        r#"{"Name":"n",
            "PortMappings":[{"HostPort":1},{"hostport":2}],
            "BYNAME":{"HostPort":{"HostPort":3}},
            "One":{"HOSTPORT":4},
            "Wrapped":{"HostPort":5},
            "Raw":{"Kept":"As Written"}}"#,
    );
    assert_eq!(c.name, "n");
    assert_eq!(
        c.port_mappings
            .iter()
            .map(|m| m.host_port)
            .collect::<Vec<_>>(),
        [Some(1), Some(2)]
    );
    // Map keys are exact (Go's map[string]T); their values are structs.
    assert_eq!(c.by_name["HostPort"].host_port, Some(3));
    assert_eq!(c.one.unwrap().host_port, Some(4));
    assert_eq!(c.wrapped.unwrap().0.host_port, Some(5));
    assert_eq!(c.raw, Some(json!({"Kept": "As Written"})));
}

#[test]
fn unknown_keys_are_ignored_unless_the_type_denies_them() {
    let m: Mapping = from_str(r#"{"HostPort":1,"Other":{"x":[1,2]},"other":null}"#).unwrap();
    assert_eq!(m.host_port, Some(1));
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        #[serde(default)]
        required: bool,
    }
    assert!(from_str::<Strict>(r#"{"Required":true}"#).unwrap().required);
    let e = from_str::<Strict>(r#"{"path":"/x"}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field `path`"), "{e}");
}

#[test]
fn enums_and_values_are_exact() {
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Proto {
        Tcp,
        Udp,
    }
    #[derive(Debug, PartialEq, Deserialize)]
    enum Shape {
        Point { x: i32 },
        Pair(i32, i32),
        Wrapped(Mapping),
    }
    assert_eq!(from_str::<Proto>(r#""udp""#).unwrap(), Proto::Udp);
    assert!(from_str::<Proto>(r#""UDP""#).is_err());
    assert_eq!(
        from_str::<Shape>(r#"{"Point":{"X":1}}"#).unwrap(),
        Shape::Point { x: 1 }
    );
    assert_eq!(
        from_str::<Shape>(r#"{"Pair":[1,2]}"#).unwrap(),
        Shape::Pair(1, 2)
    );
    let Shape::Wrapped(m) = from_str::<Shape>(r#"{"Wrapped":{"HostPort":7}}"#).unwrap() else {
        panic!("not Wrapped")
    };
    assert_eq!(m.host_port, Some(7));
}

#[test]
fn errors_name_the_path_as_written() {
    let e = from_str::<Conf>(r#"{"PortMappings":[{"HostPort":1},{"HostPort":"80"}]}"#).unwrap_err();
    assert_eq!(e.path(), "PortMappings[1].HostPort");
    assert_eq!(
        e.to_string(),
        r#"PortMappings[1].HostPort: invalid type: string "80", expected i64"#
    );
    let e = from_str::<Conf>(r#"{"byName":{"net.core.x":{"protocol":5}}}"#).unwrap_err();
    assert_eq!(e.path(), r#"byName["net.core.x"].protocol"#);
    let e = from_str::<Conf>(r#"{"name":"x""#).unwrap_err();
    assert!(e.path().is_empty());
    assert!(e.to_string().contains("line 1 column"), "{e}");
    let e = from_str::<Mapping>("[1]").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid type: sequence, expected struct Mapping"
    );
}

#[test]
fn documents_keep_order_and_duplicates() {
    let d = Document::parse(br#"{"b":1,"a":2,"b":3}"#).unwrap();
    let Document::Object(entries) = &d else {
        panic!("not an object")
    };
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["b", "a", "b"]);
    // A map sees every entry in order (tuning's duplicate sysctl check).
    #[derive(Debug)]
    struct Seen(Vec<String>);
    impl<'de> Deserialize<'de> for Seen {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Seen, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Seen;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a map")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Seen, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, _)) = m.next_entry::<String, Value>()? {
                        out.push(k);
                    }
                    Ok(Seen(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    let seen: Seen = d.clone().decode().unwrap();
    assert_eq!(seen.0, ["b", "a", "b"]);
    assert_eq!(Value::from(d), json!({"a": 2, "b": 3}));
}

#[test]
fn from_value_applies_the_same_rules() {
    let m: Mapping = from_value(json!({"HostPort": 8, "hostIP": null})).unwrap();
    assert_eq!(m.host_port, Some(8));
    assert_eq!(m.host_ip, None);
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
struct Open {
    #[serde(default)]
    name: String,
    #[serde(rename = "pciID", default, skip_serializing_if = "Option::is_none")]
    pci_id: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}
crate::go_fields!(Open, ["name", "pciID"]);

#[test]
fn flattened_structs_match_their_declared_fields() {
    let o: Open = from_str(r#"{"Name":"a","PCIID":"x","Other":null,"more":1}"#).unwrap();
    assert_eq!(o.name, "a");
    assert_eq!(o.pci_id.as_deref(), Some("x"));
    assert_eq!(
        Value::Object(o.extra.clone()),
        json!({"Other": null, "more": 1})
    );
    // Through any deserializer, and serialization is unchanged.
    let again: Open = serde_json::from_value(json!({"NAME": "a", "pciID": null})).unwrap();
    assert_eq!(again.name, "a");
    assert_eq!(again.pci_id, None);
    assert_eq!(
        serde_json::to_value(&o).unwrap(),
        json!({"name": "a", "pciID": "x", "Other": null, "more": 1})
    );
    let e = from_str::<Vec<Open>>(r#"[{"name":5}]"#).unwrap_err();
    assert!(e.to_string().starts_with("[0]: name: invalid type"), "{e}");
}
