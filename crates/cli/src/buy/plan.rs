//! The decisions of `obol buy`, as pure functions: is the seller's URL acceptable, which of the
//! 402's requirements would be paid, and whether to refuse, all before anything is signed.

use obol_x402::wire::{Accept, Eip712Extra, PaymentRequired};
use obol_x402::{Address, Network, TokenDomain, U256, X402Version};

/// Why `obol buy` refuses; nothing is signed or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a URL, or not http(s).
    #[error("{0:?} is not an http(s) URL")]
    BadUrl(String),
    /// Plain http to a host that is not this machine.
    #[error(
        "refusing plain http to {0}: payments go over https (http is allowed only for loopback, the local stack)"
    )]
    NotHttps(String),
    /// The seller did not answer 402.
    #[error("{url} answered {status}, not 402 Payment Required: nothing to buy there")]
    NotPaymentGated {
        /// The URL probed.
        url: String,
        /// Its answer.
        status: u16,
    },
    /// The 402 could not be read.
    #[error("the seller's 402 could not be read: {0}")]
    Unreadable(String),
    /// No `exact` EVM requirement.
    #[error("the seller accepts no exact EVM payment (offered: {0})")]
    NoExact(String),
    /// Not on the expected network.
    #[error("the seller asks for payment on {offered}, not {expected} (--network)")]
    WrongNetwork {
        /// What the 402 offered.
        offered: String,
        /// `--network`.
        expected: String,
    },
    /// Not in the expected asset.
    #[error(
        "the seller asks for payment in {offered}, not {expected} (--asset, default the network's USDC)"
    )]
    WrongAsset {
        /// What the 402 offered.
        offered: String,
        /// The expected asset.
        expected: String,
    },
    /// The EIP-712 domain or transfer method is not the token's.
    #[error(
        "the seller names the token's EIP-712 domain {offered}, but {expected} is the token's: a signature for it would not be valid"
    )]
    WrongDomain {
        /// What the 402 named.
        offered: String,
        /// The token's domain.
        expected: String,
    },
    /// No domain known for the asset and the 402 names none.
    #[error("the 402 names no EIP-712 domain for asset {0} and none is known for it")]
    UnknownDomain(String),
    /// Only EIP-3009 authorizations are signed here.
    #[error("the seller asks for transfer method {0}; only eip3009 authorizations can be bought")]
    TransferMethod(String),
    /// A free resource.
    #[error("the seller asks for a price of 0: nothing to buy")]
    ZeroPrice,
    /// Above `--max-price`.
    #[error("the seller asks {price} per request, above --max-price {cap}")]
    AboveCap {
        /// The price (decimal USDC).
        price: String,
        /// The cap.
        cap: String,
    },
    /// No `--max-price` and nobody confirmed.
    #[error(
        "the seller asks {price} per request and nobody confirmed it: pass --max-price {price} (or more) to accept it"
    )]
    NotConfirmed {
        /// The price (decimal).
        price: String,
    },
    /// The terms differ from a purchase's (refill).
    #[error(
        "the seller now asks for other terms than purchase {name} was signed for ({detail}); buy again under a new name"
    )]
    TermsChanged {
        /// The purchase.
        name: String,
        /// What differs.
        detail: String,
    },
    /// The key is not the purchase's payer (refill).
    #[error("the key signs for {key}, but purchase {name} was bought by {payer}")]
    OtherPayer {
        /// The purchase.
        name: String,
        /// The key's address.
        key: String,
        /// `spec.payer`.
        payer: String,
    },
    /// Anything else wrong with the request.
    #[error("{0}")]
    Invalid(String),
}

/// Whether `url` may be paid: https anywhere, http only to loopback (`localhost`, 127.0.0.0/8,
/// `::1`).
pub fn check_url(url: &str) -> Result<reqwest::Url, Refusal> {
    let parsed = reqwest::Url::parse(url).map_err(|_| Refusal::BadUrl(url.to_owned()))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let host = parsed.host_str().unwrap_or_default();
            let ip = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || ip
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(parsed)
            } else {
                Err(Refusal::NotHttps(url.to_owned()))
            }
        }
        _ => Err(Refusal::BadUrl(url.to_owned())),
    }
}

/// One requirement of a 402, whichever version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    /// The 402's version.
    pub version: X402Version,
    /// `exact`, ...
    pub scheme: String,
    /// As sent (`base-sepolia`, `eip155:84532`).
    pub network: String,
    /// Price in atomic units.
    pub amount: U256,
    /// Token.
    pub asset: Address,
    /// Recipient.
    pub pay_to: Address,
    /// Longest validity the seller expects of one payment.
    pub max_timeout_seconds: u64,
    /// EIP-712 domain and transfer method.
    pub extra: Option<Eip712Extra>,
}

/// The typed requirements of a 402 (entries this crate cannot read are left out; `unread`
/// counts them).
pub fn offered(required: &PaymentRequired) -> (Vec<Offered>, usize) {
    let mut out = Vec::new();
    let mut unread = 0;
    match required {
        PaymentRequired::V1(r) => {
            for a in &r.accepts {
                match a {
                    Accept::Parsed(q) => out.push(Offered {
                        version: X402Version::V1,
                        scheme: q.scheme.clone(),
                        network: q.network.as_str().to_owned(),
                        amount: q.max_amount_required,
                        asset: q.asset,
                        pay_to: q.pay_to,
                        max_timeout_seconds: q.max_timeout_seconds,
                        extra: q.extra.clone(),
                    }),
                    Accept::Unparsed(_) => unread += 1,
                }
            }
        }
        PaymentRequired::V2(r) => {
            for a in &r.accepts {
                match a {
                    Accept::Parsed(q) => out.push(Offered {
                        version: X402Version::V2,
                        scheme: q.scheme.clone(),
                        network: q.network.as_str().to_owned(),
                        amount: q.amount,
                        asset: q.asset,
                        pay_to: q.pay_to,
                        max_timeout_seconds: q.max_timeout_seconds,
                        extra: q.extra.clone(),
                    }),
                    Accept::Unparsed(_) => unread += 1,
                }
            }
        }
    }
    (out, unread)
}

