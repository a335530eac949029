//! The OpenAPI document against the server and the README: every documented
//! operation is routed (never an unrouted 404, never 405, never 500), and
//! every request body in the README's curl examples fits its schema.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use support::{assert_error_shape, assert_no_server_errors, Resp, TestServer};

/// The document, as served.
async fn document(server: &TestServer) -> Value {
    let response = server
        .send(Method::GET, &server.url("/api/openapi.json"), None, None)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    response.body.clone()
}

/// Every (path, method, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, Method, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                "head" => Method::HEAD,
                "options" => Method::OPTIONS,
                // `parameters`, `summary`... of the path item.
                _ => continue,
            };
            out.push((path.clone(), method, operation.clone()));
        }
    }
    out
}

/// `path` with each `{param}` replaced by a placeholder, plus any required
/// query parameters.
fn concrete(path: &str, operation: &Value) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(&rest[..start]);
        let name = &rest[start + 1..end];
        out.push_str(if name == "username" { "nobody" } else { "1" });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    let required: Vec<String> = operation["parameters"]
        .as_array()
        .map(|params| {
            params
                .iter()
                .filter(|p| p["in"] == "query" && p["required"] == true)
                .map(|p| format!("{}=1", p["name"].as_str().unwrap()))
                .collect()
        })
        .unwrap_or_default();
    if !required.is_empty() {
        out.push('?');
        out.push_str(&required.join("&"));
    }
    out
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_never_fails() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let version = doc["openapi"].as_str().unwrap();
    assert!(
        version.starts_with("3.1"),
        "OpenAPI {version}, expected 3.1"
    );
    assert_eq!(doc["info"]["title"], "Kith");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let user = server.user("prober").await;
    let mut ops = operations(&doc);
    assert!(ops.len() >= 20, "only {} operations documented", ops.len());
    // Logging out revokes the token every call uses: last.
    ops.sort_by_key(|(path, _, _)| path.ends_with("/auth/logout"));

    let mut problems = Vec::new();
    for (path, method, operation) in &ops {
        let url = server.url(&concrete(path, operation));
        let body = (operation["requestBody"]["required"] == true).then(|| json!({}));
        let response = server
            .send(method.clone(), &url, Some(&user.token), body.as_ref())
            .await;
        let status = response.status;
        let label = format!("{method} {path} -> {status} {}", response.text);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            problems.push(format!("not routed for this method: {label}"));
        }
        if status == StatusCode::NOT_FOUND && response.body["error"]["message"] == "no such route" {
            problems.push(format!("not routed: {label}"));
        }
        if status.is_server_error() {
            problems.push(format!("server error: {label}"));
        }
        if status.is_client_error() {
            assert_error_shape(&response.headers, &response.body, &label);
        }
        if status == StatusCode::NOT_FOUND {
            assert_eq!(response.body["error"]["code"], "not_found", "{label}");
        }
        // A documented operation documents what it answers.
        let documented = &operation["responses"];
        if documented.get(status.as_str()).is_none() && documented.get("default").is_none() {
            problems.push(format!("undocumented status: {label}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn operations_that_need_a_token_refuse_to_run_without_one() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    for (path, method, operation) in operations(&doc) {
        // `security: [{"bearer": []}]` needs a token; `[{}, {"bearer": []}]`
        // makes it optional.
        let secured = operation["security"].as_array().is_some_and(|s| {
            s.iter().any(|req| req.get("bearer").is_some())
                && !s
                    .iter()
                    .any(|req| req.as_object().is_some_and(Map::is_empty))
        });
        if !secured {
            continue;
        }
        let url = server.url(&concrete(&path, &operation));
        let body = (operation["requestBody"]["required"] == true).then(|| json!({}));
        let response = server.send(method.clone(), &url, None, body.as_ref()).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token: {}",
            response.text
        );
        assert_eq!(response.body["error"]["code"], "unauthenticated");
        assert!(
            operation["responses"].get("401").is_some(),
            "{method} {path} does not document its 401"
        );
    }
}

