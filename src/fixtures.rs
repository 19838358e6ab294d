//! The fixtures the official MCP conformance suite expects, registered only
//! with `MCP_CONFORMANCE_FIXTURES=1` (names and contents per
//! `shared/mcp/NOTES.md`), through the registries the product's own tools,
//! prompts and resources are in. The protocol core never names them.

use std::time::Duration;

use rocket::tokio::time::sleep;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::mcp::prompts::{Arg, Prompt, PromptRegistry};
use crate::mcp::resources::{Complete, Source, Template};
use crate::mcp::server::Catalog;
use crate::tools::{
    Annotations, Ask, Scopes, Spec, TaskSupport, ToolContext, ToolError, ToolRegistry,
};

/// A 1×1 PNG.
pub const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
/// Eight silent 16-bit samples at 8 kHz.
pub const WAV: &str =
    "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YRAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Deserialize, JsonSchema)]
pub struct PromptArg {
    /// The prompt to send to the client's model.
    prompt: String,
}

#[derive(Deserialize, JsonSchema)]
pub struct MessageArg {
    /// The question to ask the user.
    message: String,
}

fn text(t: &str) -> Value {
    json!({ "type": "text", "text": t })
}

fn spec(name: &'static str, description: &'static str) -> Spec {
    Spec {
        name,
        title: name,
        description,
        annotations: Annotations::READ_ONLY,
        scope: Scopes::READ,
    }
}

/// Every fixture, into the registries the product's own entries are in.
pub fn register(catalog: &mut Catalog) {
    register_tools(&mut catalog.tools);
    register_input_tools(&mut catalog.tools);
    register_task_tools(&mut catalog.tools);
    register_prompts(&mut catalog.prompts);
    catalog.resources.add(Box::new(TestResources));
}

