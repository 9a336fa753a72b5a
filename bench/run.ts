// Runs every benchmark in turn: `npm run bench`. Add a module by adding a line to BENCHES.
const BENCHES: [string, () => Promise<unknown>][] = [
  ['plan', async () => (await import('./plan.ts')).benchPlan()],
  ['validate', async () => (await import('./validate.ts')).benchValidate()],
  ['agent', async () => (await import('./agent.ts')).benchAgent()],
  ['sync', async () => (await import('./sync.ts')).benchSync()],
  ['failover', async () => (await import('./failover.ts')).benchFailover()],
  ['throughput', async () => (await import('./throughput.ts')).benchThroughput()],
];

for (const [name, run] of BENCHES) {
  console.log(`== ${name}`);
  await run();
}
