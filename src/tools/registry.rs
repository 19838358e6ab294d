//! The tool registry: a tool is declared once (a [`Spec`], a typed argument,
//! a typed result whose JSON Schemas are derived, and a named `async fn`),
//! then listed and called. It knows nothing of JSON-RPC or HTTP: the
//! transport reaches back to the client only through [`Client`], and maps a
//! [`CallError`] to its own error codes.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::auth::Scopes;
use crate::cache::Cache;
use crate::db::{Db, DbError};
use crate::ingest::{Ingest, Notify};
use crate::metrics::Metrics;

/// What a running call can send back to the client that made it, and the
/// notifications it can raise. The MCP transport implements it.
#[rocket::async_trait]
pub trait Client: Notify {
    /// The client cancelled this call.
    fn is_cancelled(&self) -> bool;
    /// A log message for the client, at or above its chosen level.
    async fn log(&self, level: &str, logger: &str, data: Value);
    /// Progress, when the client asked for it.
    async fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>);
    /// Whether the client declared a capability (`sampling`, `elicitation`,
    /// `roots`) for this request.
    fn supports(&self, capability: &str) -> bool;
    /// Asks the client (sampling, elicitation, roots) and returns the answers
    /// in order. Under MCP 2025 the questions go out on the call's stream
    /// and are waited for; under 2026 the call ends with
    /// [`ToolError::Pending`] and is made again with the answers.
    async fn ask(&self, asks: Vec<Ask>) -> Result<Vec<Value>, ToolError>;
    /// A list (`tools`, `prompts`, `resources`) changed: tell listeners.
    fn list_changed(&self, list: &str);
}

/// What a handler gets besides its arguments.
#[derive(Clone)]
pub struct ToolContext {
    pub db: Db,
    pub cache: Arc<Cache>,
    pub client: Arc<dyn Client>,
    pub metrics: Arc<Metrics>,
    /// The write path every ingest shares.
    pub ingest: Arc<Ingest>,
}

impl ToolContext {
    /// Cache-aside for an answer about one series. The key carries the
    /// series' count of SQL writes (the invalidation log's trigger bumps it):
    /// the server's own writes replace the series' cache token, but a psql
    /// UPDATE reaches only the database, and an answer from before it must
    /// not be served after it.
    pub async fn cached<T, E, F>(
        &self,
        series: &crate::domain::Series,
        rest: &str,
        ttl: Duration,
        compute: F,
    ) -> Result<(T, bool), E>
    where
        T: Serialize + DeserializeOwned,
        E: From<DbError>,
        F: Future<Output = Result<T, E>>,
    {
        let name = series.as_str().to_owned();
        let version = self
            .db
            .run(move |conn| crate::store::catalog::sql_writes(conn, &name))
            .await?;
        let rest = format!("{rest}:sql{version}");
        crate::cache::cache_aside(&self.cache, series.as_str(), &rest, ttl, compute).await
    }
}

/// A question for the client, under a key the answer comes back with.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub key: String,
    /// `elicitation/create`, `sampling/createMessage` or `roots/list`.
    pub method: &'static str,
    pub params: Value,
}

impl Ask {
    pub fn new(key: &str, method: &'static str, params: Value) -> Ask {
        Ask {
            key: key.to_owned(),
            method,
            params,
        }
    }

    /// The client capability the question needs.
    pub fn capability(&self) -> &'static str {
        match self.method {
            "sampling/createMessage" => "sampling",
            "roots/list" => "roots",
            _ => "elicitation",
        }
    }

    /// Whether `answer` has the shape of this question's result; anything
    /// else is asked again.
    pub fn accepts(&self, answer: &Value) -> bool {
        match self.method {
            "sampling/createMessage" => answer.get("content").is_some(),
            "roots/list" => answer.get("roots").is_some_and(Value::is_array),
            _ => answer.get("action").is_some_and(Value::is_string),
        }
    }
}

/// A call that cannot finish without the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    /// Answer these and make the call again.
    Input(Vec<Ask>),
    /// The call needs a capability the client did not declare.
    Capability(&'static str),
}