fn register_tools(reg: &mut ToolRegistry) {
    reg.raw(
        spec("test_simple_text", "Returns a simple text response"),
        |_, _: NoArgs| async { Ok(vec![text("This is a simple text response for testing.")]) },
    );
    reg.raw(
        spec("test_image_content", "Returns an image"),
        |_, _: NoArgs| async {
            Ok(vec![
                json!({ "type": "image", "data": PNG, "mimeType": "image/png" }),
            ])
        },
    );
    reg.raw(
        spec("test_audio_content", "Returns audio"),
        |_, _: NoArgs| async {
            Ok(vec![
                json!({ "type": "audio", "data": WAV, "mimeType": "audio/wav" }),
            ])
        },
    );
    reg.raw(
        spec("test_embedded_resource", "Returns an embedded resource"),
        |_, _: NoArgs| async {
            Ok(vec![json!({ "type": "resource", "resource": {
            "uri": "test://embedded-resource", "mimeType": "text/plain",
            "text": "This is an embedded resource content." } })])
        },
    );
    reg.raw(
        spec(
            "test_multiple_content_types",
            "Returns text, image and resource",
        ),
        |_, _: NoArgs| async {
            Ok(vec![
                text("Multiple content types test:"),
                json!({ "type": "image", "data": PNG, "mimeType": "image/png" }),
                json!({ "type": "resource", "resource": {
                "uri": "test://mixed-content-resource", "mimeType": "application/json",
                "text": "{\"test\":\"data\",\"value\":123}" } }),
            ])
        },
    );
    reg.raw(
        spec("test_tool_with_logging", "Sends log messages while it runs"),
        |ctx: ToolContext, _: NoArgs| async move {
            for (i, message) in [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            ]
            .iter()
            .enumerate()
            {
                if i > 0 {
                    sleep(Duration::from_millis(50)).await;
                }
                ctx.client.log("info", "conformance", json!(message)).await;
            }
            Ok(vec![text("Tool with logging executed successfully")])
        },
    );
    reg.raw(
        spec("test_error_handling", "Always fails"),
        |_, _: NoArgs| async {
            Err::<Vec<Value>, _>(ToolError::Invalid(
                "This tool intentionally returns an error for testing".into(),
            ))
        },
    );
    reg.raw(
        spec("test_tool_with_progress", "Reports progress while it runs"),
        |ctx: ToolContext, _: NoArgs| async move {
            for (i, p) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                if i > 0 {
                    sleep(Duration::from_millis(50)).await;
                }
                ctx.client
                    .progress(p, Some(100.0), Some(&format!("Completed step {}", i + 1)))
                    .await;
            }
            Ok(vec![text("Tool with progress executed successfully")])
        },
    );
    reg.raw(
        spec("test_sampling", "Asks the client's model"),
        |ctx: ToolContext, a: PromptArg| async move {
            let params = json!({
                "messages": [{ "role": "user", "content": { "type": "text", "text": a.prompt } }],
                "maxTokens": 100,
            });
            let answer =
                ask_one(&ctx, Ask::new("sampling", "sampling/createMessage", params)).await?;
            let said = answer["content"]["text"].as_str().unwrap_or("(no text)");
            Ok(vec![text(&format!("LLM response: {said}"))])
        },
    );
    reg.raw(
        spec("test_elicitation", "Asks the user"),
        |ctx: ToolContext, a: MessageArg| async move {
            let schema = json!({ "type": "object", "properties": {
            "username": { "type": "string", "description": "User's response" },
            "email": { "type": "string", "description": "User's email address" } },
            "required": ["username", "email"] });
            elicit(&ctx, &a.message, schema).await
        },
    );
    reg.raw(spec("test_elicitation_sep1034_defaults", "Elicitation with defaults"), |ctx: ToolContext, _: NoArgs| async move {
        let schema = json!({ "type": "object", "properties": {
            "name": { "type": "string", "default": "John Doe" },
            "age": { "type": "integer", "default": 30 },
            "score": { "type": "number", "default": 95.5 },
            "status": { "type": "string", "enum": ["active", "inactive", "pending"], "default": "active" },
            "verified": { "type": "boolean", "default": true } } });
        elicit(&ctx, "Please review and update the form fields with defaults", schema).await
    });
    reg.raw(spec("test_elicitation_sep1330_enums", "Elicitation with enums"), |ctx: ToolContext, _: NoArgs| async move {
        let schema = json!({ "type": "object", "properties": {
            "untitledSingle": { "type": "string", "enum": ["option1", "option2", "option3"] },
            "titledSingle": { "type": "string", "oneOf": [
                { "const": "value1", "title": "First Option" },
                { "const": "value2", "title": "Second Option" },
                { "const": "value3", "title": "Third Option" }] },
            "legacyEnum": { "type": "string", "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"] },
            "untitledMulti": { "type": "array", "items": { "type": "string", "enum": ["option1", "option2", "option3"] } },
            "titledMulti": { "type": "array", "items": { "anyOf": [
                { "const": "value1", "title": "First Choice" },
                { "const": "value2", "title": "Second Choice" },
                { "const": "value3", "title": "Third Choice" }] } } } });
        elicit(&ctx, "Please select options from the enum fields", schema).await
    });
    // The suite's own schema, SEP-2106 keywords included, kept verbatim.
    let schema_2020 = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": { "address": { "$anchor": "addressDef", "type": "object", "properties": {
            "street": { "type": "string" }, "city": { "type": "string" } } } },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" },
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": { "properties": { "contactMethod": { "const": "phone" } }, "required": ["contactMethod"] },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false,
    });
    reg.raw_with_schema(
        spec(
            "json_schema_2020_12_tool",
            "Tool with a JSON Schema 2020-12 input schema",
        ),
        schema_2020,
        |_, _: Value| async { Ok(vec![text("JSON Schema 2020-12 tool executed")]) },
    );
    reg.raw(
        spec("test_reconnection", "Returns after a short delay"),
        |_, _: NoArgs| async {
            sleep(Duration::from_millis(100)).await;
            Ok(vec![text("Reconnection test completed")])
        },
    );
}

