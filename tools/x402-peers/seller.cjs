// A seller protected by the official x402 Express middleware (@x402/express), for testing our
// buyer against a payment gate nobody here wrote. Test infrastructure; never for real funds.
//
//   GET /paid/*   0.001 USDC on eip155:84532 to PAY_TO, settled through FACILITATOR_URL
//   GET /health   free
//
// Environment: FACILITATOR_URL, PAY_TO (required), SELLER_PORT (0 = any). Prints
// `listening on http://127.0.0.1:PORT` when ready.
"use strict";

const express = require("express");
const { paymentMiddleware, x402ResourceServer } = require("@x402/express");
const { HTTPFacilitatorClient } = require("@x402/core/http");
const { ExactEvmScheme } = require("@x402/evm/exact/server");

const facilitatorUrl = process.env.FACILITATOR_URL;
const payTo = process.env.PAY_TO;
if (!facilitatorUrl || !payTo) {
  console.error("seller: FACILITATOR_URL and PAY_TO are required");
  process.exit(2);
}

const resourceServer = new x402ResourceServer(new HTTPFacilitatorClient({ url: facilitatorUrl }))
  .register("eip155:84532", new ExactEvmScheme());

const app = express();
app.get("/health", (_req, res) => res.json({ ok: true }));
app.use(
  paymentMiddleware(
    {
      "GET /paid/*": {
        accepts: { scheme: "exact", price: "$0.001", network: "eip155:84532", payTo },
        description: "A resource sold through @x402/express",
      },
    },
    resourceServer,
  ),
);
app.get("/paid/*path", (req, res) => res.json({ seller: "x402-express", path: req.path }));

const server = app.listen(Number(process.env.SELLER_PORT || 0), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 500).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
