#!/usr/bin/env node
// Corvid runs its TypeScript sources natively, which needs Node 24 (the project pins it).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`corvid: needs Node 24 or later (this is ${process.version}); run it through "npx corvid" or "npm exec corvid" in the project\n`);
  process.exit(2);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
});