/// Why a tool call failed, reported as an `isError: true` result (except
/// [`ToolError::Pending`], which the transport turns into its own answer).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    /// The client must answer first (MCP 2026 multi-round requests).
    #[error("the call needs input from the client")]
    Pending(Pending),
    /// The caller can fix it; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// No database connection came within the checkout timeout.
    #[error("the server is busy: no database connection was free within {0:?}; retry in a moment")]
    Busy(Duration),
    /// The database cannot be reached (an outage or a restart): worth retrying.
    #[error("the database is unreachable right now; retry in a few seconds")]
    Unavailable,
    /// Our fault. The client gets the id; the cause is in the server log.
    #[error("internal error (error id {id}); the cause is logged on the server")]
    Internal { id: String },
}

impl ToolError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ToolError::Invalid(message.into())
    }

    /// Logs `cause` under a fresh id and returns the error the client sees.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ToolError::Internal {
            id: crate::logging::incident(cause),
        }
    }
}

const TOO_LARGE: &str = "the values are too large to aggregate in double precision (a sum or a sum \
     of squares passes 1.7e308); rescale the series, or leave the largest values out of the range";

impl From<DbError> for ToolError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Busy(wait) => ToolError::Busy(wait),
            // float8 sums and squares past 1.7e308: the data, not the server.
            DbError::Query(diesel::result::Error::DatabaseError(_, info))
                if info.message().starts_with("value out of range") =>
            {
                ToolError::invalid(TOO_LARGE)
            }
            DbError::TooLarge => ToolError::invalid(TOO_LARGE),
            DbError::Retained(why) => ToolError::Invalid(why),
            DbError::Query(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("statement timeout") =>
            {
                ToolError::invalid(
                    "the query ran past the statement timeout (DB_STATEMENT_TIMEOUT_SECS): \
                     narrow the window, use a bucket of an hour or more, or run the call as a \
                     task, where DB_TASK_STATEMENT_TIMEOUT_SECS applies",
                )
            }
            e if e.is_connection_lost() => {
                // Debug: an outage would otherwise log once per request; /health tells it.
                log::debug!("database unreachable: {e}");
                ToolError::Unavailable
            }
            other => ToolError::internal(other),
        }
    }
}

/// A typed result plus the short text shown to people.
#[derive(Debug)]
pub struct Output<O> {
    pub value: O,
    pub text: String,
}

/// A call that never reached a tool: the transport reports it as a
/// protocol error (invalid params), not as a tool result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("Unknown tool: {0}")]
    UnknownTool(String),
    #[error("arguments must be an object")]
    ArgumentsNotAnObject,
    /// The tool ran but its result could not be serialized.
    #[error("{0}")]
    Internal(String),
    /// The tool needs the client first.
    #[error("the call needs input from the client")]
    Pending(Pending),
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Value, CallError>> + Send>>;
/// Parses the arguments' JSON text (synchronously, borrowing it), then
/// returns the call's future.
type Handler = Arc<dyn Fn(ToolContext, &str) -> BoxFuture + Send + Sync>;

pub struct Spec {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub annotations: Annotations,
    /// What a token must grant to list and call it.
    pub scope: Scopes,
}

/// The behaviour hints of a tool; absent hints are left out.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

impl Annotations {
    /// Reads our own data only.
    pub const READ_ONLY: Annotations = Annotations {
        read_only_hint: Some(true),
        destructive_hint: None,
        idempotent_hint: None,
        open_world_hint: Some(false),
    };

    /// Adds rows (a run record, points) and destroys nothing.
    pub const fn additive(idempotent: bool) -> Annotations {
        Annotations {
            read_only_hint: Some(false),
            destructive_hint: Some(false),
            idempotent_hint: if idempotent { Some(true) } else { None },
            open_world_hint: Some(false),
        }
    }
}

