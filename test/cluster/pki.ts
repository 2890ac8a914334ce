// Certificates and keys for the local control plane, made with the openssl CLI (Node's crypto
// cannot issue X.509 certificates). ECDSA P-256 for TLS and clients, RSA for service-account tokens.
import { execFile } from 'node:child_process';
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

async function signed(dir: string, stem: string, subj: string, extensions: string[]): Promise<void> {
  const key = join(dir, `${stem}.key`);
  const csr = join(dir, `${stem}.csr`);
  const ext = join(dir, `${stem}.ext`);
  await newEcKey(key);
  await openssl(['req', '-new', '-key', key, '-subj', subj, '-out', csr]);
  await writeFile(ext, extensions.join('\n') + '\n');
  await openssl([
    'x509', '-req', '-in', csr, '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'),
    '-CAcreateserial', '-days', '365', '-sha256', '-extfile', ext, '-out', join(dir, `${stem}.crt`),
  ]);
}

/** Creates a CA, the API server's serving certificate, client certificates and the service-account key pair. */
export async function createPki(dir: string, serviceIp: string, clients: ClientIdentity[]): Promise<Pki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.crt');
  await newEcKey(caKey);
  await openssl([
    'req', '-x509', '-new', '-key', caKey, '-sha256', '-days', '3650', '-subj', '/CN=whisperops-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    '-out', caCert,
  ]);
  await signed(dir, 'apiserver', subject('kube-apiserver', []), [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=${apiServerAltNames(serviceIp)}`,
  ]);
  await Promise.all(
    clients.map((c) =>
      signed(dir, c.file, subject(c.commonName, c.organizations), [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=clientAuth',
      ]),
    ),
  );
  const serviceAccountKey = join(dir, 'sa.key');
  const serviceAccountPub = join(dir, 'sa.pub');
  await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', serviceAccountKey]);
  await openssl(['pkey', '-in', serviceAccountKey, '-pubout', '-out', serviceAccountPub]);
  return {
    dir,
    caCert,
    caKey,
    servingCert: join(dir, 'apiserver.crt'),
    servingKey: join(dir, 'apiserver.key'),
    serviceAccountKey,
    serviceAccountPub,
    client: (file) => ({ cert: join(dir, `${file}.crt`), key: join(dir, `${file}.key`) }),
  };
}
