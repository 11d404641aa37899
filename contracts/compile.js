#!/usr/bin/env node
// Compiles contracts/src/*.sol with solc-js and writes one artifact per contract to
// contracts/out/<Name>.json: {contractName, compiler, abi, bytecode, deployedBytecode}.
// The artifacts are committed (Rust binds them with `sol!`), so building needs no compiler; this
// script and a test in obol-registrar check that they still match the sources.
//
//   NODE_PATH="$(scripts/tools/solc.sh)" node contracts/compile.js [--check]
//
// --check writes nothing and exits 1 when an artifact differs from a fresh compile.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const root = __dirname;
const srcDir = path.join(root, 'src');
const outDir = path.join(root, 'out');
const check = process.argv.includes('--check');

const sources = {};
for (const file of fs.readdirSync(srcDir).filter((f) => f.endsWith('.sol')).sort()) {
  // Unit names are relative, so the embedded metadata hash does not depend on the checkout path.
  sources[`src/${file}`] = { content: fs.readFileSync(path.join(srcDir, file), 'utf8') };
}

const input = {
  language: 'Solidity',
  sources,
  settings: {
    evmVersion: 'cancun',
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === 'error');
for (const e of output.errors || []) process.stderr.write(`${e.formattedMessage}\n`);
if (errors.length > 0) process.exit(1);

let drift = 0;
const written = new Set();
for (const unit of Object.keys(output.contracts).sort()) {
  for (const [name, c] of Object.entries(output.contracts[unit])) {
    // Interfaces have no bytecode and need no artifact.
    if (!c.evm.bytecode.object) continue;
    const artifact = {
      contractName: name,
      compiler: `solc-js ${solc.version()}`,
      abi: c.abi,
      bytecode: `0x${c.evm.bytecode.object}`,
      deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
    };
    const text = `${JSON.stringify(artifact, null, 2)}\n`;
    const file = path.join(outDir, `${name}.json`);
    written.add(`${name}.json`);
    const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (old === text) continue;
    if (check) {
      process.stderr.write(`contracts/out/${name}.json differs from a fresh compile\n`);
      drift += 1;
    } else {
      fs.mkdirSync(outDir, { recursive: true });
      fs.writeFileSync(file, text);
      process.stderr.write(`wrote contracts/out/${name}.json\n`);
    }
  }
}
if (check) {
  for (const f of fs.existsSync(outDir) ? fs.readdirSync(outDir) : []) {
    if (f.endsWith('.json') && !written.has(f)) {
      process.stderr.write(`contracts/out/${f} has no source contract\n`);
      drift += 1;
    }
  }
}
if (drift > 0) {
  process.stderr.write('regenerate with: NODE_PATH="$(scripts/tools/solc.sh)" node contracts/compile.js\n');
  process.exit(1);
}
