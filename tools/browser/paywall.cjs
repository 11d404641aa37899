// Drives Debian's Chromium (headless, through playwright-core) through the verifier's HTML
// paywall, once per scenario, and prints one JSON line per scenario: what the page showed. The
// Rust test that runs this script (crates/verifier/tests/gateway_live.rs) makes the assertions.
//
// The test wallet is an init script that defines `window.ethereum` (EIP-1193). Its `request`
// goes through a Playwright binding to this process, which answers account and chain calls
// itself and forwards `eth_call` and `eth_signTypedData_v4` to anvil (anvil signs for its
// unlocked dev accounts). The binding is not network traffic from the page, so the page's
// Content-Security-Policy (`connect-src 'self'`) stays in force and is checked: a CSP
// violation on the console fails the scenario.
//
// stdin: {"chromium", "url", "rpc", "chainId", "screenshots", "scenarios": [{"name", "wallet":
// null | {"account", "signer"?, "startChain"?, "rejectSign"?, "refuseSwitch"?}}]}
"use strict";

const { chromium } = require("playwright-core");
const path = require("node:path");

const USER_REJECTED = 4001;
const UNKNOWN_CHAIN = 4902;
const FINAL_STATES = ["paid", "refused", "error-no-wallet", "error-chain", "error-rejected",
  "error-balance", "error-account", "error-wallet", "error-server"];

async function rpc(url, method, params) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = await response.json();
  if (body.error) {
    const error = new Error(body.error.message);
    error.code = body.error.code;
    throw error;
  }
  return body.result;
}

// The wallet's side in this process: one call from the page.
function walletHandler(input, wallet, calls) {
  let chain = wallet.startChain || "0x" + input.chainId.toString(16);
  const fail = (code, message) => ({ error: { code, message } });
  return async (method, params) => {
    calls.push(method);
    switch (method) {
      case "eth_requestAccounts":
      case "eth_accounts":
        return { result: [wallet.account] };
      case "eth_chainId":
        return { result: chain };
      case "wallet_switchEthereumChain": {
        if (wallet.refuseSwitch) return fail(USER_REJECTED, "User rejected the request.");
        const want = params[0].chainId;
        if (BigInt(want) !== BigInt(input.chainId)) return fail(UNKNOWN_CHAIN, "Unrecognized chain ID " + want);
        chain = want;
        return { result: null };
      }
      case "eth_call":
        return { result: await rpc(input.rpc, method, params) };
      case "eth_signTypedData_v4": {
        if (wallet.rejectSign) return fail(USER_REJECTED, "User rejected the request.");
        // A wallet that signs with another key than the account it named (a broken wallet):
        // the verifier must refuse the payment with a reason code.
        const signer = wallet.signer || params[0];
        return { result: await rpc(input.rpc, method, [signer, params[1]]) };
      }
      default:
        return fail(4200, "Unsupported method " + method);
    }
  };
}

// Runs in the page before its own script.
function injectWallet() {
  window.ethereum = {
    isObolTestWallet: true,
    request: async ({ method, params }) => {
      const answer = await window.__obolWallet(method, params || []);
      if (answer.error) {
        const error = new Error(answer.error.message);
        error.code = answer.error.code;
        throw error;
      }
      return answer.result;
    },
  };
}

async function scenario(browser, input, spec) {
  const context = await browser.newContext({ viewport: { width: 900, height: 800 } });
  const page = await context.newPage();
  const console_ = [];
  page.on("console", (m) => console_.push(m.type() + ": " + m.text()));
  page.on("pageerror", (e) => console_.push("pageerror: " + e.message));
  const calls = [];
  if (spec.wallet) {
    const handle = walletHandler(input, spec.wallet, calls);
    await page.exposeFunction("__obolWallet", (method, params) => handle(method, params));
    await page.addInitScript(injectWallet);
  }
  const response = await page.goto(input.url, { waitUntil: "load" });
  const headers = response.headers();
  const shot = (what) => path.join(input.screenshots, spec.name + "-" + what + ".png");
  await page.screenshot({ path: shot("paywall"), fullPage: true });
  const paywall = {
    status: response.status(),
    contentType: headers["content-type"] || "",
    csp: headers["content-security-policy"] || "",
    title: await page.title(),
    price: await page.textContent("#price"),
  };
  await page.click("#pay");
  await page.waitForFunction(
    (states) => states.includes(document.getElementById("status").getAttribute("data-state")),
    FINAL_STATES,
    { timeout: 60000 },
  );
  await page.screenshot({ path: shot("after"), fullPage: true });
  const result = {
    name: spec.name,
    paywall,
    state: await page.getAttribute("#status", "data-state"),
    message: await page.textContent("#status"),
    answer: (await page.isVisible("#answer")) ? await page.textContent("#answer") : null,
    walletCalls: calls,
    console: console_,
    screenshots: [shot("paywall"), shot("after")],
  };
  await context.close();
  return result;
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const browser = await chromium.launch({
    executablePath: input.chromium,
    headless: true,
    // Root in a container: Chromium's sandbox needs user namespaces it may not have.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    for (const spec of input.scenarios) {
      const result = await scenario(browser, input, spec);
      process.stdout.write(JSON.stringify(result) + "\n");
    }
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  process.stderr.write((e && e.stack) || String(e));
  process.exit(1);
});
