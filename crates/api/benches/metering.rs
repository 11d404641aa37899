//! CPU cost of metering one answer, without any network: reading the usage of a 1 MiB JSON
//! answer, of a 2 000-event SSE stream (fed one event per chunk, as an upstream sends it), and
//! adding `stream_options.include_usage` to a streaming request. These are the work the
//! gateway adds per metered answer; the latency over the gateway is measured separately.
//!
//! `cargo bench -p obol-api --bench metering`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use obol_api::metering::usage::{SseUsage, ask_for_stream_usage, usage_of};

/// A chat completion of about 1 MiB: one long message (with escapes) and its usage last.
fn json_answer() -> Vec<u8> {
    let line = "The quick brown fox jumps over the lazy dog, \\\"quoted\\\" and \\u00e9.\\n";
    let content = line.repeat((1 << 20) / line.len());
    format!(
        r#"{{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"fake","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":1234,"completion_tokens":262144,"total_tokens":263378}}}}"#
    )
    .into_bytes()
}

/// 2 000 content events (as with `include_usage`: each carries `"usage":null`), the usage
/// event and `[DONE]`, one event per chunk.
fn sse_events() -> Vec<Vec<u8>> {
    let mut events: Vec<Vec<u8>> = (0..2000)
        .map(|i| {
            format!(
                "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fake\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token{i} \"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"
            )
            .into_bytes()
        })
        .collect();
    events.push(
        b"data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":2000,\"total_tokens\":2012}}\n\n".to_vec(),
    );
    events.push(b"data: [DONE]\n\n".to_vec());
    events
}

fn request() -> Vec<u8> {
    let messages: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"role":"user","content":"message number {i} of the conversation"}}"#))
        .collect();
    format!(
        r#"{{"model":"fake","stream":true,"max_tokens":512,"messages":[{}]}}"#,
        messages.join(",")
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let json = json_answer();
    assert!(usage_of(&json).is_some());
    let mut g = c.benchmark_group("metering");
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("usage_of_1MiB_json", |b| {
        b.iter(|| usage_of(black_box(&json)))
    });
    let events = sse_events();
    let bytes: usize = events.iter().map(Vec::len).sum();
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("usage_of_2000_event_sse", |b| {
        b.iter(|| {
            let mut r = SseUsage::new();
            for e in &events {
                r.feed(black_box(e));
            }
            r.finish().expect("the stream reports usage")
        })
    });
    let req = request();
    g.throughput(Throughput::Bytes(req.len() as u64));
    g.bench_function("ask_for_stream_usage", |b| {
        b.iter(|| ask_for_stream_usage(black_box(&req)).expect("a streaming request"))
    });
    g.finish();
    percentiles("usage_of_1MiB_json", 500, || {
        usage_of(black_box(&json));
    });
    percentiles("usage_of_2000_event_sse", 500, || {
        let mut r = SseUsage::new();
        for e in &events {
            r.feed(black_box(e));
        }
        r.finish();
    });
    percentiles("per_sse_event", 20_000, || {
        let mut r = SseUsage::new();
        r.feed(black_box(&events[7]));
        r.finish();
    });
    percentiles("ask_for_stream_usage", 5_000, || {
        ask_for_stream_usage(black_box(&req));
    });
}

/// Times `n` calls one by one and prints `metering: <name> p50 <t> p99 <t> max <t>` (wall
/// clock, so preemption on a loaded machine shows in the tail).
fn percentiles(name: &str, n: usize, mut f: impl FnMut()) {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort_unstable();
    let at = |q: f64| times[((n as f64 * q) as usize).min(n - 1)];
    println!(
        "metering: {name} calls {n} p50 {:?} p99 {:?} max {:?}",
        at(0.50),
        at(0.99),
        times[n - 1]
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