/// What the buyer wants.
#[derive(Debug, Clone)]
pub struct Want {
    /// `--network`.
    pub network: &'static Network,
    /// `--asset`, else the network's USDC.
    pub asset: Address,
    /// `--max-price` in atomic units.
    pub max_price: Option<U256>,
    /// Whether the user confirmed the price interactively.
    pub confirmed: bool,
    /// Decimals of the asset (display).
    pub decimals: u8,
}

/// The requirement that will be paid, and the domain to sign for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The requirement.
    pub offered: Offered,
    /// The token's EIP-712 domain.
    pub domain: TokenDomain,
}

/// `atomic` as a decimal amount of a `decimals` token.
pub fn decimal(atomic: U256, decimals: u8) -> String {
    match u128::try_from(atomic) {
        Ok(a) => obol_api::price::format_atomic(a, decimals),
        Err(_) => format!("{atomic} atomic units"),
    }
}

/// Picks the requirement to pay, or refuses: exact scheme, on `want.network`, in
/// `want.asset`, EIP-3009 with the token's own EIP-712 domain, a price above 0 that is at most
/// `--max-price` or was confirmed.
pub fn choose(offers: &[Offered], want: &Want) -> Result<Choice, Refusal> {
    let list = |v: &[&Offered], f: &dyn Fn(&Offered) -> String| {
        let mut names: Vec<String> = v.iter().map(|o| f(o)).collect();
        names.dedup();
        names.join(", ")
    };
    let exact: Vec<&Offered> = offers.iter().filter(|o| o.scheme == "exact").collect();
    if exact.is_empty() {
        let all: Vec<&Offered> = offers.iter().collect();
        return Err(Refusal::NoExact(if all.is_empty() {
            "nothing readable".into()
        } else {
            list(&all, &|o| format!("{} on {}", o.scheme, o.network))
        }));
    }
    let on_chain: Vec<&Offered> = exact
        .iter()
        .copied()
        .filter(|o| Network::resolve(&o.network).is_ok_and(|n| n.chain_id == want.network.chain_id))
        .collect();
    if on_chain.is_empty() {
        return Err(Refusal::WrongNetwork {
            offered: list(&exact, &|o| o.network.clone()),
            expected: format!("{} ({})", want.network.name, want.network.caip2().as_str()),
        });
    }
    let Some(o) = on_chain.iter().find(|o| o.asset == want.asset) else {
        return Err(Refusal::WrongAsset {
            offered: list(&on_chain, &|o| o.asset.to_checksum(None)),
            expected: want.asset.to_checksum(None),
        });
    };
    let known = want
        .network
        .usdc_domain()
        .filter(|d| d.verifying_contract == want.asset);
    let domain = match (&o.extra, known) {
        (Some(x), _) if !x.is_eip3009() => {
            return Err(Refusal::TransferMethod(
                x.asset_transfer_method.clone().unwrap_or_default(),
            ));
        }
        (Some(x), Some(k)) if x.name != k.name || x.version != k.version => {
            return Err(Refusal::WrongDomain {
                offered: format!("{}/{}", x.name, x.version),
                expected: format!("{}/{}", k.name, k.version),
            });
        }
        (_, Some(k)) => k,
        (Some(x), None) => TokenDomain::new(
            x.name.clone(),
            x.version.clone(),
            want.network.chain_id,
            want.asset,
        ),
        (None, None) => return Err(Refusal::UnknownDomain(want.asset.to_checksum(None))),
    };
    accepted_price(o.amount, want)?;
    Ok(Choice {
        offered: (*o).clone(),
        domain,
    })
}

/// Whether `amount` (per request) may be signed for: above 0, and at most `--max-price` or
/// confirmed.
pub fn accepted_price(amount: U256, want: &Want) -> Result<(), Refusal> {
    if amount.is_zero() {
        return Err(Refusal::ZeroPrice);
    }
    let price = decimal(amount, want.decimals);
    match want.max_price {
        Some(cap) if amount > cap => Err(Refusal::AboveCap {
            price,
            cap: decimal(cap, want.decimals),
        }),
        Some(_) => Ok(()),
        None if want.confirmed => Ok(()),
        None => Err(Refusal::NotConfirmed { price }),
    }
}

/// What a buyer of `chosen` (an `exact` requirement) should know when the same 402 also sells
/// per token (x402 `upto`, on the same chain and in the same token): `obol buy` signs `exact`
/// authorizations only, so each request costs the seller's approximate price whatever its
/// answer uses, not the tokens it used. `None` when nothing metered is offered.
pub fn metered_notice(offers: &[Offered], chosen: &Offered, decimals: u8) -> Option<String> {
    let same_terms = |o: &&Offered| {
        o.scheme == "upto"
            && o.asset == chosen.asset
            && Network::resolve(&o.network).ok().map(|n| n.chain_id)
                == Network::resolve(&chosen.network).ok().map(|n| n.chain_id)
    };
    let upto = offers.iter().find(same_terms)?;
    Some(format!(
        "  note     the seller also sells per token (x402 upto, at most {} per request); these are exact authorizations: each request costs {}, the seller's approximate price, whatever its answer uses (--scheme upto --rpc-url URL pays per token)",
        decimal(upto.amount, decimals),
        decimal(chosen.amount, decimals),
    ))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
pub(super) mod tests;
