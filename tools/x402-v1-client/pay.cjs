// Pays for one request with the official x402 v1 client (npm x402-fetch 1.2.0 on x402 1.2.0) and
// prints one JSON line: {status, body, sent, receipt} where `sent` is the X-PAYMENT header the
// client attached and `receipt` the X-PAYMENT-RESPONSE it got back, if any. Test
// infrastructure; test keys only. The client signs locally (no RPC call).
//
//   BUYER_KEY=0x… node pay.cjs <url>
"use strict";

const { wrapFetchWithPayment, createSigner } = require("x402-fetch");

async function main() {
  const url = process.argv[2];
  const key = process.env.BUYER_KEY;
  if (!url || !key) {
    console.error("usage: BUYER_KEY=0x… node pay.cjs <url>");
    process.exit(2);
  }
  const signer = await createSigner("base-sepolia", key);
  let sent = null;
  const recording = async (input, init) => {
    const headers = new Headers(init && init.headers ? init.headers : undefined);
    if (headers.has("X-PAYMENT")) sent = headers.get("X-PAYMENT");
    return fetch(input, init);
  };
  const response = await wrapFetchWithPayment(recording, signer)(url);
  console.log(JSON.stringify({
    status: response.status,
    body: await response.text(),
    sent,
    receipt: response.headers.get("X-PAYMENT-RESPONSE"),
  }));
}

main().catch((error) => {
  console.error(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
