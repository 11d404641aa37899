// Pays for one request with the official x402 client (@x402/fetch + @x402/evm) and prints one
// JSON line: {status, body, sent: {header, value}, receipt} where `sent` is the payment header
// the client attached (so a test can replay it) and `receipt` maps PAYMENT-RESPONSE /
// X-PAYMENT-RESPONSE, when the answer carried them, to their decoded JSON. With a JSON body the
// request is a POST of it (a chat completion for a metered offer). SCHEMES names the schemes
// the client registers (default `exact`; `upto` pays a metered offer per token through Permit2,
// which needs the payer's one-time approval of the token to Permit2). Test infrastructure;
// test keys only.
//
//   BUYER_KEY=0x… [SCHEMES=upto,exact] node pay.cjs <url> [json-body]
"use strict";

const { wrapFetchWithPayment, x402Client } = require("@x402/fetch");
const { registerExactEvmScheme } = require("@x402/evm/exact/client");
const { UptoEvmScheme } = require("@x402/evm/upto/client");
const { privateKeyToAccount } = require("viem/accounts");

async function main() {
  const [url, body] = process.argv.slice(2);
  const key = process.env.BUYER_KEY;
  if (!url || !key) {
    console.error("usage: BUYER_KEY=0x… [SCHEMES=upto,exact] node pay.cjs <url> [json-body]");
    process.exit(2);
  }
  const signer = privateKeyToAccount(key);
  const client = new x402Client();
  // The client pays the first of the 402's requirements it has a scheme for.
  for (const name of (process.env.SCHEMES || "exact").split(",").filter(Boolean)) {
    if (name === "exact") registerExactEvmScheme(client, { signer });
    else if (name === "upto") client.register("eip155:*", new UptoEvmScheme(signer));
    else {
      console.error(`pay.cjs: unknown scheme ${name} (known: exact, upto)`);
      process.exit(2);
    }
  }
  let sent = null;
  const recording = async (input, init) => {
    const headers = new Headers(init && init.headers ? init.headers : input instanceof Request ? input.headers : undefined);
    for (const name of ["PAYMENT-SIGNATURE", "X-PAYMENT"]) {
      if (headers.has(name)) sent = { header: name, value: headers.get(name) };
    }
    return fetch(input, init);
  };
  const init = body === undefined ? undefined
    : { method: "POST", headers: { "content-type": "application/json" }, body };
  const response = await wrapFetchWithPayment(recording, client)(url, init);
  // The settlement receipt as this client received it (v2 and v1 header names).
  const receipt = {};
  for (const name of ["PAYMENT-RESPONSE", "X-PAYMENT-RESPONSE"]) {
    const value = response.headers.get(name);
    if (value) receipt[name] = JSON.parse(Buffer.from(value, "base64").toString("utf8"));
  }
  console.log(JSON.stringify({ status: response.status, body: await response.text(), sent, receipt }));
}

main().catch((error) => {
  console.error(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