async fn ask_one(ctx: &ToolContext, ask: Ask) -> Result<Value, ToolError> {
    let mut answers = ctx.client.ask(vec![ask]).await?;
    Ok(answers.pop().unwrap_or_default())
}

fn elicitation(key: &str, message: &str, schema: Value) -> Ask {
    Ask::new(
        key,
        "elicitation/create",
        json!({ "message": message, "requestedSchema": schema }),
    )
}

fn sampling(key: &str, text: &str, max_tokens: u32) -> Ask {
    Ask::new(
        key,
        "sampling/createMessage",
        json!({ "messages": [{ "role": "user", "content": { "type": "text", "text": text } }],
                "maxTokens": max_tokens }),
    )
}

fn roots(key: &str) -> Ask {
    Ask::new(key, "roots/list", json!({}))
}

/// A one-string-field form.
fn form(field: &str) -> Value {
    json!({ "type": "object", "properties": { field: { "type": "string" } }, "required": [field] })
}

async fn elicit(ctx: &ToolContext, message: &str, schema: Value) -> Result<Vec<Value>, ToolError> {
    let answer = ask_one(ctx, elicitation("elicitation", message, schema)).await?;
    Ok(vec![text(&format!(
        "User response: action={}, content={}",
        answer["action"].as_str().unwrap_or("unknown"),
        answer["content"]
    ))])
}

fn register_prompts(reg: &mut PromptRegistry) {
    reg.add(Prompt {
        name: "test_simple_prompt",
        title: "Simple prompt",
        description: "A simple prompt without arguments",
        arguments: vec![],
        asks: Vec::new(),
        figure: None,
        render: Box::new(|_, _| Ok(vec![user(text("This is a simple prompt for testing."))])),
    });
    reg.add(Prompt {
        name: "test_prompt_with_arguments",
        title: "Prompt with arguments",
        description: "A prompt with two required arguments",
        arguments: vec![
            Arg::required("arg1", "First test argument").completes(COMPLETIONS),
            Arg::required("arg2", "Second test argument").completes(COMPLETIONS),
        ],
        asks: Vec::new(),
        figure: None,
        render: Box::new(|a, _| {
            Ok(vec![user(text(&format!(
                "Prompt with arguments: arg1='{}', arg2='{}'",
                a("arg1"),
                a("arg2")
            )))])
        }),
    });
    reg.add(Prompt {
        name: "test_prompt_with_embedded_resource",
        title: "Prompt with an embedded resource",
        description: "A prompt that embeds a resource",
        arguments: vec![Arg::required("resourceUri", "URI of the resource to embed")],
        asks: Vec::new(),
        figure: None,
        render: Box::new(|a, _| {
            Ok(vec![
                user(json!({ "type": "resource", "resource": {
                    "uri": a("resourceUri"), "mimeType": "text/plain",
                    "text": "Embedded resource content for testing." } })),
                user(text("Please process the embedded resource above.")),
            ])
        }),
    });
    reg.add(Prompt {
        name: "test_prompt_with_image",
        title: "Prompt with an image",
        description: "A prompt that includes an image",
        arguments: vec![],
        asks: Vec::new(),
        figure: None,
        render: Box::new(|_, _| {
            Ok(vec![
                user(json!({ "type": "image", "data": PNG, "mimeType": "image/png" })),
                user(text("Please analyze the image above.")),
            ])
        }),
    });
    reg.add(Prompt {
        name: "test_input_required_result_prompt",
        title: "Prompt that needs input",
        description: "Asks the user for context before it renders",
        arguments: vec![],
        asks: vec![elicitation(
            "user_context",
            "What context should the prompt use?",
            form("context"),
        )],
        figure: None,
        render: Box::new(|_, answers| {
            let context = answers
                .first()
                .and_then(|a| a["content"]["context"].as_str())
                .unwrap_or("(none)");
            Ok(vec![user(text(&format!("Use this context: {context}")))])
        }),
    });
}

const COMPLETIONS: &[&str] = &["testValue1", "testValue2", "test-value", "example"];