/// Whether `schema` (following `$ref`s; for `oneOf`/`anyOf`, every option
/// but `null`; for an array, its items) is a decimal id: a string with the
/// pattern `^[0-9]+$`.
fn is_decimal_id(doc: &Value, schema: &Value) -> bool {
    let schema = resolve(doc, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            return options
                .iter()
                .filter(|o| resolve(doc, o)["type"] != "null")
                .all(|o| is_decimal_id(doc, o));
        }
    }
    if let Some(items) = schema.get("items") {
        return is_decimal_id(doc, items);
    }
    let string = schema["type"] == "string"
        || schema["type"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("string")));
    string && schema["pattern"] == "^[0-9]+$"
}

#[tokio::test]
async fn every_operation_documents_its_refusals_and_decimal_ids() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let mut problems = Vec::new();
    for (path, method, operation) in operations(&doc) {
        let label = format!("{method} {path}");
        let mut needed: Vec<(&str, String)> = Vec::new();
        if operation.get("requestBody").is_some() {
            for status in ["400", "413", "415"] {
                needed.push((status, "a JSON body".into()));
            }
        }
        let bearer = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        if bearer {
            needed.push(("401", "a bearer token".into()));
        }
        for param in operation["parameters"].as_array().into_iter().flatten() {
            let name = param["name"].as_str().unwrap();
            needed.push(("400", format!("the parameter `{name}`")));
            if name.ends_with("_id") && !is_decimal_id(&doc, &param["schema"]) {
                problems.push(format!("{label}: `{name}` is not a decimal id"));
            }
            if name == "limit" {
                let schema = resolve(&doc, &param["schema"]);
                if schema["minimum"] != 1 || !schema["maximum"].is_u64() {
                    problems.push(format!("{label}: `limit` is not 1 to a maximum: {schema}"));
                }
            }
        }
        for (status, why) in needed {
            if operation["responses"].get(status).is_none() {
                problems.push(format!("{label}: {status} not documented ({why})"));
            }
        }
    }
    // Every id field of every schema (`client_id` is the client's own text).
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        for (field, field_schema) in schema["properties"].as_object().into_iter().flatten() {
            let id = field == "id" || field.ends_with("_id") || field.ends_with("_ids");
            if id && field != "client_id" && !is_decimal_id(&doc, field_schema) {
                problems.push(format!(
                    "{name}.{field} is not a decimal id: {field_schema}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `path` with `{param}`s replaced: `*_id`s by `id`, others by `nobody`.
fn with_params(path: &str, id: &str) -> String {
    path.split('/')
        .map(|part| match part.strip_prefix('{') {
            Some(name) if name.ends_with("_id}") => id,
            Some(_) => "nobody",
            None => part,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_refusal_the_server_answers_is_documented() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let user = server.user("prober").await;
    let mut ops = operations(&doc);
    // Logging out revokes the token every call uses: last.
    ops.sort_by_key(|(path, _, _)| path.ends_with("/auth/logout"));
    let too_large = format!("{{\"x\":\"{}\"}}", "x".repeat(70 * 1024));
    let mut problems = Vec::new();
    // One pooled client for every request: a refusal must leave its
    // connection usable.
    for (path, method, operation) in &ops {
        let ids = with_params(path, "1");
        let mut refusals: Vec<(String, &str, String, &str, u16)> = Vec::new();
        let multipart = &operation["requestBody"]["content"]["multipart/form-data"];
        if !multipart.is_null() {
            // The upload: its own body limit (10 MiB by default).
            let form = "multipart/form-data; boundary=x";
            let over = "x".repeat(10 * 1024 * 1024 + 1);
            refusals.push((ids.clone(), &user.token, "garbage".into(), form, 400));
            refusals.push((
                ids.clone(),
                &user.token,
                "{}".into(),
                "application/json",
                415,
            ));
            refusals.push((ids.clone(), &user.token, over, form, 413));
        } else if operation.get("requestBody").is_some() {
            let json = "application/json";
            refusals.push((ids.clone(), &user.token, "[]".into(), json, 400));
            refusals.push((ids.clone(), &user.token, "\"x\"".into(), json, 400));
            refusals.push((ids.clone(), &user.token, "{}".into(), "text/plain", 415));
            refusals.push((ids.clone(), &user.token, too_large.clone(), json, 413));
        }
        let bearer = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        if bearer {
            refusals.push((
                ids.clone(),
                "not-a-token",
                "{}".into(),
                "application/json",
                401,
            ));
        }
        if path.contains("_id}") {
            let bad = with_params(path, "x");
            refusals.push((bad, &user.token, "{}".into(), "application/json", 400));
        }
        let limit = operation["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "limit"));
        if limit {
            let bad = format!("{ids}?limit=x");
            refusals.push((bad, &user.token, "{}".into(), "application/json", 400));
        }
        for (url, token, body, content_type, status) in refusals {
            let response = server
                .http
                .request(method.clone(), server.url(&url))
                .bearer_auth(token)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await;
            let label = format!("{method} {url} (expecting {status})");
            let response = match response {
                Ok(response) => Resp::read(response).await,
                Err(e) => {
                    problems.push(format!("{label}: {e}"));
                    continue;
                }
            };
            let got = response.status;
            if got.as_u16() != status {
                problems.push(format!("{label}: {got} {}", response.text));
            } else {
                assert_error_shape(&response.headers, &response.body, &label);
            }
            if operation["responses"].get(got.as_str()).is_none() {
                problems.push(format!("{label}: undocumented {got}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// The README's curl examples.

/// One curl request of the README.
#[derive(Debug)]
struct Curl {
    method: String,
    /// The path, from `/api/v1` on, with shell variables left as `$NAME`.
    path: String,
    /// The `-d` body with shell variables replaced by `1`.
    body: Option<Value>,
    line: String,
}

/// A shell word: its text, and whether it is an operator (`|`, `)`, `;`,
/// `&`), which ends a curl command.
#[derive(Debug)]
enum Word {
    Text(String),
    Operator,
}

/// Splits `line` into shell words: single quotes are literal; double quotes
/// and bare words unescape `\"` and `\\`; `$VAR` and `${VAR}` stay as written.
fn words(line: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    let mut current: Option<String> = None;
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(word) = current.take() {
                    out.push(Word::Text(word));
                }
            }
            '|' | ';' | '&' | ')' | '(' => {
                if let Some(word) = current.take() {
                    out.push(Word::Text(word));
                }
                out.push(Word::Operator);
            }
            '\'' => {
                let word = current.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                let word = current.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(next) = chars.next() {
                                if !matches!(next, '"' | '\\' | '$' | '`') {
                                    word.push('\\');
                                }
                                word.push(next);
                            }
                        }
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                if let Some(next) = chars.next() {
                    current.get_or_insert_with(String::new).push(next);
                }
            }
            '$' if chars.peek() == Some(&'(') => {
                // `$(curl ...)`: the curl starts inside.
                chars.next();
                if let Some(word) = current.take() {
                    out.push(Word::Text(word));
                }
                out.push(Word::Operator);
            }
            c => current.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(word) = current {
        out.push(Word::Text(word));
    }
    out
}

/// Replaces `$NAME` and `${NAME}` with `with(NAME)`.
fn substitute(text: &str, with: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').unwrap();
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            out.push('$');
        } else {
            out.push_str(&with(name));
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// The README's ```bash blocks.
fn bash_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```bash") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The curl requests of a bash block (continuation lines joined).
fn curls(block: &str) -> Vec<Curl> {
    let joined = block.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let words = words(line);
        let mut i = 0;
        while i < words.len() {
            if !matches!(&words[i], Word::Text(w) if w == "curl") {
                i += 1;
                continue;
            }
            let mut method = None;
            let mut url = None;
            let mut data = None;
            i += 1;
            while let Some(Word::Text(word)) = words.get(i) {
                match word.as_str() {
                    "-X" | "--request" => {
                        if let Some(Word::Text(m)) = words.get(i + 1) {
                            method = Some(m.clone());
                        }
                        i += 1;
                    }
                    "-d" | "--data" | "--data-raw" | "--json" => {
                        if let Some(Word::Text(d)) = words.get(i + 1) {
                            data = Some(d.clone());
                        }
                        i += 1;
                    }
                    "-H" | "--header" | "-o" | "-w" | "-u" => i += 1,
                    w if w.starts_with("http")
                        || w.starts_with("$API")
                        || w.starts_with("${API}") =>
                    {
                        url = Some(w.to_owned());
                    }
                    _ => {}
                }
                i += 1;
            }
            let url = url.unwrap_or_else(|| panic!("a curl without a URL: {line}"));
            let url = substitute(&url, |name| {
                if name == "API" {
                    "http://127.0.0.1:8080/api/v1".to_owned()
                } else {
                    format!("${name}")
                }
            });
            let path = url
                .split_once("://")
                .map(|(_, rest)| rest)
                .and_then(|rest| rest.find('/').map(|at| &rest[at..]))
                .unwrap_or_else(|| panic!("no path in {url}"));
            let path = path.split('?').next().unwrap().to_owned();
            let body = data.map(|d| {
                let text = substitute(&d, |_| "1".to_owned());
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("the body of `{line}` is not JSON ({e}): {text}"))
            });
            let method =
                method.unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.to_owned());
            out.push(Curl {
                method,
                path,
                body,
                line: line.to_owned(),
            });
        }
    }
    out
}

/// Whether the concrete `path` (shell variables as `$NAME`) fits the
/// document's `template`.
fn path_matches(template: &str, path: &str) -> bool {
    let a: Vec<_> = template.split('/').collect();
    let b: Vec<_> = path.split('/').collect();
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

/// Follows `$ref`s.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.strip_prefix("#/components/schemas/").unwrap();
            let target = &doc["components"]["schemas"][name];
            assert!(target.is_object(), "dangling $ref {reference}");
            resolve(doc, target)
        }
        None => schema,
    }
}

/// The ways `value` does not fit `schema` (a subset of JSON Schema: `$ref`,
/// `type`, `enum`, `oneOf`/`anyOf`/`allOf`, `required`, `properties` (with
/// no unknown fields), `items`).
fn violations(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut out = Vec::new();
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            if !options
                .iter()
                .any(|option| violations(doc, option, value, at).is_empty())
            {
                out.push(format!("{at}: {value} matches none of {key}"));
            }
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            out.extend(violations(doc, part, value, at));
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            out.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let fits = types.iter().any(|t| match *t {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            "null" => value.is_null(),
            _ => true,
        });
        if !fits {
            out.push(format!("{at}: {value} is not of type {types:?}"));
            return out;
        }
    }
    if let Some(object) = value.as_object() {
        let empty = Map::new();
        let properties = schema["properties"].as_object().unwrap_or(&empty);
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap();
            if !object.contains_key(name) {
                out.push(format!("{at}: the required field `{name}` is missing"));
            }
        }
        if schema.get("properties").is_some() {
            for (name, field) in object {
                match properties.get(name) {
                    Some(field_schema) => {
                        out.extend(violations(
                            doc,
                            field_schema,
                            field,
                            &format!("{at}.{name}"),
                        ));
                    }
                    None => out.push(format!("{at}: unknown field `{name}`")),
                }
            }
        }
    }
    if let (Some(items), Some(schema)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            out.extend(violations(doc, schema, item, &format!("{at}[{i}]")));
        }
    }
    out
}

fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn the_schema_checker_catches_what_it_should() {
    let doc = json!({"components": {"schemas": {
        "Id": {"type": "string"},
        "In": {"type": "object", "required": ["user_id"], "properties": {
            "user_id": {"$ref": "#/components/schemas/Id"},
            "note": {"oneOf": [{"type": "null"}, {"type": "string"}]},
        }},
    }}});
    let schema = json!({"$ref": "#/components/schemas/In"});
    assert!(violations(&doc, &schema, &json!({"user_id": "1"}), "$").is_empty());
    assert!(violations(&doc, &schema, &json!({"user_id": "1", "note": null}), "$").is_empty());
    assert_eq!(violations(&doc, &schema, &json!({}), "$").len(), 1);
    assert_eq!(
        violations(&doc, &schema, &json!({"user_id": 1}), "$").len(),
        1
    );
    assert_eq!(
        violations(&doc, &schema, &json!({"user_id": "1", "x": 1}), "$").len(),
        1
    );
    let parsed = curls(
        "ALICE=$(curl -s -X POST $API/auth/login -H 'Content-Type: application/json' \\\n  -d '{\"login\":\"alice\"}' | sed -E 's/x/y/')\ncurl -s \"$API/conversations/$CONV/messages\" -H \"Authorization: Bearer $BOB\" -d \"{\\\"seq\\\":$SEQ}\"\n",
    );
    assert_eq!(parsed.len(), 2, "{parsed:?}");
    assert_eq!(parsed[0].method, "POST");
    assert_eq!(parsed[0].path, "/api/v1/auth/login");
    assert_eq!(parsed[0].body, Some(json!({"login": "alice"})));
    assert_eq!(parsed[1].path, "/api/v1/conversations/$CONV/messages");
    assert_eq!(parsed[1].body, Some(json!({"seq": 1})));
    assert!(path_matches(
        "/api/v1/conversations/{conversation_id}/messages",
        &parsed[1].path
    ));
}

#[tokio::test]
async fn the_readme_curl_examples_fit_the_document() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let requests: Vec<Curl> = bash_blocks(&readme())
        .iter()
        .flat_map(|b| curls(b))
        .collect();
    let with_body = requests.iter().filter(|r| r.body.is_some()).count();
    assert!(
        requests.len() >= 8 && with_body >= 5,
        "the README shows too few curl examples: {requests:#?}"
    );
    let mut seen = BTreeSet::new();
    for request in &requests {
        let method = request.method.to_lowercase();
        let found = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(template, item)| {
                path_matches(template, &request.path) && item.get(&method).is_some()
            });
        let Some((template, item)) = found else {
            panic!(
                "the README calls an undocumented operation: {}",
                request.line
            );
        };
        seen.insert(format!("{} {template}", request.method));
        let operation = &item[&method];
        match (&request.body, operation.get("requestBody")) {
            (Some(body), Some(request_body)) => {
                let schema = &request_body["content"]["application/json"]["schema"];
                assert!(schema.is_object(), "no JSON schema for {}", request.line);
                let problems = violations(&doc, schema, body, "body");
                assert!(
                    problems.is_empty(),
                    "`{}` does not fit the document:\n{}",
                    request.line,
                    problems.join("\n")
                );
            }
            (Some(_), None) => panic!("a body for an operation without one: {}", request.line),
            (None, Some(request_body)) if request_body["required"] == true => {
                panic!("no body for an operation that needs one: {}", request.line)
            }
            (None, _) => {}
        }
    }
    for needed in [
        "POST /api/v1/auth/register",
        "POST /api/v1/auth/login",
        "POST /api/v1/friend-requests",
        "POST /api/v1/friend-requests/{user_id}/accept",
        "POST /api/v1/conversations/direct",
        "POST /api/v1/conversations/{conversation_id}/messages",
        "GET /api/v1/unread",
    ] {
        assert!(
            seen.contains(needed),
            "the README does not show {needed}: {seen:?}"
        );
    }
}

/// Whether `program --version` runs.
fn available(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_curl_walkthrough_works_as_written() {
    if !available("bash") || !available("curl") {
        eprintln!("skipped: bash and curl are needed to run the README's walkthrough");
        return;
    }
    let server = TestServer::start().await;
    let blocks = bash_blocks(&readme());
    let walkthrough = blocks
        .iter()
        .find(|b| b.contains("curl") && !b.contains("cargo"))
        .expect("no curl walkthrough in the README");
    assert!(walkthrough.contains("http://127.0.0.1:8080"));
    // The walkthrough as written, against this server, then its variables.
    let script = format!(
        "{}\necho \"VARS $ALICE_ID $BOB_ID $CONV ${{#ALICE}} ${{#BOB}}\"\n",
        walkthrough.replace("127.0.0.1:8080", &server.addr.to_string())
    );
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-c", &script])
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.is_empty(),
        "the walkthrough wrote to stderr: {stderr}"
    );
    let lines: Vec<Value> = stdout
        .lines()
        .filter(|l| !l.starts_with("VARS "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for line in &lines {
        assert!(
            line.get("error").is_none(),
            "a request failed: {line}\n{stdout}"
        );
    }
    let vars: Vec<&str> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("VARS "))
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(vars.len(), 5, "{stdout}");
    assert!(vars.iter().all(|v| !v.is_empty() && *v != "0"), "{vars:?}");
    // Friend request pending, accepted, a message, unread 1, read, unread 0.
    assert_eq!(lines[0]["outcome"], "pending", "{stdout}");
    assert_eq!(lines[2]["body"], "Hi Bob!", "{stdout}");
    assert_eq!(lines[2]["conversation_id"], vars[2], "{stdout}");
    assert_eq!(lines[3]["total"], 1, "{stdout}");
    assert_eq!(lines[4]["last_read_seq"], 1, "{stdout}");
    assert_eq!(lines.last().unwrap()["total"], 0, "{stdout}");
    assert_no_server_errors(&server).await;
}
