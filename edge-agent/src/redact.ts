// Log redaction: nothing the agent logs carries a credential. Artifact and store URLs lose their
// user-info and their query string (a presigned URL's signature lives there); `Bearer <token>` and
// `authorization` / `token` / `secret` / `password` fields are replaced. Applied where URLs are logged
// (model manager, artifact errors) and, as a net under everything else, in the agent's pino logger.
import { pino } from 'pino';
import type { Logger } from 'pino';

export const REDACTED = '<redacted>';

// scheme://[userinfo@]rest[?query][#fragment] inside free text; stops at white space and quotes.
const URL_IN_TEXT = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@"'<>]*@)?([^\s?#"'<>]*)(\?[^\s#"'<>]*)?(#[^\s"'<>]*)?/gi;
const BEARER = /\b(bearer)\s+[A-Za-z0-9._~+/=-]+/gi;
const SECRET_KEYS = /^(authorization|proxy-authorization|cookie|set-cookie|token|password|secret|secretaccesskey|aws_secret_access_key|aws_session_token|x-api-key)$/i;

/** `uri` without user-info and query string (`?<redacted>`); the fragment is dropped. */
export function redactUri(uri: string): string {
  return redactText(uri);
}

/** `text` with every URL's user-info and query string, and every bearer token, replaced. */
export function redactText(text: string): string {
  return text
    .replace(URL_IN_TEXT, (_m, scheme: string, user: string | undefined, rest: string, query: string | undefined) => `${scheme}${user ? `${REDACTED}@` : ''}${rest}${query ? `?${REDACTED}` : ''}`)
    .replace(BEARER, (_m, word: string) => `${word} ${REDACTED}`);
}

/** A copy of a log object with strings redacted and secret-named keys replaced (depth ≤ 6). */
export function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactText(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  if (value instanceof Error) return { type: value.name, message: redactText(value.message), stack: value.stack === undefined ? undefined : redactText(value.stack) };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.test(k) ? REDACTED : redactValue(v, depth + 1);
  return out;
}

/** The agent's logger: JSON lines whose fields and messages pass through redactValue/redactText. */
export function agentLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { component: 'edge-agent' },
    formatters: { log: (obj) => redactValue(obj) as Record<string, unknown> },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((a: unknown) => (typeof a === 'string' ? redactText(a) : a)) as Parameters<typeof method>);
      },
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