fn user(content: Value) -> Value {
    json!({ "role": "user", "content": content })
}

struct TestResources;

impl Source for TestResources {
    fn resources(&self) -> Vec<Value> {
        vec![
            json!({ "uri": "test://static-text", "name": "static-text", "title": "Static text", "mimeType": "text/plain" }),
            json!({ "uri": "test://static-binary", "name": "static-binary", "title": "Static binary", "mimeType": "image/png" }),
            json!({ "uri": "test://watched-resource", "name": "watched-resource", "title": "Watched resource", "mimeType": "text/plain" }),
        ]
    }

    fn templates(&self) -> Vec<Template> {
        vec![Template {
            listing: json!({ "uriTemplate": "test://template/{id}/data", "name": "template",
                             "title": "Template resource", "mimeType": "application/json" }),
            arguments: vec![("id", Complete::Values(COMPLETIONS))],
        }]
    }

    fn read(&self, uri: &str) -> Option<Value> {
        let content = match uri {
            "test://static-text" => {
                json!({ "uri": uri, "mimeType": "text/plain", "text": "This is the content of the static text resource." })
            }
            "test://static-binary" => json!({ "uri": uri, "mimeType": "image/png", "blob": PNG }),
            "test://watched-resource" => {
                json!({ "uri": uri, "mimeType": "text/plain", "text": "Watched resource content." })
            }
            _ => {
                let id = uri
                    .strip_prefix("test://template/")?
                    .strip_suffix("/data")?;
                let body =
                    json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
                json!({ "uri": uri, "mimeType": "application/json", "text": body.to_string() })
            }
        };
        Some(json!({ "contents": [content] }))
    }
}

