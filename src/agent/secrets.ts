// Pre-shared keys from a mounted Secret: `<secretDir>/<name>/<key>` (a Secret volume per name, or one projected
// volume with a directory per Secret). The key bytes never reach a log line, an error message or a metric: callers
// get either the bytes or a reason that names only the file.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SecretKeyRef } from '../topology/types.ts';

/** IKEv2 PSKs shorter than this are refused. */
export const MIN_PSK_BYTES = 32;

// Values seen in examples, defaults and upstream fallbacks. A key made only of repetitions of one of them is refused.
const PLACEHOLDERS = [
  'changeme',
  'change-me',
  'change_me',
  'password',
  'passw0rd',
  'secret',
  'psk',
  'default',
  'example',
  'test',
  'raven',
  'openyurt',
  'openyurt-raven',
  'openyurt-raven-psk',
  'yurt',
  'corvid',
  'strongswan',
  '123456',
  'qwerty',
  'admin',
];

export type SecretResult = { ok: true; data: Buffer; fingerprint: string } | { ok: false; reason: string };

/** A Secret name (DNS subdomain) and a Secret data key ([-._a-zA-Z0-9]+); never `.` or `..` (no path tricks). */
const SECRET_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]{1,253}$/;

/** Why `data` is not acceptable as a PSK, or undefined when it is. The message never contains the data. */
export function weakPskReason(data: Buffer): string | undefined {
  if (data.length < MIN_PSK_BYTES) return `shorter than ${MIN_PSK_BYTES} bytes`;
  const text = data.toString('latin1').trim().toLowerCase();
  if (text.length < MIN_PSK_BYTES) return `shorter than ${MIN_PSK_BYTES} bytes without surrounding whitespace`;
  // A short pattern repeated (one character, "abab...", "12341234...").
  for (let period = 1; period <= 8; period++) {
    const unit = text.slice(0, period);
    if (unit.repeat(Math.ceil(text.length / period)).slice(0, text.length) === text) return 'a short pattern repeated';
  }
  // Made only of placeholders, separators and digits ("password-changeme-2024-...").
  let rest = text;
  for (const p of [...PLACEHOLDERS].sort((x, y) => y.length - x.length)) rest = rest.split(p).join(' ');
  if (rest !== text && rest.replace(/[\s\-_.:0-9]/g, '') === '') return 'a known placeholder value';
  if (new Set(text).size < 8) return 'fewer than 8 distinct characters';
  return undefined;
}

/** Reads and checks PSKs. */
export class SecretReader {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  /** Path of a reference (the only thing about a secret that may be logged). */
  pathOf(ref: SecretKeyRef): string {
    return join(this.dir, ref.name, ref.key);
  }

  async read(ref: SecretKeyRef): Promise<SecretResult> {
    if (!SECRET_NAME.test(ref.name) || !SECRET_KEY.test(ref.key) || ref.key === '.' || ref.key === '..') {
      return { ok: false, reason: `secret reference ${JSON.stringify(ref.name)}/${JSON.stringify(ref.key)} is not a valid Secret name and key` };
    }
    const path = this.pathOf(ref);
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      return { ok: false, reason: `cannot read PSK file ${path} (${code}); mount Secret ${ref.name} under ${this.dir}/${ref.name}` };
    }
    const weak = weakPskReason(data);
    if (weak !== undefined) return { ok: false, reason: `refusing PSK from ${path}: ${weak}` };
    // A fingerprint lets the agent notice a rotated key without keeping a second copy around in logs.
    const fingerprint = createHash('sha256').update('corvid-psk-fingerprint\0').update(data).digest('hex').slice(0, 16);
    return { ok: true, data, fingerprint };
  }
}
