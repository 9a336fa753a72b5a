#!/usr/bin/env node
// Corvid needs Node 24 (the project pins it). From a clone it runs its TypeScript sources natively; the npm package
// ships them compiled into dist/ (Node refuses to strip types under node_modules), and dist/ wins when present.
import { existsSync } from 'node:fs';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`corvid: needs Node 24 or later (this is ${process.version}); run it through "npx corvid" or "npm exec corvid" in the project\n`);
  process.exit(2);
}
const dist = new URL('../dist/src/cli/main.js', import.meta.url);
const { main } = existsSync(dist) ? await import(dist.href) : await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
});
