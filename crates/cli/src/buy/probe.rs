//! Asking a seller for its 402 (v2 `PAYMENT-REQUIRED` header first, as TS clients do, else the
//! v1 JSON body).

use std::time::Duration;

use obol_x402::codec;
use obol_x402::wire::PaymentRequired;

use super::plan::Refusal;

/// What the probe saw.
#[derive(Debug)]
pub struct Probed {
    /// The decoded 402.
    pub required: PaymentRequired,
}

/// GETs `url` without paying and reads its 402.
pub async fn probe(url: &reqwest::Url) -> anyhow::Result<Probed> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let resp = http
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the seller at {url}: {e}"))?;
    let status = resp.status().as_u16();
    if status != 402 {
        return Err(crate::failure::Failure::new(
            crate::failure::REFUSED,
            Refusal::NotPaymentGated {
                url: url.to_string(),
                status,
            }
            .to_string(),
        )
        .into());
    }
    let header = resp
        .headers()
        .get(codec::headers::PAYMENT_REQUIRED)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.bytes().await.unwrap_or_default();
    let required = match header {
        Some(h) => codec::decode_payment_required(&h).map(PaymentRequired::V2),
        None => codec::parse_payment_required_body(&body),
    };
    let required = required.map_err(|e| {
        crate::failure::Failure::new(
            crate::failure::REFUSED,
            Refusal::Unreadable(e.to_string()).to_string(),
        )
    })?;
    Ok(Probed { required })
}
