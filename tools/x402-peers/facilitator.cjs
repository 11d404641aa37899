// A facilitator server around the official x402 reference library (@x402/core + @x402/evm),
// settling on a local chain. The library is a library, not a server: this file only gives it
// HTTP endpoints. Test infrastructure; never for real funds.
//
//   POST /verify   {x402Version, paymentPayload, paymentRequirements} -> VerifyResponse
//   POST /settle   same body                                          -> SettleResponse
//   GET  /supported                                                   -> {kinds, extensions, signers}
//
// Schemes: v2 `exact` and `upto` (Permit2 through the x402UptoPermit2Proxy; its kind's
// `extra.facilitatorAddress` is the signer the payer must name), v1 `exact`.
//
// Environment: RPC_URL (required), FACILITATOR_KEY (required, hex), FACILITATOR_PORT (0 = any),
// NETWORK (CAIP-2, default eip155:84532), V1_NETWORK (default base-sepolia), POLL_MS (how often
// a pending receipt is looked up, default 100).
//
// One key settles every payment. viem reads the account's next nonce for each transaction it
// prepares, so two settlements prepared at once would both take the same nonce and one would be
// refused (the payer, not the facilitator, would then look at fault). Transactions are therefore
// sent one at a time, each after the previous one was accepted by the node; waiting for the
// receipts stays concurrent.
"use strict";

const express = require("express");
const { createWalletClient, http, publicActions, defineChain } = require("viem");
const { privateKeyToAccount } = require("viem/accounts");
const { x402Facilitator } = require("@x402/core/facilitator");
const { toFacilitatorEvmSigner } = require("@x402/evm");
const { ExactEvmScheme } = require("@x402/evm/exact/facilitator");
const { ExactEvmSchemeV1 } = require("@x402/evm/exact/v1/facilitator");
const { UptoEvmScheme } = require("@x402/evm/upto/facilitator");

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`facilitator: ${name} is required`);
    process.exit(2);
  }
  return value;
}

const rpcUrl = required("RPC_URL");
const key = required("FACILITATOR_KEY");
const network = process.env.NETWORK || "eip155:84532";
const v1Network = process.env.V1_NETWORK || "base-sepolia";
const chainId = Number(network.split(":")[1]);

// Always our RPC: viem's built-in chain definitions point at public endpoints.
const chain = defineChain({
  id: chainId,
  name: `local-${chainId}`,
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [rpcUrl] } },
});
const account = privateKeyToAccount(key.startsWith("0x") ? key : `0x${key}`);
// viem polls for a receipt every 4 s on a chain without a block time: a local chain mines at
// once, so a paid request would wait those 4 s for nothing.
const pollingInterval = Number(process.env.POLL_MS || 100);
const client = createWalletClient({ account, chain, transport: http(rpcUrl), pollingInterval })
  .extend(publicActions);

// Sends in order: each waits for the previous one to be accepted (or refused).
let lastSend = Promise.resolve();
function oneAtATime(send) {
  return (...args) => {
    const sent = lastSend.then(() => send(...args));
    lastSend = sent.catch(() => undefined);
    return sent;
  };
}
const signer = toFacilitatorEvmSigner({
  ...client,
  address: account.address,
  writeContract: oneAtATime(client.writeContract),
  sendTransaction: oneAtATime(client.sendTransaction),
});

const facilitator = new x402Facilitator()
  .register(network, new ExactEvmScheme(signer))
  .register(network, new UptoEvmScheme(signer))
  .registerV1(v1Network, new ExactEvmSchemeV1(signer));

const app = express();
app.use(express.json({ limit: "64kb" }));

function handler(method) {
  return async (req, res) => {
    const { paymentPayload, paymentRequirements } = req.body || {};
    if (typeof paymentPayload !== "object" || paymentPayload === null ||
        typeof paymentRequirements !== "object" || paymentRequirements === null) {
      res.status(400).json({ error: "paymentPayload and paymentRequirements must be JSON objects" });
      return;
    }
    try {
      const answer = await facilitator[method](paymentPayload, paymentRequirements);
      res.status(200).json(answer);
    } catch (error) {
      // The library throws on malformed payloads; answer JSON, not Express's HTML 500.
      res.status(400).json({ error: String(error && error.message ? error.message : error) });
    }
  };
}

app.post("/verify", handler("verify"));
app.post("/settle", handler("settle"));
app.get("/supported", (_req, res) => res.json(facilitator.getSupported()));
app.use((error, _req, res, _next) => res.status(400).json({ error: String(error.message || error) }));

const server = app.listen(Number(process.env.FACILITATOR_PORT || 0), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 500).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
