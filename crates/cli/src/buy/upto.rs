//! The decisions of buying a metered (x402 `upto`) offer, as pure functions: which of the
//! 402's requirements would be authorized, whether the payer's one-time Permit2 approval of
//! the token is needed (and for how much), and the Permit2 witness authorization each
//! purchased request is signed as.
//!
//! `obol buy http --scheme upto` makes these decisions, in this order, before it sends the
//! approval (through its chain edge, `buy::chain`) or signs anything; without `--scheme upto` it signs
//! `exact` and says the seller also sells per token ([`super::plan::metered_notice`]). The
//! buyer spends the pool (PurchaseRequest `scheme: upto`, items as
//! [`super::pool::sign_upto`] writes them).

use obol_api::purchase_request::PurchaseRequest;
use obol_x402::permit2::{PERMIT2_ADDRESS, UPTO_PROXY_ADDRESS};
use obol_x402::wire::{Permit2Authorization, Permitted, SCHEME_UPTO, UptoWitness};
use obol_x402::{Address, Network, U256};

use super::plan::{Offered, Refusal, Want, accepted_price};

/// The `upto` requirement to authorize: its maximum per request, and the facilitator signer
/// the witness must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UptoChoice {
    /// The requirement (`amount` is the most one request may be charged).
    pub offered: Offered,
    /// `extra.facilitatorAddress`.
    pub facilitator: Address,
}

/// Picks the `upto` requirement to authorize, or refuses: `upto` on `want.network` in
/// `want.asset`, by Permit2, naming its facilitator signer, a maximum above 0 that is at most
/// `--max-price` or was confirmed. `Ok(None)` when the 402 offers no `upto` at all (the caller
/// buys `exact`).
pub fn choose_upto(offers: &[Offered], want: &Want) -> Result<Option<UptoChoice>, Refusal> {
    let upto: Vec<&Offered> = offers.iter().filter(|o| o.scheme == "upto").collect();
    if upto.is_empty() {
        return Ok(None);
    }
    let Some(o) = upto.iter().copied().find(|o| {
        Network::resolve(&o.network).is_ok_and(|n| n.chain_id == want.network.chain_id)
            && o.asset == want.asset
    }) else {
        return Err(Refusal::Invalid(format!(
            "the seller's upto offers are on other chains or in other tokens than {} on {}",
            want.asset.to_checksum(None),
            want.network.name
        )));
    };
    let extra = o.extra.as_ref();
    let method = extra
        .and_then(|x| x.asset_transfer_method.clone())
        .unwrap_or_default();
    if method != "permit2" {
        return Err(Refusal::TransferMethod(method));
    }
    let Some(facilitator) = extra.and_then(|x| x.facilitator_address) else {
        return Err(Refusal::Invalid(
            "the seller's upto offer names no facilitatorAddress: an authorization would name nobody allowed to settle it".into(),
        ));
    };
    accepted_price(o.amount, want)?;
    Ok(Some(UptoChoice {
        offered: o.clone(),
        facilitator,
    }))
}

/// What to do about the payer's Permit2 allowance before signing `count` authorizations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// The allowance covers every authorization at its maximum: nothing to send.
    Enough,
    /// `approve(PERMIT2, amount)` on the token first (unlimited, as Permit2 payers give it once).
    Approve {
        /// The allowance asked for.
        amount: U256,
        /// What the payer would otherwise be short of (`count × maximum + outstanding −
        /// allowance`).
        short: U256,
    },
}

/// What the chain says, read before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainFacts {
    /// The token's `allowance(payer, PERMIT2)`.
    pub allowance: U256,
    /// Whether Permit2 has code at its canonical address.
    pub permit2_deployed: bool,
    /// Whether the upto proxy has code at its canonical address.
    pub proxy_deployed: bool,
}

/// What the payer's existing `upto` purchases (`purchases`, e.g. those of the namespace) can
/// still draw through Permit2: for each PurchaseRequest of scheme `upto` signed by `payer` on
/// the same token, its maximum (`price`) times its authorizations not known spent (`count`
/// minus the buyer's `status.spent`; all of them before the buyer reported). Expired ones
/// still count: the estimate errs towards a larger allowance, never a smaller one. A price
/// that does not parse is refused rather than counted as 0.
pub fn outstanding(
    purchases: &[PurchaseRequest],
    payer: Address,
    token: Address,
) -> Result<U256, Refusal> {
    let mut total = U256::ZERO;
    for p in purchases {
        let spec = &p.spec;
        let same = |a: &str| a.parse::<Address>().is_ok_and(|a| a == payer);
        let same_token = spec.asset.parse::<Address>().is_ok_and(|a| a == token);
        if spec.scheme.as_deref() != Some(SCHEME_UPTO) || !same(&spec.payer) || !same_token {
            continue;
        }
        let price: U256 = spec.price.parse().map_err(|_| {
            Refusal::Invalid(format!(
                "PurchaseRequest {}: price {:?} is not a number",
                p.metadata.name.as_deref().unwrap_or_default(),
                spec.price
            ))
        })?;
        let spent = p.status.as_ref().and_then(|s| s.spent).unwrap_or(0);
        let left = U256::from(spec.count.saturating_sub(spent));
        total = price
            .checked_mul(left)
            .and_then(|v| v.checked_add(total))
            .ok_or_else(|| Refusal::Invalid("outstanding upto maxima overflow".into()))?;
    }
    Ok(total)
}

/// Whether the one-time approval is needed for `count` authorizations of `maximum` each on
/// top of the payer's `outstanding` ones ([`outstanding`]: an allowance that covers only the
/// new batch would let the older authorizations fail); refuses when Permit2 or the proxy is
/// missing on the chain (an approval to an empty address could be taken by whatever is
/// deployed there later) or the total overflows.
pub fn approval(
    facts: ChainFacts,
    count: u64,
    maximum: U256,
    outstanding: U256,
) -> Result<Approval, Refusal> {
    if !facts.permit2_deployed {
        return Err(Refusal::Invalid(format!(
            "no Permit2 at {}: nothing to approve to",
            PERMIT2_ADDRESS.to_checksum(None)
        )));
    }
    if !facts.proxy_deployed {
        return Err(Refusal::Invalid(format!(
            "no x402UptoPermit2Proxy at {}: an upto authorization could not be settled",
            UPTO_PROXY_ADDRESS.to_checksum(None)
        )));
    }
    let need = maximum
        .checked_mul(U256::from(count))
        .and_then(|n| n.checked_add(outstanding))
        .ok_or_else(|| Refusal::Invalid("count × maximum overflows".into()))?;
    if facts.allowance >= need {
        return Ok(Approval::Enough);
    }
    Ok(Approval::Approve {
        amount: U256::MAX,
        short: need - facts.allowance,
    })
}

/// The Permit2 witness authorization of one purchased request: `maximum` of the token to the
/// upto proxy as spender, the seller and the facilitator signer in the witness, valid from now
/// (`valid_after` 0) until `deadline`.
pub fn authorization(
    payer: Address,
    choice: &UptoChoice,
    nonce: U256,
    deadline: u64,
) -> Permit2Authorization {
    Permit2Authorization {
        from: payer,
        permitted: Permitted {
            token: choice.offered.asset,
            amount: choice.offered.amount,
        },
        spender: UPTO_PROXY_ADDRESS,
        nonce,
        deadline,
        witness: UptoWitness {
            to: choice.offered.pay_to,
            facilitator: choice.facilitator,
            valid_after: 0,
        },
    }
}

#[cfg(test)]
#[path = "upto_tests.rs"]
mod tests;
