// Certificates and keys for the local control plane, made with the openssl CLI (Node's crypto
// cannot issue X.509 certificates). ECDSA P-256 for TLS and clients, RSA for service-account tokens.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (err) {
    throw new Error(`openssl ${args.join(' ')} failed`, { cause: err });
  }
}

export interface ClientIdentity {
  /** file stem under pki/, e.g. "admin" → admin.crt, admin.key */
  file: string;
  commonName: string;
  organizations: string[];
}

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
  frontProxyCaCert: string;
  frontProxyClientCert: string;
  frontProxyClientKey: string;
  client(file: string): { cert: string; key: string };
}

/** The subject of an openssl `-subj` argument; escapes the separators openssl interprets. */
export function subject(commonName: string, organizations: string[]): string {
  const esc = (s: string): string => s.replace(/([/\\+,=])/g, '\\$1');
  return organizations.map((o) => `/O=${esc(o)}`).join('') + `/CN=${esc(commonName)}`;
}

/** subjectAltName value for the API server's serving certificate. */
export function apiServerAltNames(serviceIp: string): string {
  const dns = ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];
  return [...dns.map((d) => `DNS:${d}`), 'IP:127.0.0.1', `IP:${serviceIp}`].join(',');
}

async function newEcKey(path: string): Promise<void> {
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path]);
}

async function signed(dir: string, stem: string, subj: string, extensions: string[], ca = 'ca'): Promise<void> {
  const key = join(dir, `${stem}.key`);
  const csr = join(dir, `${stem}.csr`);
  const ext = join(dir, `${stem}.ext`);
  await newEcKey(key);
  await openssl(['req', '-new', '-key', key, '-subj', subj, '-out', csr]);
  await writeFile(ext, extensions.join('\n') + '\n');
  await openssl([
    'x509', '-req', '-in', csr, '-CA', join(dir, `${ca}.crt`), '-CAkey', join(dir, `${ca}.key`),
    // A random serial per certificate (a shared ca.srl would race when certificates are signed concurrently).
    '-set_serial', `0x${randomBytes(16).toString('hex').replace(/^[89a-f]/, '7')}`, '-days', '365', '-sha256', '-extfile', ext, '-out', join(dir, `${stem}.crt`),
  ]);
}

async function newCa(dir: string, stem: string, commonName: string): Promise<void> {
  const key = join(dir, `${stem}.key`);
  await newEcKey(key);
  await openssl([
    'req', '-x509', '-new', '-key', key, '-sha256', '-days', '3650', '-subj', `/CN=${commonName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    '-out', join(dir, `${stem}.crt`),
  ]);
}

export const frontProxyClientName = 'front-proxy-client';

const clientExtensions = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=clientAuth'];

/** Creates the CAs, the API server's serving certificate, client certificates and the service-account key pair. */
export async function createPki(dir: string, serviceIp: string, clients: ClientIdentity[]): Promise<Pki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.crt');
  // The cluster CA, and a separate front-proxy CA for the request-header (aggregation) client, as kubeadm does.
  await Promise.all([newCa(dir, 'ca', 'whisperops-test-ca'), newCa(dir, 'front-proxy-ca', 'whisperops-test-front-proxy-ca')]);
  const serviceAccountKey = join(dir, 'sa.key');
  const serviceAccountPub = join(dir, 'sa.pub');
  await Promise.all([
    signed(dir, 'apiserver', subject('kube-apiserver', []), [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${apiServerAltNames(serviceIp)}`,
    ]),
    ...clients.map((c) => signed(dir, c.file, subject(c.commonName, c.organizations), clientExtensions)),
    signed(dir, 'front-proxy-client', subject(frontProxyClientName, []), clientExtensions, 'front-proxy-ca'),
    openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', serviceAccountKey]).then(() =>
      openssl(['pkey', '-in', serviceAccountKey, '-pubout', '-out', serviceAccountPub]),
    ),
  ]);
  return {
    dir,
    caCert,
    caKey,
    servingCert: join(dir, 'apiserver.crt'),
    servingKey: join(dir, 'apiserver.key'),
    serviceAccountKey,
    serviceAccountPub,
    frontProxyCaCert: join(dir, 'front-proxy-ca.crt'),
    frontProxyClientCert: join(dir, 'front-proxy-client.crt'),
    frontProxyClientKey: join(dir, 'front-proxy-client.key'),
    client: (file) => ({ cert: join(dir, `${file}.crt`), key: join(dir, `${file}.key`) }),
  };
}
