//! A series' tags: a JSON object, serialized once and stored with the
//! series in the catalog and with every point written.

use std::collections::BTreeMap;

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

    /// A label set of strings (a collector's labels); the keys come sorted.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Result<Tags, String> {
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
        Ok(Tags(serde_json::to_string(labels).unwrap_or_default()))
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
        let mut labels = BTreeMap::new();
        labels.insert("job".to_owned(), "node".to_owned());
        labels.insert("__name__".to_owned(), "up".to_owned());
        assert_eq!(
            Tags::from_labels(&labels).unwrap().as_str(),
            r#"{"__name__":"up","job":"node"}"#
        );
        labels.insert("bad".to_owned(), "a\0b".to_owned());
        assert!(Tags::from_labels(&labels).unwrap_err().contains("NUL"));
        let mut map = serde_json::Map::new();
        map.insert("k\0".into(), 1.into());
        assert!(Tags::from_object(map).is_err());
    }
}
