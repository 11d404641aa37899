//! `REFUSALS.md` at the repository root documents every refusal reason in one table; it must
//! be exactly what `obol_x402::refusal::markdown_table` generates.
//! Regenerate with `OBOL_UPDATE_GOLDEN=1 cargo nextest run -p obol-x402 --test refusal_table`.

use std::path::PathBuf;

const BEGIN: &str = "<!-- reasons:begin (generated from crates/x402/src/refusal.rs) -->\n";
const END: &str = "<!-- reasons:end -->";

#[test]
fn refusals_md_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../REFUSALS.md");
    let text = std::fs::read_to_string(&path).expect("REFUSALS.md exists at the repository root");
    let (head, rest) = text
        .split_once(BEGIN)
        .expect("REFUSALS.md has the begin marker");
    let (_, tail) = rest
        .split_once(END)
        .expect("REFUSALS.md has the end marker");
    let want = format!(
        "{head}{BEGIN}{}{END}{tail}",
        obol_x402::refusal::markdown_table()
    );
    if want == text {
        return;
    }
    if std::env::var_os("OBOL_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, want).expect("REFUSALS.md is writable");
        return;
    }
    panic!(
        "REFUSALS.md is out of date; regenerate with: \
         OBOL_UPDATE_GOLDEN=1 cargo nextest run -p obol-x402 --test refusal_table"
    );
}
