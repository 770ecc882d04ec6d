//! Where the `nftables` crate's schema falls short, patched in one place:
//! its `SetType` has no `verdict`, so the verdict maps (`cond_*`) are built
//! with a placeholder data type and rewritten to `"verdict"` here, while
//! the batch becomes the JSON handed to `nft`. (The crate's typed listing
//! cannot read those maps back either, so listings are parsed untyped in
//! [`super::installed`].) Pure.

use nftables::batch::Batch;
use serde_json::Value;

/// A batch as nft JSON (keys sorted, as `serde_json::Value` keeps them).
pub fn to_value(batch: Batch<'_>) -> Value {
    serde_json::to_value(batch.to_nftables()).unwrap_or(Value::Null)
}

/// A batch as nft JSON with the maps named in `verdict_maps` turned into
/// verdict maps.
pub fn with_verdict_maps(batch: Batch<'_>, verdict_maps: &[String]) -> Value {
    let mut value = to_value(batch);
    let Some(objects) = value.get_mut("nftables").and_then(Value::as_array_mut) else {
        return value;
    };
    for obj in objects {
        if let Some(map) = obj.pointer_mut("/add/map") {
            if map
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| verdict_maps.iter().any(|x| x == n))
            {
                map["map"] = Value::String("verdict".into());
            }
        }
    }
    value
}
