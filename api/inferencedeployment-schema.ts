// InferenceDeployment: serve a model on an EdgePool, canary new versions, watch quality, retrain.
import type { Schema } from './schema-dsl.js';
import { ARTIFACT_URI, arr, bool, enumOf, int, num, obj, SHA256, str } from './schema-dsl.js';
import { conditions, localRef, observedGeneration } from './common-schemas.js';
import { fineTuneJobTemplate } from './finetunejob-schema.js';

const scenarioName = (description: string) => str(description, { maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' });

function modelSource(): Schema {
  return obj('The model to serve: an artifact (uri + version + sha256) or the result of a FineTuneJob.', {
    uri: str('URI of the model artifact folder (file://, http(s):// or s3://bucket/key).', { pattern: ARTIFACT_URI, maxLength: 2048 }),
    version: str('Version of the artifact.', { maxLength: 128, pattern: '^[A-Za-z0-9][-A-Za-z0-9_.+]*$' }),
    sha256: str('sha256 of the artifact\'s model-manifest.json; agents refuse an artifact that does not match.', { pattern: SHA256, maxLength: 64 }),
    fineTuneJobRef: localRef('A FineTuneJob in this namespace whose result is served once it has Succeeded.'),
  }, {
    rules: [
      { rule: 'has(self.uri) != has(self.fineTuneJobRef)', message: 'model needs exactly one of uri or fineTuneJobRef' },
      { rule: '!has(self.uri) || (has(self.version) && has(self.sha256))', message: 'model.uri needs model.version and model.sha256' },
      { rule: '!has(self.fineTuneJobRef) || (!has(self.version) && !has(self.sha256))', message: 'model.version and model.sha256 come from the FineTuneJob result when fineTuneJobRef is set' },
    ],
  });
}

function rollout(): Schema {
  return obj('How a new model version replaces the stable one.', {
    steps: arr('Canary steps: traffic weight of the candidate and how long to hold it before the next step; promotion follows the last step.', obj('A canary step.', {
      weight: int('Percent of requests sent to the candidate.', { minimum: 1, maximum: 100 }),
      pauseSeconds: int('Hold this weight for at least this long (and until the analysis is conclusive).', { minimum: 0, maximum: 86_400, default: 60 }),
    }, { required: ['weight'] }), 20, {
      minItems: 1,
      default: [{ weight: 10, pauseSeconds: 60 }, { weight: 50, pauseSeconds: 60 }],
      'x-kubernetes-validations': [
        {
          rule: 'self.all(s, self.exists_one(t, t.weight == s.weight)) && self.map(s, s.weight).isSorted()',
          message: 'rollout.steps weights must be strictly rising',
        },
      ],
    }),
    analysis: obj('Comparison of candidate and stable at every interval.', {
      intervalSeconds: int('How often the candidate is analysed.', { minimum: 5, maximum: 3600, default: 60 }),
      maxWerIncrease: num('Fail an interval when candidate WER exceeds stable WER by more than this (absolute).', { minimum: 0, maximum: 1, default: 0.02 }),
      maxP99LatencySeconds: num('Fail an interval when the candidate\'s p99 request latency exceeds this.', { minimum: 0.001, maximum: 600, default: 5 }),
      minSamples: int('Reference words (feedback) the candidate and the stable version each need in the interval before it is conclusive.', { minimum: 1, maximum: 10_000_000, default: 200 }),
      failureLimit: int('Failed intervals after which the candidate is rolled back.', { minimum: 1, maximum: 100, default: 2 }),
    }, { default: {} }),
  }, { default: {} });
}

function monitoring(): Schema {
  return obj('Live quality watch per scenario.', {
    scenarios: arr('Scenarios (domains) whose WER is watched.', obj('A watched scenario.', {
      name: scenarioName('Scenario label, as sent with feedback (e.g. medical).'),
      maxWer: num('WER above which the scenario is degraded.', { minimum: 0, maximum: 1 }),
      windowSeconds: int('Window the WER is computed over.', { minimum: 60, maximum: 604_800, default: 900 }),
      minReferenceWords: int('Reference words needed in the window before the WER is trusted.', { minimum: 1, maximum: 100_000_000, default: 200 }),
    }, { required: ['name', 'maxWer'] }), 16, { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] }),
  });
}

function retraining(): Schema {
  return obj('Closed loop: when a scenario is degraded, fine-tune the stable model and roll the result out as candidate.', {
    enabled: bool('Start retraining automatically.', false),
    cooldownSeconds: int('Least time between two automatic retrains.', { minimum: 0, maximum: 2_592_000, default: 3600 }),
    template: fineTuneJobTemplate(),
  }, {
    rules: [{ rule: '!self.enabled || has(self.template)', message: 'retraining.enabled needs retraining.template', fieldPath: '.template' }],
  });
}

export function inferenceDeploymentSpec(): Schema {
  return obj('Desired state: which model an EdgePool serves, and how it changes.', {
    edgePoolRef: localRef('The EdgePool (same namespace) that serves the model.'),
    model: modelSource(),
    rollout: rollout(),
    monitoring: monitoring(),
    retraining: retraining(),
  }, {
    required: ['edgePoolRef', 'model'],
    rules: [{
      rule: '!has(self.retraining) || !self.retraining.enabled || (has(self.monitoring) && has(self.monitoring.scenarios) && size(self.monitoring.scenarios) > 0)',
      message: 'retraining.enabled needs at least one monitoring scenario to trigger it',
      fieldPath: '.retraining.enabled',
    }],
  });
}

export function inferenceDeploymentStatus(): Schema {
  const served = (description: string) => obj(description, {
    version: str('Model version.', { maxLength: 128 }),
    uri: str('Model artifact URI.', { maxLength: 2048 }),
    sha256: str('sha256 of model-manifest.json.', { pattern: SHA256, maxLength: 64 }),
    source: str('Where it came from: spec, or the FineTuneJob that produced it.', { maxLength: 300 }),
  }, { required: ['version', 'uri', 'sha256'] });
  return obj('Observed state of the deployment.', {
    observedGeneration: observedGeneration(),
    conditions: conditions(),
    phase: enumOf('Progressing, Healthy, Degraded, Retraining or RollingBack.', ['Progressing', 'Healthy', 'Degraded', 'Retraining', 'RollingBack']),
    stable: served('The version serving most traffic (after an automatic promotion it differs from spec).'),
    candidate: obj('The version being canaried.', {
      ...served('').properties,
      weight: int('Current percent of traffic.', { minimum: 0, maximum: 100 }),
      step: int('Index of the current canary step.', { minimum: 0 }),
      stepStartTime: str('When the current step began.', { format: 'date-time', maxLength: 64 }),
      failedAnalyses: int('Failed analysis intervals so far.', { minimum: 0 }),
      lastVerdict: enumOf('Verdict of the last analysis.', ['Successful', 'Failed', 'Inconclusive']),
      lastVerdictMessage: str('Why.', { maxLength: 1024 }),
      lastVerdictStep: int('Index of the canary step the last analysis was measured at; a step advances only on a Successful verdict of its own.', { minimum: 0, maximum: 19 }),
      lastAnalysisTime: str('When the last analysis interval was evaluated; the next one is due an analysis interval later.', { format: 'date-time', maxLength: 64 }),
      rolledBackGeneration: int('Set when the candidate was rolled back (weight 0): the .metadata.generation at that time. The candidate is not retried until the spec changes (a newer generation).', { minimum: 1 }),
    }, { required: ['version', 'uri', 'sha256'] }),
    scenarios: arr('Live WER per scenario of the stable model.', obj('A scenario\'s measured quality.', {
      name: str('Scenario.', { maxLength: 63 }),
      wer: num('WER over the window; absent when unknown.', { minimum: 0 }),
      referenceWords: num('Reference words the WER rests on.', { minimum: 0 }),
      state: enumOf('Healthy, Degraded or Unknown (too few words or no data).', ['Healthy', 'Degraded', 'Unknown']),
    }, { required: ['name', 'state'] }), 16),
    lastRetrain: obj('The last automatic retrain.', {
      fineTuneJob: str('Name of the FineTuneJob created.', { maxLength: 253 }),
      reason: str('Why it started.', { maxLength: 1024 }),
      time: str('When it started.', { format: 'date-time', maxLength: 64 }),
      scenario: str('The Degraded scenario that triggered it.', { maxLength: 63 }),
      generation: int('The .metadata.generation when it started: while the spec stays at it, the deployment follows its retrains (the result becomes the candidate); a spec change hands control back to spec.model.', { minimum: 1 }),
    }),
    retrains: int('Automatic retrains started.', { minimum: 0 }),
  });
}