/// The 2026 suite's multi-round fixtures (`input-required-result-*`,
/// `server-stateless`); under 2025 the same questions go out on the stream.
fn register_input_tools(reg: &mut ToolRegistry) {
    let name_form = || elicitation("user_name", "What is your name?", form("name"));
    reg.raw(
        spec(
            "test_input_required_result_elicitation",
            "Asks the user's name, then greets them",
        ),
        move |ctx: ToolContext, _: NoArgs| async move {
            let answer = ask_one(&ctx, name_form()).await?;
            let name = answer["content"]["name"].as_str().unwrap_or("stranger");
            Ok(vec![text(&format!("Hello, {name}!"))])
        },
    );
    reg.raw(
        spec(
            "test_input_required_result_sampling",
            "Asks the client's model a question",
        ),
        |ctx: ToolContext, _: NoArgs| async move {
            let answer = ask_one(
                &ctx,
                sampling("capital_question", "What is the capital of France?", 100),
            )
            .await?;
            let said = answer["content"]["text"].as_str().unwrap_or("(no text)");
            Ok(vec![text(&format!("The model said: {said}"))])
        },
    );
    reg.raw(
        spec(
            "test_input_required_result_list_roots",
            "Asks for the client's roots",
        ),
        |ctx: ToolContext, _: NoArgs| async move {
            let answer = ask_one(&ctx, roots("client_roots")).await?;
            let uris: Vec<&str> = answer["roots"]
                .as_array()
                .map(|r| r.iter().filter_map(|r| r["uri"].as_str()).collect())
                .unwrap_or_default();
            Ok(vec![text(&format!("Roots: {}", uris.join(", ")))])
        },
    );
    let confirm = || {
        elicitation(
            "confirm",
            "Please confirm",
            json!({ "type": "object", "properties": { "ok": { "type": "boolean" } }, "required": ["ok"] }),
        )
    };
    reg.raw(
        spec(
            "test_input_required_result_request_state",
            "Asks for a confirmation",
        ),
        move |ctx: ToolContext, _: NoArgs| async move {
            ask_one(&ctx, confirm()).await?;
            Ok(vec![text("Confirmed: state-ok")])
        },
    );
    reg.raw(
        spec(
            "test_input_required_result_tampered_state",
            "Asks for a confirmation",
        ),
        move |ctx: ToolContext, _: NoArgs| async move {
            ask_one(&ctx, confirm()).await?;
            Ok(vec![text("Confirmed")])
        },
    );
    reg.raw(
        spec(
            "test_input_required_result_multiple_inputs",
            "Asks three things at once",
        ),
        move |ctx: ToolContext, _: NoArgs| async move {
            let answers = ctx
                .client
                .ask(vec![
                    name_form(),
                    sampling("greeting", "Generate a greeting", 50),
                    roots("client_roots"),
                ])
                .await?;
            let name = answers[0]["content"]["name"].as_str().unwrap_or("stranger");
            Ok(vec![text(&format!("All three answered, {name}"))])
        },
    );
    reg.raw(
        spec(
            "test_input_required_result_multi_round",
            "Asks two things, one round each",
        ),
        |ctx: ToolContext, _: NoArgs| async move {
            let name = ask_one(
                &ctx,
                elicitation("step1", "Step 1: What is your name?", form("name")),
            )
            .await?;
            let color = ask_one(
                &ctx,
                elicitation(
                    "step2",
                    "Step 2: What is your favorite color?",
                    form("color"),
                ),
            )
            .await?;
            Ok(vec![text(&format!(
                "{} likes {}",
                name["content"]["name"].as_str().unwrap_or("?"),
                color["content"]["color"].as_str().unwrap_or("?")
            ))])
        },
    );
    reg.raw(
        spec(
            "test_input_required_result_capabilities",
            "Asks only what the client can answer",
        ),
        move |ctx: ToolContext, _: NoArgs| async move {
            let ask = if ctx.client.supports("elicitation") {
                name_form()
            } else {
                sampling("capital_question", "What is the capital of France?", 100)
            };
            ask_one(&ctx, ask).await?;
            Ok(vec![text("Answered")])
        },
    );
    reg.raw(
        spec(
            "test_missing_capability",
            "Needs sampling, whatever the client declared",
        ),
        |ctx: ToolContext, _: NoArgs| async move {
            ask_one(&ctx, sampling("question", "Say something", 10)).await?;
            Ok(vec![text("Sampled")])
        },
    );
    reg.raw(
        spec("test_streaming_elicitation", "Asks the user while it runs"),
        move |ctx: ToolContext, _: NoArgs| async move {
            let answer = ask_one(&ctx, name_form()).await?;
            Ok(vec![text(&format!(
                "Hello, {}!",
                answer["content"]["name"].as_str().unwrap_or("stranger")
            ))])
        },
    );
    reg.raw_with_schema(
        spec(
            "test_custom_header",
            "Takes a region that is repeated in a header",
        ),
        json!({ "type": "object",
                "properties": { "region": { "type": "string", "x-mcp-header": "Region" } },
                "required": ["region"] }),
        |_, args: Value| async move {
            Ok(vec![text(&format!(
                "Region: {}",
                args["region"].as_str().unwrap_or("?")
            ))])
        },
    );
    for (name, list) in [
        ("test_trigger_tool_change", "tools"),
        ("test_trigger_prompt_change", "prompts"),
    ] {
        reg.raw(
            spec(name, "Announces that a list changed"),
            move |ctx: ToolContext, _: NoArgs| async move {
                ctx.client.list_changed(list);
                Ok(vec![text(&format!("{list} list changed"))])
            },
        );
    }
    reg.raw(
        spec("test_logging_tool", "Logs while it runs"),
        |ctx: ToolContext, _: NoArgs| async move {
            ctx.client
                .log("info", "conformance", json!("logging tool ran"))
                .await;
            Ok(vec![text("Logged")])
        },
    );
}

/// A result that cannot be serialized: the server fails after the tool
/// ran, which a task reports as `failed` (not as a tool error).
#[derive(JsonSchema)]
pub struct Unserializable {}

impl serde::Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this result cannot be serialized, on purpose",
        ))
    }
}

/// No arguments needed; any are ignored.
#[derive(Deserialize, JsonSchema)]
pub struct AnyArgs {}