/// Whether a tool may run as an MCP task (2026 Tasks extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSupport {
    /// A task when the client takes tasks and the call outlasts a moment.
    Optional,
    /// Always a task; refused to clients that do not take tasks.
    Required,
}

impl TaskSupport {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskSupport::Optional => "optional",
            TaskSupport::Required => "required",
        }
    }
}

struct Tool {
    scope: Scopes,
    listing: Value,
    /// The listing with `execution.taskSupport`, for clients that take tasks.
    task_listing: Option<(TaskSupport, Value)>,
    handler: Handler,
    /// Arguments the client repeats in an HTTP header (`x-mcp-header`):
    /// (property, header suffix).
    headers: Vec<(String, String)>,
}

/// The tools in their listing order.
#[derive(Default)]
pub struct ToolRegistry {
    tools: BTreeMap<&'static str, Tool>,
    order: Vec<&'static str>,
}

/// A self-contained JSON Schema (2020-12) of `T`: subschemas are inlined,
/// since several widely used MCP hosts cannot resolve `$ref`, and only
/// standard formats are kept.
pub fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .with_transform(StandardFormats)
        .into_generator();
    serde_json::to_value(generator.into_root_schema_for::<T>())
        .unwrap_or_else(|_| json!({ "type": "object" }))
}

/// Drops schemars' Rust-type formats (`uint64`, `double` …): validators warn
/// on formats they do not know, and `minimum` already states the bound.
#[derive(Clone)]
struct StandardFormats;

impl schemars::transform::Transform for StandardFormats {
    fn transform(&mut self, schema: &mut schemars::Schema) {
        const STANDARD: [&str; 19] = [
            "date-time",
            "date",
            "time",
            "duration",
            "email",
            "idn-email",
            "hostname",
            "idn-hostname",
            "ipv4",
            "ipv6",
            "uri",
            "uri-reference",
            "iri",
            "iri-reference",
            "uuid",
            "uri-template",
            "json-pointer",
            "relative-json-pointer",
            "regex",
        ];
        if schema
            .get("format")
            .and_then(Value::as_str)
            .is_some_and(|f| !STANDARD.contains(&f))
        {
            schema.remove("format");
        }
        schemars::transform::transform_subschemas(self, schema);
    }
}

/// A typed result: `blocks`, then the text, and the value as `structuredContent`.
fn structured<O: Serialize>(out: Output<O>, mut blocks: Vec<Value>) -> Result<Value, CallError> {
    let structured = serde_json::to_value(&out.value)
        .map_err(|e| CallError::Internal(format!("result not serializable: {e}")))?;
    blocks.push(json!({ "type": "text", "text": out.text }));
    Ok(json!({ "content": blocks, "structuredContent": structured }))
}

fn error_result(message: String) -> Value {
    json!({ "content": [{ "type": "text", "text": message }], "isError": true })
}

/// Arguments straight from their JSON text, with the path of the field at
/// fault in the message.
fn parse_args<A: DeserializeOwned>(tool: &str, args: &str) -> Result<A, Value> {
    let mut json = serde_json::Deserializer::from_str(args);
    serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!("{path}: ")
        };
        error_result(format!(
            "Invalid arguments for tool {tool}: {at}{}",
            e.into_inner()
        ))
    })
}

