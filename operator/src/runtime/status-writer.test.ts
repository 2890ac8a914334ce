import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { KubeClient, ResourceType } from '../kube/client.js';
import { ApiError } from '../kube/client.js';
import { mergePatchOf, StatusWriter } from './status-writer.js';

/** RFC 7386 applied to plain JSON: what the API server does with a merge patch. */
function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

describe('mergePatchOf', () => {
  it.each<[string, Record<string, unknown>, Record<string, unknown>, Record<string, unknown> | undefined]>([
    ['nothing changed', { a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [1, 2] } }, undefined],
    ['a top-level field removed', { a: 1, b: 2 }, { a: 1 }, { b: null }],
    ['a nested field removed (a new candidate without the old verdict)', { candidate: { version: '1', lastVerdict: 'Failed' } }, { candidate: { version: '2' } }, { candidate: { version: '2', lastVerdict: null } }],
    ['arrays replaced whole', { conditions: [{ type: 'A' }, { type: 'B' }] }, { conditions: [{ type: 'A' }] }, { conditions: [{ type: 'A' }] }],
    ['object replaced by a scalar', { a: { b: 1 } }, { a: 3 }, { a: 3 }],
    ['undefined fields are absent', { a: 1 }, { a: 1, b: undefined }, undefined],
  ])('%s', (_what, from, to, want) => {
    expect(mergePatchOf(from, to)).toEqual(want);
  });

  it('property: applying the patch to the old status gives the new one', () => {
    const json = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, fc.integer(), fc.string({ maxLength: 3 }), fc.boolean(), fc.array(fc.integer(), { maxLength: 3 }), tie('object')),
      object: fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), tie('value'), { maxKeys: 4 }),
    }));
    fc.assert(fc.property(json.object, json.object, (from, to) => {
      const patch = mergePatchOf(from, to);
      expect(patch === undefined ? from : applyMergePatch(from, patch)).toEqual(to);
    }));
  });
});

describe('StatusWriter', () => {
  const TYPE: ResourceType = { group: 'whisperops.dev', version: 'v1alpha1', plural: 'things', kind: 'Thing', namespaced: true };
  type Thing = { apiVersion: string; kind: string; metadata: { name: string; namespace: string; resourceVersion: string }; status?: { n?: number; x?: { y?: number } } };
  const thing = (rv: string, status?: Thing['status']): Thing => ({ apiVersion: 'whisperops.dev/v1alpha1', kind: 'Thing', metadata: { name: 't', namespace: 'ns', resourceVersion: rv }, ...(status ? { status } : {}) });

  function client(rv = '10', fail?: Error) {
    const calls: unknown[] = [];
    const c = {
      patch: (_t: ResourceType, _ns: string | undefined, _n: string, patch: unknown, opts?: unknown) => {
        calls.push({ patch, opts });
        return fail ? Promise.reject(fail) : Promise.resolve(thing(rv));
      },
    } as unknown as KubeClient;
    return { c, calls };
  }

  it('writes nothing when the status is unchanged; one status-subresource patch with removals otherwise', async () => {
    const { c, calls } = client();
    const w = new StatusWriter<NonNullable<Thing['status']>, Thing>(c, TYPE);
    expect(await w.write(thing('5', { n: 1, x: { y: 2 } }), { n: 1, x: { y: 2 } })).toBe(false);
    expect(await w.write(thing('5', { n: 1, x: { y: 2 } }), { n: 2, x: {} })).toBe(true);
    expect(calls).toEqual([{ patch: { status: { n: 2, x: { y: null } } }, opts: { subresource: 'status' } }]);
  });

  it('latest: the written status while the cache lags behind it; the cache once it has caught up', async () => {
    const { c } = client('10');
    const w = new StatusWriter<NonNullable<Thing['status']>, Thing>(c, TYPE);
    await w.write(thing('5', { n: 1 }), { n: 2 });
    expect(w.latest('ns/t', thing('7', { n: 1 })).status).toEqual({ n: 2 });
    expect(w.latest('ns/t', thing('10', { n: 2 })).status).toEqual({ n: 2 });
    expect(w.latest('ns/t', thing('11', { n: 3 })).status).toEqual({ n: 3 });
  });

  it('a deleted object is not an error; other failures are thrown (the reconcile is retried)', async () => {
    const notFound = new ApiError(404, 'NotFound', 'gone');
    expect(await new StatusWriter<NonNullable<Thing['status']>, Thing>(client('1', notFound).c, TYPE).write(thing('5'), { n: 1 })).toBe(false);
    await expect(new StatusWriter<NonNullable<Thing['status']>, Thing>(client('1', new Error('boom')).c, TYPE).write(thing('5'), { n: 1 })).rejects.toThrow('boom');
  });
});
