// What an InferenceDeployment's spec.model names, resolved to one immutable artifact (pure):
//
//   model.uri + version + sha256 → that artifact (source "spec")
//   model.fineTuneJobRef         → the FineTuneJob's status.result once its phase is Succeeded
//                                  (modelUri, version, sha256; source "FineTuneJob/<name>");
//                                  missing / Failed / still running → no model, and a reason that
//                                  says which (a condition, never an exception)
//
// URIs are checked for the schemes the agents fetch (file://, http(s)://, s3://bucket/key); an s3://
// artifact is read by the agents with the pool's artifactCredentials Secret (standard AWS environment
// names), which the message names so a user sees where the credentials come from.
import type { FineTuneJob, InferenceDeploymentSpec } from '../../../api/generated/types.js';
import type { ResolvedModel } from './rollout.js';

export type Resolution =
  | { kind: 'resolved'; model: ResolvedModel; message: string }
  /** `permanent`: nothing will change it but a spec change elsewhere (Stalled); otherwise it is waited for. */
  | { kind: 'unresolved'; reason: string; message: string; permanent: boolean };

/** An s3:// URI's bucket and key prefix, or why it is not one. */
export function parseS3Uri(uri: string): { bucket: string; key: string } | { problem: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m) return { problem: `${uri} is not s3://bucket/key` };
  const bucket = m[1] ?? '';
  // S3 bucket naming rules: 3–63 characters, lower-case letters, digits, dots and hyphens.
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) return { problem: `bucket "${bucket}" of ${uri} is not a valid S3 bucket name` };
  return { bucket, key: m[2] ?? '' };
}

/** Why the agents could not fetch `uri` (unsupported scheme, malformed s3 URI), or undefined. */
export function uriProblem(uri: string): string | undefined {
  if (uri.startsWith('s3://')) {
    const s3 = parseS3Uri(uri);
    return 'problem' in s3 ? s3.problem : undefined;
  }
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return `${uri} is not a URI`;
  }
  if (!['file:', 'http:', 'https:'].includes(url.protocol)) return `scheme ${url.protocol} of ${uri} is not one the agents fetch (file://, http(s)://, s3://)`;
  // file:// names a path on the agent's own machine: file:///p or file://localhost/p (test/fixtures/file-uris.json).
  if (url.protocol === 'file:' && (!uri.startsWith('file://') || (url.hostname !== '' && url.hostname !== 'localhost'))) {
    return `${uri} names another host; a file:// URI must be file:///path or file://localhost/path`;
  }
  return undefined;
}

/** Where the agents get the credentials for `uri` (a phrase for messages), by scheme. */
function accessNote(uri: string, credentialsSecret: string | undefined): string {
  if (!uri.startsWith('s3://')) return '';
  return credentialsSecret
    ? `; agents read it with the pool's artifactCredentials Secret ${credentialsSecret}`
    : '; the pool names no artifactCredentials Secret: agents use their ambient AWS credentials';
}

function checked(model: ResolvedModel, from: string, credentialsSecret: string | undefined): Resolution {
  const problem = uriProblem(model.uri);
  if (problem) return { kind: 'unresolved', reason: 'UnsupportedURI', message: `${from}: ${problem}`, permanent: true };
  return { kind: 'resolved', model, message: `${from}: ${model.version} at ${model.uri}${accessNote(model.uri, credentialsSecret)}` };
}

/**
 * Resolves spec.model. `fineTuneJob` is the referenced FineTuneJob from the cache (undefined when it
 * does not exist); `credentialsSecret` the pool's artifactCredentials Secret name, for the message.
 */
export function resolveModel(model: InferenceDeploymentSpec['model'], fineTuneJob: FineTuneJob | undefined, credentialsSecret?: string): Resolution {
  if (model.fineTuneJobRef) {
    const name = model.fineTuneJobRef.name;
    if (!fineTuneJob) {
      return { kind: 'unresolved', reason: 'FineTuneJobNotFound', message: `FineTuneJob ${name} does not exist (yet): nothing new is served until it does and has Succeeded`, permanent: false };
    }
    const phase = fineTuneJob.status?.phase ?? 'Pending';
    if (phase === 'Failed') {
      const why = fineTuneJob.status?.conditions?.find((c) => c.type === 'Ready' || c.type === 'Stalled')?.message;
      return { kind: 'unresolved', reason: 'FineTuneJobFailed', message: `FineTuneJob ${name} Failed${why ? `: ${why}` : ''}; fix or replace it`, permanent: true };
    }
    const result = fineTuneJob.status?.result;
    if (phase !== 'Succeeded' || !result) {
      return { kind: 'unresolved', reason: 'FineTuneJobNotSucceeded', message: `FineTuneJob ${name} is ${phase}: waiting for it to succeed`, permanent: false };
    }
    return checked({ uri: result.modelUri, version: result.version, sha256: result.sha256, source: `FineTuneJob/${name}` }, `FineTuneJob ${name} result`, credentialsSecret);
  }
  if (model.uri === undefined || model.version === undefined || model.sha256 === undefined) {
    // The CRD's rules make this unreachable through the API server; a hand-built object may still be.
    return { kind: 'unresolved', reason: 'InvalidSpec', message: 'spec.model needs uri, version and sha256, or fineTuneJobRef', permanent: true };
  }
  return checked({ uri: model.uri, version: model.version, sha256: model.sha256, source: 'spec' }, 'spec.model', credentialsSecret);
}