/// The stored form of a handler: parse the arguments (failures become an
/// `isError` result), run, and render success with `render`.
fn wrap<A, T, F, Fut>(
    name: &'static str,
    handler: F,
    render: fn(T) -> Result<Value, CallError>,
) -> Handler
where
    A: DeserializeOwned + Send + 'static,
    T: 'static,
    F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, ToolError>> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |ctx, args: &str| {
        let handler = Arc::clone(&handler);
        let args = parse_args::<A>(name, args);
        Box::pin(async move {
            let args = match args {
                Ok(a) => a,
                Err(result) => return Ok(result),
            };
            match handler(ctx, args).await {
                Ok(out) => render(out),
                Err(ToolError::Pending(p)) => Err(CallError::Pending(p)),
                Err(e) => Ok(error_result(e.to_string())),
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
        let headers = listing["inputSchema"]["properties"]
            .as_object()
            .map(|props| {
                props
                    .iter()
                    .filter_map(|(prop, schema)| {
                        let header = schema["x-mcp-header"].as_str()?;
                        Some((prop.clone(), header.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if self
            .tools
            .insert(
                spec.name,
                Tool {
                    scope: spec.scope,
                    listing,
                    task_listing: None,
                    handler,
                    headers,
                },
            )
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
        let run = wrap(spec.name, handler, |out| structured(out, Vec::new()));
        self.insert(&spec, schema_of::<A>(), Some(schema_of::<O>()), run);
    }

    /// [`ToolRegistry::typed`] whose result also carries content blocks (an
    /// image) before its text.
    pub fn typed_with_content<A, O, F, Fut>(&mut self, spec: Spec, handler: F)
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        O: Serialize + JsonSchema + 'static,
        F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(Output<O>, Vec<Value>), ToolError>> + Send + 'static,
    {
        let run = wrap(spec.name, handler, |(out, blocks)| structured(out, blocks));
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

    /// The arguments of `name` that the client repeats in HTTP headers, as
    /// (property, header suffix); empty for most tools.
    pub fn header_params(&self, name: &str) -> &[(String, String)] {
        self.tools.get(name).map_or(&[], |t| &t.headers)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.order.iter().copied()
    }

    /// Lets `name` run as a task (a no-op for an unknown name).
    pub fn run_as_task(&mut self, name: &str, support: TaskSupport) {
        if let Some(tool) = self.tools.get_mut(name) {
            let mut listing = tool.listing.clone();
            listing["execution"] = json!({ "taskSupport": support.as_str() });
            tool.task_listing = Some((support, listing));
        }
    }

    pub fn task_support(&self, name: &str) -> Option<TaskSupport> {
        self.tools
            .get(name)
            .and_then(|t| t.task_listing.as_ref())
            .map(|(s, _)| *s)
    }

    /// The scope calling `name` needs; `None` for an unknown tool.
    pub fn scope(&self, name: &str) -> Option<Scopes> {
        self.tools.get(name).map(|t| t.scope)
    }

    /// Drops the tools whose scope is not in `kept` (`MCP_READ_ONLY`).
    pub fn retain(&mut self, kept: Scopes) {
        self.tools.retain(|_, t| kept.contains(t.scope));
        let tools = &self.tools;
        self.order.retain(|n| tools.contains_key(n));
    }

    /// The `tools/list` entries a grant of `scopes` may call, in order;
    /// `with_tasks` shows which tools run as tasks (only the 2026 lane has
    /// the Tasks extension).
    pub fn listings(&self, with_tasks: bool, scopes: Scopes) -> Vec<&Value> {
        self.order
            .iter()
            .filter_map(|n| self.tools.get(n))
            .filter(|t| scopes.contains(t.scope))
            .map(|t| match &t.task_listing {
                Some((_, listing)) if with_tasks => listing,
                _ => &t.listing,
            })
            .collect()
    }

    /// Bad arguments and tool failures come back as `isError` results; only
    /// a call that never reached a tool is a [`CallError`].
    pub async fn call(
        &self,
        name: &str,
        args: Option<&RawValue>,
        ctx: ToolContext,
    ) -> Result<Value, CallError> {
        let tool = self
            .tools
            .get(name)
            .ok_or_else(|| CallError::UnknownTool(crate::domain::cut(name)))?;
        let args = match args.map(RawValue::get) {
            None | Some("null") => "{}",
            Some(a) if a.trim_start().starts_with('{') => a,
            Some(_) => return Err(CallError::ArgumentsNotAnObject),
        };
        // Once here for every tool and argument: no stored text can hold it.
        if let Some(at) = crate::domain::nul_in_json(args) {
            return Ok(error_result(format!(
                "Invalid arguments for tool {}: {at}: must not contain the NUL character (\\u0000)",
                crate::domain::cut(name)
            )));
        }
        (tool.handler)(ctx, args).await
    }
}
