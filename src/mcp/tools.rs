//! The tool registry: a tool is declared once — name, description, argument
//! and result types (their JSON Schemas are derived), handler — and is then
//! listed by `tools/list` and run by `tools/call`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::jsonrpc::RpcError;
use super::paginate;
use super::peer::Peer;
use crate::cache::Cache;
use crate::db::Db;

/// What a handler gets besides its arguments.
#[derive(Clone)]
pub struct ToolContext {
    pub db: Db,
    pub cache: Arc<Cache>,
    pub peer: Peer,
    pub live: Arc<super::live::Live>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// A failure the caller can act on: reported as `isError: true`.
#[derive(Debug, Clone)]
pub struct ToolError(pub String);

impl<E: std::fmt::Display> From<E> for ToolError {
    fn from(e: E) -> Self {
        ToolError(e.to_string())
    }
}

/// A typed result plus the short text shown to people.
pub struct Output<O> {
    pub value: O,
    pub text: String,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>;
type Handler = Arc<dyn Fn(ToolContext, Value) -> BoxFuture + Send + Sync>;

pub struct Spec {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// `readOnlyHint`, `destructiveHint`, `idempotentHint`, `openWorldHint`.
    pub annotations: Value,
}

struct Tool {
    listing: Value,
    handler: Handler,
}

#[derive(Default)]
pub struct ToolRegistry {
    tools: BTreeMap<&'static str, Tool>,
    order: Vec<&'static str>,
}

pub fn schema_of<T: JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_else(|_| json!({ "type": "object" }))
}

fn error_result(message: String) -> Value {
    json!({ "content": [{ "type": "text", "text": message }], "isError": true })
}

fn parse_args<A: DeserializeOwned>(tool: &str, args: Value) -> Result<A, Value> {
    serde_json::from_value(args)
        .map_err(|e| error_result(format!("Invalid arguments for tool {tool}: {e}")))
}

/// The stored form of a handler: parse the arguments (failures become an
/// `isError` result), run, and render success with `render`.
fn wrap<A, T, F, Fut>(
    name: &'static str,
    handler: F,
    render: fn(T) -> Result<Value, RpcError>,
) -> Handler
where
    A: DeserializeOwned + Send + 'static,
    T: 'static,
    F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, ToolError>> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |ctx, args| {
        let handler = Arc::clone(&handler);
        Box::pin(async move {
            let args = match parse_args::<A>(name, args) {
                Ok(a) => a,
                Err(result) => return Ok(result),
            };
            match handler(ctx, args).await {
                Ok(out) => render(out),
                Err(ToolError(message)) => Ok(error_result(message)),
            }
        })
    })
}

impl ToolRegistry {
    fn insert(&mut self, spec: &Spec, input: Value, output: Option<Value>, handler: Handler) {
        let mut listing = json!({
            "name": spec.name,
            "title": spec.title,
            "description": spec.description,
            "inputSchema": input,
            "annotations": spec.annotations,
        });
        if let Some(o) = output {
            listing["outputSchema"] = o;
        }
        if self
            .tools
            .insert(spec.name, Tool { listing, handler })
            .is_none()
        {
            self.order.push(spec.name);
        }
    }

    /// A tool with typed arguments and a typed, schema-described result
    /// (`structuredContent` plus a text rendering).
    pub fn typed<A, O, F, Fut>(&mut self, spec: Spec, handler: F)
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        O: Serialize + JsonSchema + 'static,
        F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Output<O>, ToolError>> + Send + 'static,
    {
        let render = |out: Output<O>| {
            let structured = serde_json::to_value(&out.value).map_err(RpcError::internal)?;
            Ok(
                json!({ "content": [{ "type": "text", "text": out.text }], "structuredContent": structured }),
            )
        };
        let run = wrap(spec.name, handler, render);
        self.insert(&spec, schema_of::<A>(), Some(schema_of::<O>()), run);
    }

    /// A tool that returns content blocks itself (images, audio, resources)
    /// and has no output schema.
    pub fn raw<A, F, Fut>(&mut self, spec: Spec, handler: F)
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Value>, ToolError>> + Send + 'static,
    {
        self.raw_with_schema(spec, schema_of::<A>(), handler)
    }

    /// [`ToolRegistry::raw`] with an input schema given verbatim.
    pub fn raw_with_schema<A, F, Fut>(&mut self, spec: Spec, input: Value, handler: F)
    where
        A: DeserializeOwned + Send + 'static,
        F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Value>, ToolError>> + Send + 'static,
    {
        let run = wrap(spec.name, handler, |content: Vec<Value>| {
            Ok(json!({ "content": content }))
        });
        self.insert(&spec, input, None, run);
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.order.iter().copied()
    }

    pub fn list(&self, cursor: Option<&str>, page: usize) -> Result<Value, RpcError> {
        let listings: Vec<&Value> = self
            .order
            .iter()
            .filter_map(|n| self.tools.get(n))
            .map(|t| &t.listing)
            .collect();
        let (items, next) = paginate(&listings, cursor, page)?;
        let mut result = json!({ "tools": items });
        if let Some(next) = next {
            result["nextCursor"] = json!(next);
        }
        Ok(result)
    }

    /// Unknown tool → -32602; bad arguments and tool failures → `isError`.
    pub async fn call(
        &self,
        name: &str,
        args: Option<Value>,
        ctx: ToolContext,
    ) -> Result<Value, RpcError> {
        let tool = self
            .tools
            .get(name)
            .ok_or_else(|| RpcError::invalid_params(format!("Unknown tool: {name}")))?;
        let args = match args {
            None | Some(Value::Null) => json!({}),
            Some(a @ Value::Object(_)) => a,
            Some(_) => return Err(RpcError::invalid_params("arguments must be an object")),
        };
        (tool.handler)(ctx, args).await
    }
}
