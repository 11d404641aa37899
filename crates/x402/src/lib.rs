//! x402 protocol core (being written).
