use super::TokenUsage;
use super::usage::*;

fn u(input: u64, output: u64) -> Option<TokenUsage> {
    Some(TokenUsage { input, output })
}

#[test]
fn usage_of_a_json_answer_table() {
    let cases: &[(&str, &str, Option<TokenUsage>)] = &[
        (
            "openai",
            r#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}}"#,
            u(12, 30),
        ),
        (
            "usage first",
            r#"{"usage":{"prompt_tokens":1,"completion_tokens":2},"choices":[]}"#,
            u(1, 2),
        ),
        (
            "a total that disagrees is ignored",
            r#"{"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":99}}"#,
            u(1, 2),
        ),
        (
            "completion from the total",
            r#"{"usage":{"prompt_tokens":10,"total_tokens":25}}"#,
            u(10, 15),
        ),
        (
            "prompt from the total",
            r#"{"usage":{"completion_tokens":10,"total_tokens":25}}"#,
            u(15, 10),
        ),
        (
            "total below a side",
            r#"{"usage":{"prompt_tokens":10,"total_tokens":4}}"#,
            u(10, 0),
        ),
        ("only a total", r#"{"usage":{"total_tokens":25}}"#, None),
        ("no usage", r#"{"choices":[]}"#, None),
        ("null usage", r#"{"usage":null}"#, None),
        (
            "negative",
            r#"{"usage":{"prompt_tokens":-1,"completion_tokens":2}}"#,
            None,
        ),
        (
            "fractional",
            r#"{"usage":{"prompt_tokens":1.5,"completion_tokens":2}}"#,
            None,
        ),
        (
            "as strings",
            r#"{"usage":{"prompt_tokens":"1","completion_tokens":"2"}}"#,
            None,
        ),
        (
            "above 2^64",
            r#"{"usage":{"prompt_tokens":18446744073709551616,"completion_tokens":2}}"#,
            None,
        ),
        ("usage not an object", r#"{"usage":[1,2]}"#, None),
        (
            "nested usage is not the answer's",
            r#"{"choices":[{"usage":{"prompt_tokens":1,"completion_tokens":2}}]}"#,
            None,
        ),
        ("not an object", r#"[{"usage":{}}]"#, None),
        ("not JSON", "usage: 12", None),
        (
            "truncated",
            r#"{"usage":{"prompt_tokens":1,"completion_tokens":2}"#,
            None,
        ),
        ("empty", "", None),
    ];
    for (name, body, want) in cases {
        assert_eq!(usage_of(body.as_bytes()), *want, "{name}");
    }
}

/// An OpenAI-style stream: content events, the usage event, `[DONE]`.
fn stream(usage: &str) -> String {
    let mut s = String::new();
    for word in ["Hello", " wor", "ld"] {
        s.push_str(&format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{word}\"}}}}],\"usage\":null}}\n\n"
        ));
    }
    if !usage.is_empty() {
        s.push_str(&format!("data: {{\"choices\":[],\"usage\":{usage}}}\n\n"));
    }
    s.push_str("data: [DONE]\n\n");
    s
}

fn read_in(chunks: &[&[u8]]) -> Option<TokenUsage> {
    let mut r = SseUsage::new();
    for c in chunks {
        r.feed(c);
    }
    r.finish()
}

#[test]
fn the_last_usage_of_a_stream_whatever_the_chunking() {
    let s = stream(r#"{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}"#);
    let bytes = s.as_bytes();
    assert_eq!(read_in(&[bytes]), u(7, 3));
    // Every split point, and byte by byte.
    for at in 0..bytes.len() {
        assert_eq!(
            read_in(&[&bytes[..at], &bytes[at..]]),
            u(7, 3),
            "split at {at}"
        );
    }
    let bytes_one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(read_in(&bytes_one_by_one), u(7, 3));
    // CRLF and CR line ends, split between CR and LF.
    let crlf = s.replace('\n', "\r\n");
    let b = crlf.as_bytes();
    let cr_at = b.iter().position(|&c| c == b'\r').unwrap();
    assert_eq!(read_in(&[&b[..=cr_at], &b[cr_at + 1..]]), u(7, 3));
    assert_eq!(read_in(&[s.replace('\n', "\r").as_bytes()]), u(7, 3));
    // `data:` without the space, and a last line without its end.
    assert_eq!(
        read_in(&[br#"data:{"usage":{"prompt_tokens":1,"completion_tokens":1}}"#]),
        u(1, 1)
    );
}

#[test]
fn stream_usage_table() {
    let cases: Vec<(&str, String, Option<TokenUsage>)> = vec![
        ("no usage event", stream(""), None),
        (
            "usage reported twice: the last",
            format!(
                "data: {{\"usage\":{{\"prompt_tokens\":1,\"completion_tokens\":1}}}}\n\n{}",
                stream(r#"{"prompt_tokens":5,"completion_tokens":6}"#)
            ),
            u(5, 6),
        ),
        (
            "a later malformed usage does not erase the good one",
            format!(
                "{}data: {{\"usage\":{{\"prompt_tokens\":\"x\"}}}}\n\n",
                stream(r#"{"prompt_tokens":5,"completion_tokens":6}"#)
            ),
            u(5, 6),
        ),
        (
            "usage in a comment line is not data",
            ": {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}}\n\n".to_owned(),
            None,
        ),
        (
            "usage in an event name line is not data",
            "event: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}}\n\n".to_owned(),
            None,
        ),
        (
            "content that only says the words",
            "data: {\"choices\":[{\"delta\":{\"content\":\"prompt_tokens\"}}]}\n\n".to_owned(),
            None,
        ),
    ];
    for (name, s, want) in cases {
        assert_eq!(read_in(&[s.as_bytes()]), want, "{name}");
    }
}

#[test]
fn an_overlong_line_is_skipped_and_reading_goes_on() {
    let long = format!(
        "data: {{\"usage\":{{\"prompt_tokens\":9,\"completion_tokens\":9}},\"pad\":\"{}\"}}\n",
        "x".repeat(MAX_SSE_LINE)
    );
    assert_eq!(read_in(&[long.as_bytes()]), None);
    let then =
        format!("{long}\ndata: {{\"usage\":{{\"prompt_tokens\":2,\"completion_tokens\":3}}}}\n\n");
    assert_eq!(read_in(&[then.as_bytes()]), u(2, 3));
    // Split so that the limit is crossed in a later chunk.
    let (a, b) = then.as_bytes().split_at(100);
    assert_eq!(read_in(&[a, b]), u(2, 3));
}

#[test]
fn streaming_requests_ask_for_usage() {
    let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
    let asked = ask_for_stream_usage(br#"{"model":"m","stream":true,"messages":[]}"#).unwrap();
    assert_eq!(
        json(&asked),
        serde_json::json!({"model":"m","stream":true,"messages":[],"stream_options":{"include_usage":true}})
    );
    // Other stream options are kept; an explicit false is overridden (usage is what is billed).
    for (body, options) in [
        (
            r#"{"stream":true,"stream_options":{"x":1}}"#,
            serde_json::json!({"x":1,"include_usage":true}),
        ),
        (
            r#"{"stream":true,"stream_options":{"include_usage":false}}"#,
            serde_json::json!({"include_usage":true}),
        ),
        (
            r#"{"stream":true,"stream_options":null}"#,
            serde_json::json!({"include_usage":true}),
        ),
    ] {
        let out = ask_for_stream_usage(body.as_bytes()).unwrap();
        assert_eq!(json(&out)["stream_options"], options, "{body}");
    }
    // Left as they are.
    for body in [
        r#"{"stream":true,"stream_options":{"include_usage":true}}"#,
        r#"{"stream":false}"#,
        r#"{"stream":"true"}"#,
        r#"{"messages":[]}"#,
        r#"[1]"#,
        "not json",
        "",
    ] {
        assert_eq!(ask_for_stream_usage(body.as_bytes()), None, "{body}");
    }
}

#[test]
fn the_usage_prefilter_finds_every_counter_and_nothing_else() {
    let cases: &[(&str, bool)] = &[
        (r#"{"usage":{"prompt_tokens":1}}"#, true),
        (r#"{"usage":{"completion_tokens":1}}"#, true),
        (r#"{"usage":{"total_tokens":1}}"#, true),
        (r#"{"x_tokens":1,"prompt_tokens":2}"#, true),
        (r#"{"choices":[{"delta":{"content":"token 5"}}]}"#, false),
        (r#"{"finish_reason":"stop","max_tokens":7}"#, false),
        ("_tokens", false),
        ("prompt_token", false),
        ("", false),
    ];
    for &(line, want) in cases {
        assert_eq!(
            super::usage::mentions_tokens(line.as_bytes()),
            want,
            "{line}"
        );
    }
}
