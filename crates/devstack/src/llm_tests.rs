use super::*;

fn answer(body: Value) -> Completion {
    match plan(body.to_string().as_bytes(), &LlmConfig::default()) {
        Plan::Answer(c) => c,
        other => panic!("{other:?}"),
    }
}

fn messages(text: &str) -> Value {
    json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": text}])
}

#[test]
fn token_counts_come_from_the_request() {
    // (request, prompt_tokens, completion_tokens, stream, usage)
    let cases = [
        (
            json!({"messages": messages("one two three")}),
            5,
            16,
            false,
            true,
        ),
        (
            json!({"messages": messages("a"), "max_tokens": 7}),
            3,
            7,
            false,
            true,
        ),
        (
            json!({"messages": messages("a"), "max_tokens": 7, "max_completion_tokens": 9}),
            3,
            9,
            false,
            true,
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "x y"}, {"type": "image_url"}]}]}),
            2,
            16,
            false,
            true,
        ),
        (
            json!({"messages": messages(""), "stream": true}),
            2,
            16,
            true,
            false,
        ),
        (
            json!({"messages": messages(""), "stream": true, "stream_options": {"include_usage": true}}),
            2,
            16,
            true,
            true,
        ),
        (
            json!({"messages": messages(""), "stream": true, "stream_options": {"include_usage": false}}),
            2,
            16,
            true,
            false,
        ),
        (
            json!({"model": MODEL_NO_USAGE, "messages": messages("")}),
            2,
            16,
            false,
            false,
        ),
        (
            json!({"model": MODEL_NO_USAGE, "messages": messages(""), "stream": true, "stream_options": {"include_usage": true}}),
            2,
            16,
            true,
            false,
        ),
        (json!({"messages": [], "max_tokens": 0}), 0, 0, false, true),
    ];
    for (request, prompt, completion, stream, usage) in cases {
        let c = answer(request.clone());
        assert_eq!(
            (c.prompt_tokens, c.completion_tokens, c.stream, c.usage),
            (prompt, completion, stream, usage),
            "{request}"
        );
    }
}

#[test]
fn errors_are_planned_from_the_model_or_a_bad_body() {
    let config = LlmConfig::default();
    let cases: [(&[u8], u16); 5] = [
        (br#"{"model":"fake-error-500","messages":[]}"#, 500),
        (br#"{"model":"fake-error-429","messages":[]}"#, 429),
        (br#"{"model":"fake-error-oops","messages":[]}"#, 500),
        (br#"{"messages":"not a list"}"#, 400),
        (b"not json", 400),
    ];
    for (body, want) in cases {
        match plan(body, &config) {
            Plan::Error { status, message } => {
                assert_eq!(status, want, "{}", String::from_utf8_lossy(body));
                let parsed: Value = serde_json::from_str(&error_body(status, &message)).unwrap();
                assert!(parsed["error"]["message"].is_string());
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn json_answer_carries_the_usage_and_that_many_words() {
    let c = answer(json!({"messages": messages("a b"), "max_tokens": 5}));
    let v: Value = serde_json::from_str(&json_answer(&c, "id-1", 7)).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9})
    );
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(text.split_whitespace().count(), 5);
    let silent = answer(json!({"model": MODEL_NO_USAGE, "messages": messages("a")}));
    let v: Value = serde_json::from_str(&json_answer(&silent, "id-2", 7)).unwrap();
    assert!(v.get("usage").is_none());
}

fn parse_events(c: &Completion) -> Vec<Value> {
    sse_events(c, "id-1", 7)
        .map(|e| {
            let data = e
                .strip_prefix("data: ")
                .and_then(|d| d.strip_suffix("\n\n"))
                .unwrap();
            if data == "[DONE]" {
                Value::String(data.into())
            } else {
                serde_json::from_str(data).unwrap()
            }
        })
        .collect()
}

#[test]
fn stream_has_one_event_per_token_and_usage_last_when_asked() {
    let with = answer(
        json!({"messages": messages("a b c"), "max_tokens": 3, "stream": true,
                             "stream_options": {"include_usage": true}}),
    );
    let events = parse_events(&with);
    // role, 3 tokens, finish, usage, [DONE]
    assert_eq!(events.len(), 7);
    assert_eq!(events[6], "[DONE]");
    assert_eq!(events[5]["choices"], json!([]));
    assert_eq!(events[5]["usage"]["total_tokens"], 8);
    assert!(events[..5].iter().all(|e| e["usage"].is_null()));
    let text: String = events[1..4]
        .iter()
        .map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "tok0 tok1 tok2");
    assert_eq!(events[4]["choices"][0]["finish_reason"], "stop");

    let without = answer(json!({"messages": messages("a"), "max_tokens": 3, "stream": true}));
    let events = parse_events(&without);
    assert_eq!(events.len(), 6);
    assert!(events.iter().all(|e| e.get("usage").is_none()));
}

#[tokio::test]
async fn serves_json_and_sse_over_http() {
    let server = LlmServer::start(
        "127.0.0.1:0",
        LlmConfig {
            default_completion_tokens: 4,
            chunk_delay: Duration::from_millis(1),
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}{CHAT_PATH}", server.url());
    let json: Value = http
        .post(&url)
        .json(&json!({"messages": messages("hi there")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["usage"]["completion_tokens"], 4);
    assert_eq!(json["usage"]["prompt_tokens"], 4);

    let streamed = http
        .post(&url)
        .json(
            &json!({"messages": messages("hi"), "stream": true, "max_tokens": 50,
                      "stream_options": {"include_usage": true}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        streamed.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let body = streamed.text().await.unwrap();
    assert_eq!(body.matches("data: ").count(), 50 + 4);
    assert!(body.ends_with("data: [DONE]\n\n"));
    assert!(body.contains(r#""total_tokens":53"#), "{body}");

    let failed = http
        .post(&url)
        .json(&json!({"model": "fake-error-503", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status().as_u16(), 503);
    assert_eq!(server.stats().requests(), 3);
    assert_eq!(server.stats().completed_streams(), 1);
    let health = http
        .get(format!("{}/health", server.url()))
        .send()
        .await
        .unwrap();
    assert!(health.status().is_success());
}
