// Scenarios 1-12 (scenarios.ts) on nodes running flannel: vxlan backend, iptables-mode masquerade, RHEL's strict
// rp_filter. Run as root: npx node --test --test-concurrency=1 test/e2e/system-flannel.e2e.ts (or npm run test:e2e)
import { systemScenarios } from './scenarios.ts';

systemScenarios('flannel');
