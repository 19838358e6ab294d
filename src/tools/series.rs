//! `list_series`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError};
use crate::domain::Bounded;
use crate::store::series::{self, SeriesSummary};

pub const SPEC: Spec = Spec {
    name: "list_series",
    title: "List series",
    description: "The stored time series with their point counts and first/last timestamps",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::READ,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSeriesArgs {
    /// Only series whose name starts with this.
    #[serde(default)]
    pub prefix: String,
    /// At most this many series.
    #[serde(default)]
    pub limit: Bounded<1, 1000, 100>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListSeriesResult {
    pub series: Vec<SeriesSummary>,
    /// True when more series match than were returned.
    pub truncated: bool,
}

pub async fn list_series(
    ctx: ToolContext,
    args: ListSeriesArgs,
) -> Result<Output<ListSeriesResult>, ToolError> {
    let ListSeriesArgs { prefix, limit } = args;
    if prefix.contains('\0') {
        // No name holds it, and PostgreSQL text cannot.
        return Err(ToolError::invalid(
            "prefix must not contain the NUL character (\\u0000)",
        ));
    }
    let (summaries, truncated) = ctx
        .db
        .run(move |conn| {
            let mut names = series::names(conn, "", &prefix, limit.as_i64() + 1)?;
            let truncated = names.len() > limit.as_usize();
            names.truncate(limit.as_usize());
            Ok((series::summaries(conn, &names)?, truncated))
        })
        .await?;
    let text = if summaries.is_empty() {
        "No series stored yet; add points with ingest_timeseries.".to_owned()
    } else {
        summaries
            .iter()
            .map(|s| format!("{}: {} points", s.series, s.points))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Output {
        value: ListSeriesResult {
            series: summaries,
            truncated,
        },
        text,
    })
}
