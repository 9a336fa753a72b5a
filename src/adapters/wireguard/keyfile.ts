// The node's WireGuard key pair: the private key in a file on the node, created once and kept across restarts (a
// regenerated key would break every tunnel until each peer has learnt the new one), never sent anywhere.
//
// The file holds the key the way `wg genkey` prints it (base64 and a newline), so `wg pubkey < file` works on it.
// Keys come from node:crypto's X25519, which is what WireGuard uses; no `wg` binary is needed to make one.
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface WireguardKeyPair {
  /** Base64 of the 32-byte private key. Never logged, never published. */
  privateKey: string;
  /** Base64 of the 32-byte public key. */
  publicKey: string;
}

/** PKCS#8 DER prefix of an X25519 private key (RFC 8410); the raw 32 bytes follow. */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** The public key of a raw X25519 private key. */
export function publicKeyOf(privateKey: Buffer): string {
  const key = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, privateKey]), format: 'der', type: 'pkcs8' });
  const jwk = createPublicKey(key).export({ format: 'jwk' }) as { x: string };
  return Buffer.from(jwk.x, 'base64url').toString('base64');
}

/** Curve25519 clamping, as WireGuard applies it to a private key (the public key is the same either way). */
function clamp(key: Buffer): void {
  key[0] &= 248;
  key[31] = (key[31] & 127) | 64;
}

function generate(): Buffer {
  const { privateKey } = generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' }) as { d: string };
  return Buffer.from(jwk.d, 'base64url');
}

export interface LoadedKey extends WireguardKeyPair {
  /** The file was created now. */
  created: boolean;
  /** The file was readable by others and was made 0600. */
  tightened: boolean;
}

/**
 * Read the key pair from `path`, creating the file (0600, its directory 0700) when there is none. Errors name the
 * path and what is wrong, never the file's content.
 */
export function loadOrCreateKey(path: string): LoadedKey {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  let created = false;
  if (!existsSync(path)) {
    // Written whole to a file of this process, then linked into place: a crash never leaves an empty or partial key
    // file (which would be refused until moved away), and of agents starting at once, one key wins and all read it.
    const tmp = `${path}.${process.pid}.tmp`;
    try {
      rmSync(tmp, { force: true });
      const fd = openSync(tmp, 'wx', 0o600);
      try {
        writeSync(fd, `${generate().toString('base64')}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      linkSync(tmp, path);
      created = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot create the WireGuard key file ${path}: ${(e as Error).message}`);
    } finally {
      rmSync(tmp, { force: true });
    }
  }
  let tightened = false;
  if ((statSync(path).mode & 0o077) !== 0) {
    chmodSync(path, 0o600);
    tightened = true;
  }
  const text = readFileSync(path, 'utf8').trim();
  const raw = /^[A-Za-z0-9+/]{43}=$/.test(text) ? Buffer.from(text, 'base64') : undefined;
  if (raw === undefined || raw.length !== 32) {
    throw new Error(`the WireGuard key file ${path} does not hold a key (expected base64 of 32 bytes, as wg genkey writes); move it away to have a new key made`);
  }
  // WireGuard clamps a private key when it is set and reports it clamped (`wg show dump`); a file made by other means
  // than wg genkey may hold one unclamped, which would differ from the interface's at every comparison.
  clamp(raw);
  return { privateKey: raw.toString('base64'), publicKey: publicKeyOf(raw), created, tightened };
}
