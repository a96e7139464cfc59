#!/usr/bin/env node
// A native-solc-compatible front end over solc-js, for py-solc-x, Brownie and forge.
// Answers `--version` and `--standard-json` (input on stdin, output on stdout, unbounded).
'use strict';
const fs = require('fs');
const path = require('path');

const projectRoot = path.resolve(__dirname, '..');
// Resolved from this file's folder: the repo's node_modules, or the private copy tools/setup.sh
// installs beside ~/.solcx so the compiler keeps working if this checkout moves.
const solc = require('solc');

function parseArgs(argv) {
  const args = { standardJson: false, version: false, basePath: null, includePaths: [], allowPaths: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--version') args.version = true;
    else if (a === '--standard-json') args.standardJson = true;
    else if (a === '--base-path') args.basePath = argv[++i];
    else if (a === '--include-path') args.includePaths.push(argv[++i]);
    else if (a === '--allow-paths') args.allowPaths.push(...argv[++i].split(','));
    else if (a.startsWith('--base-path=')) args.basePath = a.slice(12);
    else if (a.startsWith('--include-path=')) args.includePaths.push(a.slice(15));
    else if (a.startsWith('--allow-paths=')) args.allowPaths.push(...a.slice(14).split(','));
  }
  return args;
}

function remap(importPath, remappings) {
  let best = null;
  for (const r of remappings) {
    const body = r.includes(':') ? r.slice(r.indexOf(':') + 1) : r;
    const eq = body.indexOf('=');
    if (eq < 0) continue;
    const prefix = body.slice(0, eq);
    if (importPath.startsWith(prefix) && (!best || prefix.length > best.prefix.length)) {
      best = { prefix, target: body.slice(eq + 1) };
    }
  }
  return best ? best.target + importPath.slice(best.prefix.length) : importPath;
}

function makeImportCallback(args, remappings) {
  const roots = [args.basePath || process.cwd(), ...args.includePaths, projectRoot, '/'];
  return function findImports(importPath) {
    const candidates = [importPath, remap(importPath, remappings)];
    if (importPath.startsWith('@openzeppelin/')) {
      candidates.push(path.join('node_modules', importPath));
    }
    for (const candidate of candidates) {
      for (const root of roots) {
        const full = path.isAbsolute(candidate) ? candidate : path.join(root, candidate);
        if (fs.existsSync(full) && fs.statSync(full).isFile()) {
          return { contents: fs.readFileSync(full, 'utf8') };
        }
      }
    }
    return { error: `File not found: ${importPath}` };
  };
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return;
  }
  if (!args.standardJson) {
    process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
    process.exit(1);
  }
  const input = fs.readFileSync(0, 'utf8');
  let remappings = [];
  try {
    remappings = (JSON.parse(input).settings || {}).remappings || [];
  } catch (e) {
    // solc reports malformed input itself.
  }
  const output = solc.compile(input, { import: makeImportCallback(args, remappings) });
  process.stdout.write(output);
}

main();
