//! What a reservation store remembers about one authorization `(payer, nonce)`, as a short
//! string (so Redis compares and swaps it whole), and the pure decision taken when a request
//! presents an authorization the store already knows.
//!
//! | Record | Meaning | A new request with the same authorization |
//! |---|---|---|
//! | `Held` | a request is verifying, forwarding or settling it | in flight: retry later (409) |
//! | `Delivering` | settled; its holder is sending the answer | in flight until `deadline`, then re-served |
//! | `Undelivered` | settled; the answer never reached the client | re-served once, no second charge |
//! | `Spent` | settled and answered (or settled by ForwardAuth) | replayed (402) |
//! | `Unknown` | the settle outcome is unknown (it may have moved funds) | only chain evidence re-serves it |
//!
//! A `Held` record whose deadline passed belongs to a holder that died: it counts as `Unknown`.
//! `Delivering` and `Undelivered` only re-serve a payment for the same requirement
//! ([`Fingerprint`]): payTo, asset, amount and network.

use std::fmt;

use obol_x402::Requirement;

/// Identifies one reservation's holder, so only it can release or settle what it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(pub u64);

impl Token {
    /// A fresh random token.
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What a payment bought: a hash of the requirement it satisfies (never a payer or a nonce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    /// The fingerprint of `requirement`'s payTo, asset, amount and network.
    pub fn of(requirement: &Requirement) -> Self {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(requirement.network.caip2().to_string().as_bytes());
        h.update(requirement.asset.as_slice());
        h.update(requirement.pay_to.as_slice());
        h.update(requirement.amount.to_be_bytes::<32>());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Self(u64::from_be_bytes(first))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One record. `receipt` is the `PAYMENT-RESPONSE` value of the settlement (base64, no `:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A request holds the authorization until `deadline` (unix seconds).
    Held {
        /// The holder.
        token: Token,
        /// After this the holder is presumed dead.
        deadline: u64,
    },
    /// Settled; the holder is delivering the answer until `deadline`.
    Delivering {
        /// The holder.
        token: Token,
        /// After this the delivery is presumed failed and the payment may be re-served.
        deadline: u64,
        /// What was bought.
        fingerprint: Fingerprint,
        /// The settlement receipt.
        receipt: String,
    },
    /// Settled, the answer was not delivered: may be re-served once.
    Undelivered {
        /// What was bought.
        fingerprint: Fingerprint,
        /// The settlement receipt.
        receipt: String,
    },
    /// Settled and served.
    Spent,
    /// The settle outcome is unknown.
    Unknown {
        /// What it would have bought.
        fingerprint: Fingerprint,
    },
}

impl Record {
    /// The stored form.
    pub fn encode(&self) -> String {
        match self {
            Self::Held { token, deadline } => format!("h:{token}:{deadline}"),
            Self::Delivering {
                token,
                deadline,
                fingerprint,
                receipt,
            } => format!("p:{token}:{deadline}:{fingerprint}:{receipt}"),
            Self::Undelivered {
                fingerprint,
                receipt,
            } => format!("s:{fingerprint}:{receipt}"),
            Self::Spent => "d".to_owned(),
            Self::Unknown { fingerprint } => format!("u:{fingerprint}"),
        }
    }

    /// Parses a stored record; `None` for anything else (treated as spent by the caller: a
    /// record it cannot read is never a reason to let a payment through twice).
    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let kind = parts.next()?;
        let hex = |s: Option<&str>| s.and_then(|s| u64::from_str_radix(s, 16).ok());
        let dec = |s: Option<&str>| s.and_then(|s| s.parse::<u64>().ok());
        let record = match kind {
            "h" => Self::Held {
                token: Token(hex(parts.next())?),
                deadline: dec(parts.next())?,
            },
            "p" => Self::Delivering {
                token: Token(hex(parts.next())?),
                deadline: dec(parts.next())?,
                fingerprint: Fingerprint(hex(parts.next())?),
                receipt: parts.next().filter(|r| !r.is_empty())?.to_owned(),
            },
            "s" => Self::Undelivered {
                fingerprint: Fingerprint(hex(parts.next())?),
                receipt: parts.next().filter(|r| !r.is_empty())?.to_owned(),
            },
            "d" => Self::Spent,
            "u" => Self::Unknown {
                fingerprint: Fingerprint(hex(parts.next())?),
            },
            _ => return None,
        };
        parts.next().is_none().then_some(record)
    }

    /// Whether a bounded store may forget this record to make room: never one that a request
    /// holds. Forgetting a settled one is safe (the chain refuses a second settlement; a chain
    /// re-serve is bounded by the re-serve window).
    pub fn evictable(text: &str) -> bool {
        !matches!(
            Self::decode(text),
            Some(Self::Held { .. } | Self::Delivering { .. })
        )
    }
}

/// What to do with a request whose authorization the store already knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// Another request holds it: answer "in flight", retry after this many seconds.
    InFlight {
        /// Seconds until the holder's deadline.
        retry_after: u64,
    },
    /// A settled payment whose answer was not delivered: take it over (compare-and-swap
    /// `expected` → `Delivering`) and serve it without charging again.
    Reserve {
        /// The stored form to swap from.
        expected: String,
        /// The settlement receipt to send again.
        receipt: String,
    },
    /// It may have been settled (unknown outcome, or a holder that died): only the chain can
    /// tell. `expected` is the stored form to swap from if it can.
    AskChain {
        /// The stored form to swap from.
        expected: String,
    },
    /// Used: refuse.
    Replayed,
}

/// The decision for a request presenting an authorization stored as `stored`, at `now`, for a
/// requirement with fingerprint `fingerprint`.
pub fn on_known(stored: &str, now: u64, fingerprint: Fingerprint) -> Known {
    let expected = || stored.to_owned();
    match Record::decode(stored) {
        Some(Record::Held { deadline, .. }) if deadline > now => Known::InFlight {
            retry_after: deadline - now,
        },
        Some(Record::Held { .. }) => Known::AskChain {
            expected: expected(),
        },
        Some(Record::Delivering { deadline, .. }) if deadline > now => Known::InFlight {
            retry_after: deadline - now,
        },
        Some(
            Record::Delivering {
                fingerprint: f,
                receipt,
                ..
            }
            | Record::Undelivered {
                fingerprint: f,
                receipt,
            },
        ) if f == fingerprint => Known::Reserve {
            expected: expected(),
            receipt,
        },
        Some(Record::Unknown { fingerprint: f }) if f == fingerprint => Known::AskChain {
            expected: expected(),
        },
        _ => Known::Replayed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: Fingerprint = Fingerprint(0xabc);
    const OTHER: Fingerprint = Fingerprint(0xdef);

    fn all() -> Vec<Record> {
        vec![
            Record::Held {
                token: Token(7),
                deadline: 100,
            },
            Record::Delivering {
                token: Token(u64::MAX),
                deadline: 100,
                fingerprint: FP,
                receipt: "eyJzdWNjZXNzIjp0cnVlfQ==".into(),
            },
            Record::Undelivered {
                fingerprint: FP,
                receipt: "eyJzdWNjZXNzIjp0cnVlfQ==".into(),
            },
            Record::Spent,
            Record::Unknown { fingerprint: FP },
        ]
    }

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        for r in all() {
            assert_eq!(Record::decode(&r.encode()), Some(r.clone()), "{r:?}");
        }
        for bad in [
            "",
            "x",
            "h:7",
            "h:zz:1",
            "h:7:1:extra",
            "s:abc:",
            "p:7:100:abc",
            "d:1",
            "1",
        ] {
            assert_eq!(Record::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_records_nobody_holds_are_evictable() {
        let evictable: Vec<bool> = all()
            .iter()
            .map(|r| Record::evictable(&r.encode()))
            .collect();
        assert_eq!(evictable, [false, false, true, true, true]);
    }

    #[test]
    fn known_authorization_table() {
        let receipt = "cmVjZWlwdA==".to_owned();
        let reserve = |r: &Record| Known::Reserve {
            expected: r.encode(),
            receipt: receipt.clone(),
        };
        let ask = |r: &Record| Known::AskChain {
            expected: r.encode(),
        };
        let held = Record::Held {
            token: Token(1),
            deadline: 100,
        };
        let delivering = Record::Delivering {
            token: Token(1),
            deadline: 100,
            fingerprint: FP,
            receipt: receipt.clone(),
        };
        let undelivered = Record::Undelivered {
            fingerprint: FP,
            receipt: receipt.clone(),
        };
        let unknown = Record::Unknown { fingerprint: FP };
        let cases: Vec<(&str, &Record, u64, Fingerprint, Known)> = vec![
            ("held", &held, 40, FP, Known::InFlight { retry_after: 60 }),
            ("held past its deadline", &held, 100, FP, ask(&held)),
            (
                "delivering",
                &delivering,
                99,
                FP,
                Known::InFlight { retry_after: 1 },
            ),
            (
                "delivering past its deadline",
                &delivering,
                100,
                FP,
                reserve(&delivering),
            ),
            (
                "delivering, other requirement",
                &delivering,
                100,
                OTHER,
                Known::Replayed,
            ),
            ("undelivered", &undelivered, 0, FP, reserve(&undelivered)),
            (
                "undelivered, other requirement",
                &undelivered,
                0,
                OTHER,
                Known::Replayed,
            ),
            ("spent", &Record::Spent, 0, FP, Known::Replayed),
            ("unknown", &unknown, 0, FP, ask(&unknown)),
            (
                "unknown, other requirement",
                &unknown,
                0,
                OTHER,
                Known::Replayed,
            ),
        ];
        for (name, record, now, fp, want) in cases {
            assert_eq!(on_known(&record.encode(), now, fp), want, "{name}");
        }
        assert_eq!(on_known("garbage", 0, FP), Known::Replayed);
    }
}
