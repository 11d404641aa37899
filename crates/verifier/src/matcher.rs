//! Route patterns: obol-api's [`obol_api::pattern`], the one owner of their semantics (the
//! controller orders and compares an offer's route table with the same rules).

pub use obol_api::pattern::*;
