// Scenarios 1 and 4-10 (scenarios.ts; 2, 3, 11 and 12 run on flannel only) on nodes running Calico: calico-ipam (pod
// addresses from the IPAM blocks in the API server's BlockAffinities, no node.spec.podCIDR), VXLAN, Felix's rules,
// systemd's loose rp_filter.
// Run as root: npx node --test --test-concurrency=1 test/e2e/system-calico.e2e.ts (or npm run test:e2e)
import { systemScenarios } from './scenarios.ts';

systemScenarios('calico');
