// Reads the verifier's discovery documents with unmodified third-party code and prints one JSON
// line with what each said; the Rust test that runs this script makes the assertions.
//
// - `/openapi.json` through @seriousme/openapi-schema-validator (the OpenAPI 3.1 JSON Schema);
// - a 402 through the official client (@x402/core `x402HTTPClient.getPaymentRequiredResponse`,
//   which decodes PAYMENT-REQUIRED), then its `extensions.bazaar` through @x402/extensions
//   (`validateAndExtract`, `validateDiscoveryExtensionSpec`, and `extractDiscoveryInfo` as a
//   facilitator does for a payment that echoes the extensions).
//
// stdin: {"openapi": <document>, "broken": <a broken copy>, "headers": {<name>: <value>}, "body": <402 body JSON>}
"use strict";

const { Validator } = require("@seriousme/openapi-schema-validator");
const { x402Client, x402HTTPClient } = require("@x402/core/client");
const bazaar = require("@x402/extensions/bazaar");

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));

  const validator = new Validator();
  const openapi = await validator.validate(input.openapi);
  // A copy the test broke on purpose: the validator is live, not a check that always passes.
  const broken = input.broken ? await new Validator().validate(input.broken) : null;

  const headers = Object.fromEntries(Object.entries(input.headers).map(([k, v]) => [k.toLowerCase(), v]));
  const client = new x402HTTPClient(new x402Client());
  const required = client.getPaymentRequiredResponse((name) => headers[name.toLowerCase()], input.body);
  const extension = required.extensions && required.extensions.bazaar;
  const extracted = extension ? bazaar.validateAndExtract(extension) : null;
  const spec = extension ? bazaar.validateDiscoveryExtensionSpec(extension) : null;
  const payment = {
    x402Version: required.x402Version,
    resource: required.resource,
    accepted: required.accepts[0],
    payload: {},
    extensions: required.extensions,
  };
  const discovered = bazaar.extractDiscoveryInfo(payment, required.accepts[0]);

  console.log(JSON.stringify({
    openapi: { valid: openapi.valid, version: validator.version, errors: openapi.errors || null },
    broken: broken && { valid: broken.valid },
    paymentRequired: { x402Version: required.x402Version, resource: required.resource, accepts: required.accepts },
    bazaar: { present: Boolean(extension), extracted, spec },
    discovered,
  }));
}

main().catch((error) => {
  console.error(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
