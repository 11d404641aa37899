// Signs a payment with the official x402 client (@x402/core + @x402/evm) without sending it:
// reads a v2 PaymentRequired as JSON (the decoded PAYMENT-REQUIRED header) from stdin and prints
// the PaymentPayload the client would send, as one JSON line. The client picks the requirement
// as it would in @x402/fetch (first one it has a scheme for). Test infrastructure; test keys only.
//
//   BUYER_KEY=0x… [SCHEMES=exact,upto] node sign.cjs < payment-required.json
"use strict";

const { x402Client } = require("@x402/core/client");
const { ExactEvmScheme } = require("@x402/evm/exact/client");
const { UptoEvmScheme } = require("@x402/evm/upto/client");
const { privateKeyToAccount } = require("viem/accounts");

const SCHEMES = { exact: ExactEvmScheme, upto: UptoEvmScheme };

async function main() {
  const key = process.env.BUYER_KEY;
  if (!key) {
    console.error("usage: BUYER_KEY=0x… [SCHEMES=exact,upto] node sign.cjs < payment-required.json");
    process.exit(2);
  }
  const names = (process.env.SCHEMES || "exact,upto").split(",").filter(Boolean);
  const account = privateKeyToAccount(key);
  const client = new x402Client();
  for (const name of names) {
    const Scheme = SCHEMES[name];
    if (!Scheme) {
      console.error(`sign.cjs: unknown scheme ${name} (known: ${Object.keys(SCHEMES).join(", ")})`);
      process.exit(2);
    }
    client.register("eip155:*", new Scheme(account));
  }
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const required = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const payload = await client.createPaymentPayload(required);
  console.log(JSON.stringify(payload));
}

main().catch((error) => {
  console.error(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
