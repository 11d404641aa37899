//! Signing a pool of authorizations and packing it into ConfigMaps (pure but for the random
//! nonces, which the caller supplies).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use obol_api::purchase_request::{self as purch, PoolShard};
use obol_x402::wire::Authorization;
use obol_x402::{B256, PrivateKey, TokenDomain, U256};
use serde_json::json;

/// What every authorization of a batch is signed for.
#[derive(Debug, Clone)]
pub struct Terms {
    /// The token's domain.
    pub domain: TokenDomain,
    /// The seller.
    pub pay_to: obol_x402::Address,
    /// The price.
    pub amount: U256,
    /// Unix seconds after which they are no longer valid.
    pub valid_before: u64,
}

/// Signs one authorization per nonce, each as the buyer's pre-signed format
/// (`{id, payment: {x402Version: 2, payload}}`), serialized.
pub fn sign(key: &PrivateKey, terms: &Terms, nonces: &[B256]) -> anyhow::Result<Vec<String>> {
    nonces
        .iter()
        .map(|nonce| {
            let authorization = Authorization {
                from: key.address(),
                to: terms.pay_to,
                value: terms.amount,
                valid_after: 0,
                valid_before: terms.valid_before,
                nonce: *nonce,
            };
            let payload = obol_x402::eip3009::sign_payload(key, &terms.domain, authorization)
                .map_err(|e| anyhow::anyhow!("signing failed: {e}"))?;
            let item = json!({"id": format!("{nonce}"), "payment": {"x402Version": 2, "payload": payload}});
            Ok(serde_json::to_string(&item)?)
        })
        .collect()
}

/// Signs one Permit2 witness authorization (x402 `upto`) per nonce for `choice`'s maximum,
/// valid until `deadline`, on chain `chain_id`, each in the buyer's pre-signed format
/// (`{id, payment: {x402Version: 2, payload: {signature, permit2Authorization}}}`, `id` the
/// nonce in decimal), serialized. Permit2 nonces are unordered (a bitmap), so random 256-bit
/// nonces never collide with the payer's other authorizations.
pub fn sign_upto(
    key: &PrivateKey,
    chain_id: u64,
    choice: &super::upto::UptoChoice,
    deadline: u64,
    nonces: &[B256],
) -> anyhow::Result<Vec<String>> {
    nonces
        .iter()
        .map(|nonce| {
            let nonce = U256::from_be_bytes(nonce.0);
            let authorization = super::upto::authorization(key.address(), choice, nonce, deadline);
            let payload = obol_x402::permit2::sign_payload(key, chain_id, authorization)
                .map_err(|e| anyhow::anyhow!("signing failed: {e}"))?;
            let item =
                json!({"id": nonce.to_string(), "payment": {"x402Version": 2, "payload": payload}});
            Ok(serde_json::to_string(&item)?)
        })
        .collect()
}

/// `count` random nonces from the thread's cryptographically secure generator (seeded from
/// the operating system).
pub fn nonces(count: usize) -> Vec<B256> {
    use rand::RngCore as _;
    let mut rng = rand::rng();
    (0..count)
        .map(|_| {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            B256::from(b)
        })
        .collect()
}

