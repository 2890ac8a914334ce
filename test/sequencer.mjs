// Jest's default order (slowest and previously failed first), except that the suites which restart the
// shared control plane's own processes (API server, etcd) run last: the controller-manager, scheduler
// and kwok back off for up to ~30 s after such a restart, which must not eat into other suites' waits.
import Sequencer from '@jest/test-sequencer';

const LAST = [/control-plane-faults\.e2e\.test\.ts$/];

export default class ControlPlaneFaultsLast extends Sequencer {
  async sort(tests) {
    const sorted = await super.sort(tests);
    const last = (t) => LAST.some((re) => re.test(t.path));
    return [...sorted.filter((t) => !last(t)), ...sorted.filter(last)];
  }
}
