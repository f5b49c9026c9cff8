/**
 * A throwaway CA, a server certificate for localhost/127.0.0.1 and a client certificate, made by openssl, for the
 * TLS and mTLS tests.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface TestCerts {
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here: trusting it alone must fail. */
  otherCaCert: string;
}

export async function makeCerts(dir: string): Promise<TestCerts> {
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => exec('openssl', args);
  const ca = async (name: string) =>
    ssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.pem`),
    );
  await ca('test-ca');
  await ca('other-ca');
  const leaf = async (name: string, ext: string) => {
    await ssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.csr`),
    );
    await writeFile(f(`${name}.ext`), ext);
    await ssl(
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('test-ca.pem'),
      '-CAkey',
      f('test-ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      f(`${name}.ext`),
      '-out',
      f(`${name}.pem`),
    );
  };
  await leaf('localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await leaf('release-worker', 'extendedKeyUsage=clientAuth\n');
  return {
    caCert: f('test-ca.pem'),
    serverCert: f('localhost.pem'),
    serverKey: f('localhost.key'),
    clientCert: f('release-worker.pem'),
    clientKey: f('release-worker.key'),
    otherCaCert: f('other-ca.pem'),
  };
}