/// The ConfigMaps of a batch: `items` split by [`purch::shard`], named from `first_index` on,
/// owned by the request, immutable. Returns them with the spec's shard entries.
pub fn config_maps(
    name: &str,
    namespace: &str,
    owner: &OwnerReference,
    first_index: usize,
    items: &[String],
    expires_at: &str,
) -> Vec<(ConfigMap, PoolShard)> {
    let sizes: Vec<usize> = items.iter().map(String::len).collect();
    purch::shard(&sizes)
        .into_iter()
        .enumerate()
        .map(|(i, range)| {
            let cm_name = purch::pool_config_map(name, first_index + i);
            let count = range.len() as u64;
            let body = format!("[{}]", items[range].join(","));
            let cm = ConfigMap {
                metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    name: Some(cm_name.clone()),
                    namespace: Some(namespace.to_owned()),
                    labels: Some(BTreeMap::from([
                        (purch::POOL_LABEL.to_owned(), name.to_owned()),
                        (
                            obol_api::labels::MANAGED_BY.to_owned(),
                            crate::sell::FIELD_MANAGER.to_owned(),
                        ),
                    ])),
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(purch::POOL_KEY.to_owned(), body)])),
                immutable: Some(true),
                ..Default::default()
            };
            let shard = PoolShard {
                config_map: cm_name,
                count,
                expires_at: expires_at.to_owned(),
            };
            (cm, shard)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Public Anvil dev key #1 (test-only).
    const KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

    #[test]
    fn signed_items_recover_to_the_payer_and_shard_under_the_limits() {
        let key: PrivateKey = KEY.parse().unwrap();
        let network = obol_x402::Network::resolve("base-sepolia").unwrap();
        let terms = Terms {
            domain: network.usdc_domain().unwrap(),
            pay_to: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
                .parse()
                .unwrap(),
            amount: U256::from(1000u64),
            valid_before: 2_000_000_000,
        };
        let n = nonces(1201);
        assert_eq!(
            n.iter().collect::<std::collections::HashSet<_>>().len(),
            1201
        );
        let items = sign(&key, &terms, &n).unwrap();
        let first: serde_json::Value = serde_json::from_str(&items[0]).unwrap();
        let payload: obol_x402::wire::ExactEvmPayload =
            serde_json::from_value(first["payment"]["payload"].clone()).unwrap();
        let message = obol_x402::eip3009::TransferWithAuthorization::from(&payload.authorization);
        let signer =
            obol_x402::eip3009::recover_signer(&terms.domain, &message, &payload.signature)
                .unwrap();
        assert_eq!(signer, key.address());
        assert_eq!(first["id"], format!("{}", n[0]));
        let owner = OwnerReference {
            uid: "u".into(),
            ..OwnerReference::default()
        };
        let cms = config_maps("demo", "ns", &owner, 2, &items, "2033-05-18T03:33:20Z");
        assert_eq!(cms.len(), 3);
        assert_eq!(cms[0].0.metadata.name.as_deref(), Some("purch-demo-2"));
        assert_eq!(cms.iter().map(|(_, s)| s.count).sum::<u64>(), 1201);
        for (cm, shard) in &cms {
            let text = &cm.data.as_ref().unwrap()[purch::POOL_KEY];
            let parsed: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
            assert_eq!(parsed.len() as u64, shard.count);
            assert!(text.len() < purch::MAX_POOL_BYTES_PER_CONFIGMAP);
            assert_eq!(cm.immutable, Some(true));
        }
    }

    #[test]
    fn upto_items_are_permit2_witness_authorizations_of_the_payer() {
        use crate::buy::plan::Offered;
        let key: PrivateKey = KEY.parse().unwrap();
        let mut extra = obol_x402::wire::Eip712Extra::new("USDC", "2");
        extra.asset_transfer_method = Some("permit2".into());
        let choice = crate::buy::upto::UptoChoice {
            offered: Offered {
                version: obol_x402::X402Version::V2,
                scheme: "upto".into(),
                network: "eip155:84532".into(),
                amount: U256::from(2400u64),
                asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
                    .parse()
                    .unwrap(),
                pay_to: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
                    .parse()
                    .unwrap(),
                max_timeout_seconds: 300,
                extra: Some(extra),
            },
            facilitator: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
                .parse()
                .unwrap(),
        };
        let n = nonces(3);
        let items = sign_upto(&key, 84_532, &choice, 2_000_000_000, &n).unwrap();
        assert_eq!(items.len(), 3);
        for (item, nonce) in items.iter().zip(&n) {
            let item: serde_json::Value = serde_json::from_str(item).unwrap();
            let nonce = U256::from_be_bytes(nonce.0);
            assert_eq!(item["id"], nonce.to_string());
            assert_eq!(item["payment"]["x402Version"], 2);
            let payload: obol_x402::wire::UptoEvmPayload =
                serde_json::from_value(item["payment"]["payload"].clone()).unwrap();
            let a = &payload.permit2_authorization;
            assert_eq!(
                (a.nonce, a.deadline, a.permitted.amount, a.witness.to),
                (
                    nonce,
                    2_000_000_000,
                    U256::from(2400u64),
                    choice.offered.pay_to
                )
            );
            let signer = obol_x402::permit2::recover_signer(84_532, a, &payload.signature).unwrap();
            assert_eq!(signer, key.address());
        }
    }
}
