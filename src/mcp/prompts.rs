//! Prompts: declared once with their arguments, listed by `prompts/list`,
//! rendered by `prompts/get`.

use serde_json::{Map, Value, json};

use super::jsonrpc::RpcError;
use super::lists::paged;
use super::resources::Complete;
use crate::domain::{RunStatus, Series};
use crate::store::runs;
use crate::tools::analysis::Method;
use crate::tools::chart::{self, PlotArgs};
use crate::tools::{Ask, ToolContext};

pub struct Arg {
    pub name: &'static str,
    pub description: &'static str,
    pub required: bool,
    /// Where `completion/complete` finds its values.
    pub complete: Complete,
}

impl Arg {
    pub fn required(name: &'static str, description: &'static str) -> Arg {
        Arg {
            name,
            description,
            required: true,
            complete: Complete::Nothing,
        }
    }
    pub fn optional(name: &'static str, description: &'static str) -> Arg {
        Arg {
            name,
            description,
            required: false,
            complete: Complete::Nothing,
        }
    }
    pub fn series(description: &'static str) -> Arg {
        Arg {
            name: "series",
            description,
            required: true,
            complete: Complete::Series,
        }
    }
    /// Completes from a fixed list.
    pub fn completes(self, values: &'static [&'static str]) -> Arg {
        Arg {
            complete: Complete::Values(values),
            ..self
        }
    }
}

/// Renders the messages from the arguments (by name) and the client's
/// answers to the prompt's questions (in order).
type Render =
    Box<dyn Fn(&dyn Fn(&str) -> String, &[Value]) -> Result<Vec<Value>, RpcError> + Send + Sync>;

pub struct Prompt {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub arguments: Vec<Arg>,
    /// Questions for the client before rendering (usually none).
    pub asks: Vec<Ask>,
    pub render: Render,
    /// A chart shown above the text.
    pub figure: Option<Figure>,
}

/// The chart a prompt embeds, of its `series` argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Figure {
    /// The series with the anomalies its `method` argument finds.
    Anomalies,
    /// The series with the forecast of its latest completed model, if any.
    Forecast,
}

/// The messages that put `figure` before a prompt's text: the image and
/// its caption; a note instead when there is nothing to draw, so the
/// prompt still renders.
pub async fn figure(
    ctx: &ToolContext,
    figure: Figure,
    args: Option<&Map<String, Value>>,
) -> Result<Vec<Value>, RpcError> {
    let arg = |k: &str| {
        args.and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let series =
        Series::parse(arg("series").unwrap_or_default()).map_err(RpcError::invalid_params)?;
    let mut plot = PlotArgs::of(series.clone());
    match figure {
        Figure::Anomalies => {
            let method = arg("method").unwrap_or("zscore");
            plot.anomaly_method = Some(serde_json::from_value::<Method>(json!(method)).map_err(
                |_| {
                    RpcError::invalid_params(format!(
                        "method {method:?} is not one of zscore, iqr, mad"
                    ))
                },
            )?);
        }
        Figure::Forecast => {
            let s = series.clone();
            let models = ctx
                .db
                .run(move |conn| runs::list_models(conn, Some(&s), 50))
                .await
                .map_err(super::resources::db_failure)?;
            plot.model_id = models
                .iter()
                .find(|m| m.status == RunStatus::Completed)
                .map(|m| m.id);
        }
    }
    Ok(match chart::plot(ctx, plot).await {
        Ok(plot) => vec![
            json!({ "role": "user", "content": plot.image() }),
            user_text(format!("The chart above: {}", plot.caption)),
        ],
        Err(e) => vec![user_text(format!("(No chart of `{series}`: {e})"))],
    })
}

impl Prompt {
    /// A missing required argument → -32602.
    pub fn get(
        &self,
        args: Option<&Map<String, Value>>,
        answers: &[Value],
    ) -> Result<Value, RpcError> {
        let (prompt, name) = (self, self.name);
        let value = |k: &str| -> Option<String> {
            args.and_then(|a| a.get(k)).map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            })
        };
        for arg in prompt.arguments.iter().filter(|a| a.required) {
            if value(arg.name).is_none_or(|v| v.is_empty()) {
                return Err(RpcError::invalid_params(format!(
                    "prompt {name} needs argument {:?}: {}",
                    arg.name, arg.description
                )));
            }
        }
        let lookup = |k: &str| value(k).unwrap_or_default();
        let messages = (prompt.render)(&lookup, answers)?;
        Ok(json!({ "description": prompt.description, "messages": messages }))
    }
}

