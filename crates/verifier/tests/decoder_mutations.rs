//! A stable-toolchain stand-in for the cargo-fuzz target (fuzz/): thousands of deterministic
//! random mutations of valid payment headers through the decoder and the local checks. Every
//! outcome must be a payment or a 402 denial with a reason; nothing may panic.

mod support;

use axum::http::StatusCode;
use obol_verifier::decide;
use support::*;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "null",
    "0",
    "-1",
    "1e400",
    "\"\"",
    "[]",
    "{}",
    "true",
    "\"0x\"",
    "\"eip155:84532\"",
    "\"base\"",
    "18446744073709551616",
    "\"\\u0000\"",
    "{\"a\":",
    "]",
    "\"",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        let i = rng.below(v.len());
        match rng.below(6) {
            0 => v[i] ^= 1 << rng.below(8),
            1 => {
                v.remove(i.min(v.len().saturating_sub(1)));
            }
            2 => v.insert(i, (rng.next() & 0xff) as u8),
            3 => v.truncate(i),
            4 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let end = (i + rng.below(12)).min(v.len());
                v.splice(i..end, t.iter().copied());
            }
            _ => {
                let (j, last) = (rng.below(v.len()), v.len() - 1);
                v.swap(i.min(last), j.min(last));
            }
        }
        if v.is_empty() {
            break;
        }
    }
    v
}

#[test]
fn random_mutations_never_panic_and_always_have_a_reason() {
    let h = Harness::demo();
    let req = h.requirement("demo", "demo");
    let seeds: Vec<Vec<u8>> = [1u8, 2]
        .iter()
        .map(|&v| serde_json::to_vec(&payload_json(&req, auth(&req, 1), v, &key())).expect("json"))
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..4000 {
        let seed = &seeds[i % seeds.len()];
        let bytes = mutate(&mut rng, seed);
        // Half the time the mutation hits the base64 layer instead of the JSON.
        let header = if i % 2 == 0 {
            b64(&bytes)
        } else {
            let mut text = b64(seed).into_bytes();
            let m = mutate(&mut rng, &text);
            text = m;
            String::from_utf8_lossy(&text).into_owned()
        };
        match decide::check_payment(&req, &header, NOW) {
            Ok(_) => accepted += 1,
            Err(denial) => {
                refused += 1;
                assert_eq!(denial.status(), StatusCode::PAYMENT_REQUIRED, "{header}");
                assert!(!denial.metric_label().is_empty());
            }
        }
    }
    assert!(
        refused > 3000,
        "mutations should mostly be refused ({accepted} accepted)"
    );
}
