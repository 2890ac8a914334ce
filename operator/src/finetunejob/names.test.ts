import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { configMapName, jobName, labelValue, MAX_JOB_NAME } from './names.js';

const DNS_1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
// Kubernetes object names: DNS subdomains up to 253 characters.
const objectName = fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,80}[a-z0-9])?$/);

describe('jobName', () => {
  it.each([
    ['finance-lora', 'finance-lora-'],
    ['7-day-run', 'j7-day-run-'],
    ['a.b.c', 'a-b-c-'],
    ['x'.repeat(200), 'x'.repeat(MAX_JOB_NAME - 9)],
  ])('%s → starts with %s', (name, prefix) => {
    const n = jobName({ namespace: 'ml', name, uid: 'u1' });
    expect(n.startsWith(prefix)).toBe(true);
    expect(n).toMatch(/-[0-9a-f]{8}$/);
  });

  it('is a DNS-1035 label short enough for indexed pod hostnames, for any name', () => {
    fc.assert(fc.property(objectName, fc.uuid(), (name, uid) => {
      const n = jobName({ namespace: 'ns', name, uid });
      expect(n.length).toBeLessThanOrEqual(MAX_JOB_NAME);
      expect(`${n}-63`).toMatch(DNS_1035);
      expect(configMapName({ namespace: 'ns', name, uid }).length).toBeLessThanOrEqual(63);
    }));
  });

  it('is deterministic, and differs when the uid differs (a re-created FineTuneJob gets a new Job)', () => {
    fc.assert(fc.property(objectName, fc.uuid(), fc.uuid(), (name, uid1, uid2) => {
      expect(jobName({ namespace: 'ns', name, uid: uid1 })).toBe(jobName({ namespace: 'ns', name, uid: uid1 }));
      fc.pre(uid1 !== uid2);
      expect(jobName({ namespace: 'ns', name, uid: uid1 })).not.toBe(jobName({ namespace: 'ns', name, uid: uid2 }));
    }));
  });
});

describe('labelValue', () => {
  it('is at most 63 characters and ends alphanumeric', () => {
    fc.assert(fc.property(objectName, (name) => {
      const v = labelValue(name);
      expect(v.length).toBeLessThanOrEqual(63);
      if (v !== '') expect(v).toMatch(/[A-Za-z0-9]$/);
    }));
  });
});
