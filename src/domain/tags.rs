//! A series' tags: a JSON object, serialized once and stored with the
//! series in the catalog and with every point written.

/// The text of a JSON object that PostgreSQL's jsonb can hold (no NUL).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tags(String);

impl Tags {
    /// `{}`.
    pub fn empty() -> Tags {
        Tags("{}".to_owned())
    }

    /// Any JSON object (the MCP tool's `tags`).
    pub fn from_object(map: serde_json::Map<String, serde_json::Value>) -> Result<Tags, String> {
        let value = serde_json::Value::Object(map);
        if super::holds_nul(&value) {
            return Err(
                "tags must not contain the NUL character (\\u0000) in a key or a string".into(),
            );
        }
        Ok(Tags(value.to_string()))
    }

    /// A label set of strings (a collector's labels), sorted by name.
    pub fn from_labels(labels: &[(&str, &str)]) -> Result<Tags, String> {
        if let Some((k, v)) = labels
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            let what = if k.contains('\0') { k } else { v };
            return Err(format!(
                "label {} holds the NUL character, which PostgreSQL cannot store",
                super::echo(what)
            ));
        }
        /// Serialized as a JSON object in the given order.
        struct Pairs<'a>(&'a [(&'a str, &'a str)]);
        impl serde::Serialize for Pairs<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        Ok(Tags(
            serde_json::to_string(&Pairs(labels)).unwrap_or_default(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_serialize_sorted_and_nul_is_refused() {
        let labels = [("__name__", "up"), ("job", "node")];
        assert_eq!(
            Tags::from_labels(&labels).unwrap().as_str(),
            r#"{"__name__":"up","job":"node"}"#
        );
        assert!(
            Tags::from_labels(&[("bad", "a\0b")])
                .unwrap_err()
                .contains("NUL")
        );
        let mut map = serde_json::Map::new();
        map.insert("k\0".into(), 1.into());
        assert!(Tags::from_object(map).is_err());
    }
}
