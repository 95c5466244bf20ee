import { networkSuite } from './fixtures/network-suite.ts';
import { skippable } from './fixtures/skip.ts';

skippable('network', () => {
  // The router end to end between network namespaces, on malta at 256 and 4 MiB, and its LAN on a VLAN
  // (test/fixtures/network-suite.ts; malta-be runs it too).
  networkSuite();
});
