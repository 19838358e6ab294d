//! Paged lists: opaque cursors over lists held in memory.

use serde_json::{Value, json};

use super::jsonrpc::RpcError;

/// Items on one page of a list.
pub const PAGE_SIZE: usize = 50;

/// Opaque cursors: the offset of the next page, prefixed so a cursor from
/// elsewhere is recognisably invalid.
pub fn paginate<'a>(
    items: &[&'a Value],
    cursor: Option<&str>,
    page: usize,
) -> Result<(Vec<&'a Value>, Option<String>), RpcError> {
    let start = match cursor {
        None => 0,
        Some(c) => c
            .strip_prefix("o:")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| RpcError::invalid_params(format!("invalid cursor {c:?}")))?,
    };
    let end = (start + page.max(1)).min(items.len());
    let next = (end < items.len()).then(|| format!("o:{end}"));
    Ok((items[start..end].to_vec(), next))
}

/// A list result: `{ <key>: items }`, plus `nextCursor` when there is more.
pub fn list_result<T: serde::Serialize>(key: &str, items: T, next: Option<String>) -> Value {
    let mut result = json!({ key: items });
    if let Some(next) = next {
        result["nextCursor"] = json!(next);
    }
    result
}

/// One page of a list held in memory, as a list result.
pub fn paged(
    key: &str,
    items: &[&Value],
    cursor: Option<&str>,
    page: usize,
) -> Result<Value, RpcError> {
    let (items, next) = paginate(items, cursor, page)?;
    Ok(list_result(key, items, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_walks_pages_and_rejects_bad_cursors() {
        let values: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let refs: Vec<&Value> = values.iter().collect();
        let (first, next) = paginate(&refs, None, 2).unwrap();
        assert_eq!(first, [&json!(0), &json!(1)]);
        let (second, next) = paginate(&refs, next.as_deref(), 2).unwrap();
        assert_eq!(second, [&json!(2), &json!(3)]);
        let (last, next) = paginate(&refs, next.as_deref(), 2).unwrap();
        assert_eq!((last, next), (vec![&json!(4)], None));
        for bad in ["x", "o:", "o:99", "o:-1"] {
            assert_eq!(
                paginate(&refs, Some(bad), 2).unwrap_err().code,
                crate::mcp::jsonrpc::INVALID_PARAMS
            );
        }
    }
}
