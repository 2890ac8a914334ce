// Structured logs (pino, JSON lines). Anything that looks like a credential is redacted, wherever a
// caller puts it.
import pino from 'pino';
import type { Logger } from 'pino';

export const REDACT_PATHS = [
  'token', '*.token', 'authorization', '*.authorization', 'Authorization', '*.Authorization',
  'headers.authorization', '*.headers.authorization', 'password', '*.password', 'bearerToken', '*.bearerToken',
  'client-key-data', '*.client-key-data', 'keyData', '*.keyData',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({
    level,
    base: { component: 'whisperops-operator' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, destination);
}
