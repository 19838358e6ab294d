//! Integers with bounds, stated once in the type: the same constants make
//! the `Deserialize` check and the schema's `minimum`/`maximum`/`default`.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An integer in `MIN..=MAX`. `DEFAULT` (when within the bounds) is what a
/// field marked `#[serde(default)]` takes when absent; a `DEFAULT` outside
/// the bounds means "no default" and using `Default` then fails to compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bounded<const MIN: u32, const MAX: u32, const DEFAULT: u32 = 0>(u32);

impl<const MIN: u32, const MAX: u32, const DEFAULT: u32> Bounded<MIN, MAX, DEFAULT> {
    /// The largest value it takes.
    pub const LARGEST: u32 = MAX;

    const HAS_DEFAULT: bool = MIN <= DEFAULT && DEFAULT <= MAX;

    pub fn new(n: u32) -> Result<Self, String> {
        if (MIN..=MAX).contains(&n) {
            Ok(Bounded(n))
        } else {
            Err(format!("must be between {MIN} and {MAX}, got {n}"))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn as_usize(self) -> usize {
        self.0 as usize
    }

    pub fn as_i64(self) -> i64 {
        i64::from(self.0)
    }
}

impl<const MIN: u32, const MAX: u32, const DEFAULT: u32> Default for Bounded<MIN, MAX, DEFAULT> {
    fn default() -> Self {
        const { assert!(Self::HAS_DEFAULT, "DEFAULT must lie within MIN..=MAX") };
        Bounded(DEFAULT)
    }
}

impl<'de, const MIN: u32, const MAX: u32, const DEFAULT: u32> Deserialize<'de>
    for Bounded<MIN, MAX, DEFAULT>
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through i64, so a negative number gets the same message as a large one.
        let n = i64::deserialize(d)?;
        let n = u32::try_from(n).map_err(|_| {
            serde::de::Error::custom(format!("must be between {MIN} and {MAX}, got {n}"))
        })?;
        Self::new(n).map_err(serde::de::Error::custom)
    }
}

impl<const MIN: u32, const MAX: u32, const DEFAULT: u32> Serialize for Bounded<MIN, MAX, DEFAULT> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<const MIN: u32, const MAX: u32, const DEFAULT: u32> JsonSchema for Bounded<MIN, MAX, DEFAULT> {
    fn schema_name() -> Cow<'static, str> {
        format!("Bounded_{MIN}_{MAX}").into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let mut schema = json_schema!({ "type": "integer", "minimum": MIN, "maximum": MAX });
        if Self::HAS_DEFAULT {
            schema.insert("default".into(), DEFAULT.into());
        }
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type Limit = Bounded<1, 500, 50>;

    #[test]
    fn bounds_hold_in_parsing_and_schema() {
        assert_eq!(
            serde_json::from_value::<Limit>(json!(500)).unwrap().get(),
            500
        );
        for bad in [json!(0), json!(501), json!(-1), json!(1.5), json!("7")] {
            assert!(
                serde_json::from_value::<Limit>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let message = serde_json::from_value::<Limit>(json!(-3))
            .unwrap_err()
            .to_string();
        assert!(message.contains("between 1 and 500, got -3"), "{message}");
        assert_eq!(Limit::default().get(), 50);
        let schema = serde_json::to_value(schemars::schema_for!(Limit)).unwrap();
        assert_eq!(
            (schema["minimum"].clone(), schema["maximum"].clone()),
            (json!(1), json!(500))
        );
        assert_eq!(schema["default"], json!(50));
        let no_default = serde_json::to_value(schemars::schema_for!(Bounded<1, 9>)).unwrap();
        assert!(no_default.get("default").is_none());
    }
}