#[derive(Deserialize, JsonSchema)]
pub struct NameArg {
    /// Who to greet.
    name: String,
}

#[derive(Deserialize, JsonSchema)]
pub struct ComputeArgs {
    /// How long the computation takes.
    #[serde(default)]
    seconds: u64,
    /// A tag echoed in the result.
    #[serde(default)]
    label: Option<String>,
}

/// The Tasks extension scenarios' fixtures (`tasks-*`).
fn register_task_tools(reg: &mut ToolRegistry) {
    reg.raw(
        spec("greet", "Greets someone (never a task)"),
        |_, a: NameArg| async move { Ok(vec![text(&format!("Hello, {}!", a.name))]) },
    );
    reg.raw(
        spec("slow_compute", "Takes `seconds`, then answers"),
        |_, a: ComputeArgs| async move {
            sleep(Duration::from_secs(a.seconds.min(300))).await;
            Ok(vec![text(&format!(
                "computed {} in {} s",
                a.label.as_deref().unwrap_or("-"),
                a.seconds
            ))])
        },
    );
    reg.run_as_task("slow_compute", TaskSupport::Optional);
    reg.raw(
        spec("slow_sql", "Runs one SQL statement for `seconds`"),
        |ctx: ToolContext, a: ComputeArgs| async move {
            let seconds = a.seconds.min(300) as f64;
            ctx.db
                .run(move |c| crate::store::health::sleep(c, seconds))
                .await?;
            Ok(vec![text("the statement ran to its end")])
        },
    );
    reg.run_as_task("slow_sql", TaskSupport::Optional);
    reg.raw(
        spec("failing_job", "Fails as a tool after a second"),
        |_, _: AnyArgs| async {
            sleep(Duration::from_secs(1)).await;
            Err::<Vec<Value>, _>(ToolError::invalid("the job failed, as it always does"))
        },
    );
    reg.run_as_task("failing_job", TaskSupport::Required);
    reg.typed(
        spec(
            "protocol_error_job",
            "Fails inside the server (a protocol error, not a tool error)",
        ),
        |_, _: AnyArgs| async {
            sleep(Duration::from_millis(300)).await;
            Ok(crate::tools::Output {
                value: Unserializable {},
                text: String::new(),
            })
        },
    );
    reg.run_as_task("protocol_error_job", TaskSupport::Optional);
    // These ask once they are tasks (after the grace period), so the task
    // waits in input_required for tasks/update.
    let confirm = || {
        elicitation(
            "confirm",
            "Delete it?",
            json!({ "type": "object", "properties": { "confirm": { "type": "boolean" } } }),
        )
    };
    reg.raw(
        spec("confirm_delete", "Asks for confirmation as a task"),
        move |ctx: ToolContext, _: AnyArgs| async move {
            sleep(Duration::from_millis(300)).await;
            ask_one(&ctx, confirm()).await?;
            Ok(vec![text("Deleted")])
        },
    );
    reg.run_as_task("confirm_delete", TaskSupport::Optional);
    reg.raw(
        spec("multi_input", "Asks two things at once as a task"),
        |ctx: ToolContext, _: AnyArgs| async move {
            sleep(Duration::from_millis(300)).await;
            ctx.client
                .ask(vec![
                    elicitation("first", "First?", form("first")),
                    elicitation("second", "Second?", form("second")),
                ])
                .await?;
            Ok(vec![text("Both answered")])
        },
    );
    reg.run_as_task("multi_input", TaskSupport::Optional);
    reg.raw(
        spec("test_tool_with_task", "Asks a name, then runs as a task"),
        |ctx: ToolContext, _: AnyArgs| async move {
            let answer = ask_one(
                &ctx,
                elicitation("user_name", "What is your name?", form("name")),
            )
            .await?;
            let name = answer["content"]["name"].as_str().unwrap_or("stranger");
            Ok(vec![text(&format!("Hello, {name}!"))])
        },
    );
    reg.run_as_task("test_tool_with_task", TaskSupport::Required);
}