#[derive(Default)]
pub struct PromptRegistry {
    prompts: Vec<Prompt>,
}

impl PromptRegistry {
    pub fn add(&mut self, prompt: Prompt) {
        self.prompts.retain(|p| p.name != prompt.name);
        self.prompts.push(prompt);
    }

    pub fn find(&self, name: &str) -> Option<&Prompt> {
        self.prompts.iter().find(|p| p.name == name)
    }

    pub fn list(&self, cursor: Option<&str>, page: usize) -> Result<Value, RpcError> {
        let listings: Vec<Value> = self
            .prompts
            .iter()
            .map(|p| {
                let args: Vec<Value> = p
                    .arguments
                    .iter()
                    .map(|a| json!({ "name": a.name, "description": a.description, "required": a.required }))
                    .collect();
                json!({ "name": p.name, "title": p.title, "description": p.description, "arguments": args })
            })
            .collect();
        let refs: Vec<&Value> = listings.iter().collect();
        paged("prompts", &refs, cursor, page)
    }

    /// The prompt, or -32602 when unknown.
    pub fn known(&self, name: &str) -> Result<&Prompt, RpcError> {
        self.find(name)
            .ok_or_else(|| RpcError::invalid_params(format!("Unknown prompt: {name}")))
    }
}

pub fn user_text(text: String) -> Value {
    json!({ "role": "user", "content": { "type": "text", "text": text } })
}

/// The product's own prompts.
pub fn register(reg: &mut PromptRegistry) {
    reg.add(Prompt {
        name: "investigate_anomalies",
        title: "Investigate anomalies in a series",
        description: "Find points that deviate in a series, explain them, and judge whether they matter",
        arguments: vec![
            Arg::series("The series to investigate"),
            Arg::optional("method", "zscore, iqr or mad (default zscore)"),
        ],
        asks: Vec::new(),
        figure: Some(Figure::Anomalies),
        render: Box::new(|a, _| {
            let method = Some(a("method")).filter(|m| !m.is_empty()).unwrap_or_else(|| "zscore".into());
            Ok(vec![user_text(format!(
                "Investigate anomalies in the time series `{series}`.\n\
                 1. Call compute_statistics for `{series}` to learn its typical level and spread.\n\
                 2. Call detect_anomalies with method `{method}` and report each anomalous point \
                    with its time, value and score.\n\
                 3. Call analyze_trend to tell anomalies from a shift in level.\n\
                 4. Use plot_series (with anomaly_method or the analysis_id) to look at any stretch closer.\n\
                 Conclude with which anomalies look like real events, which look like data errors, \
                 and what to check next.",
                series = a("series"),
            ))])
        }),
    });
    reg.add(Prompt {
        name: "forecast_report",
        title: "Write a forecast report",
        description: "Train models on a series, compare them on a holdout, forecast, and write it up",
        arguments: vec![
            Arg::series("The series to forecast"),
            Arg::optional("horizon", "How many steps ahead (default 24)"),
        ],
        asks: Vec::new(),
        figure: Some(Figure::Forecast),
        render: Box::new(|a, _| {
            let horizon = Some(a("horizon")).filter(|h| !h.is_empty()).unwrap_or_else(|| "24".into());
            Ok(vec![user_text(format!(
                "Write a forecast report for the time series `{series}`.\n\
                 1. Call train_model on `{series}` with model_type linear, holt and ar, and compare \
                    their holdout MAE, RMSE and MAPE.\n\
                 2. Call forecast with the best model for {horizon} steps.\n\
                 3. Call plot_series with that model_id to see the forecast and its band after the data.\n\
                 4. Report the forecast, the chosen model and why, and how far to trust it.",
                series = a("series"),
            ))])
        }),
    });
}
