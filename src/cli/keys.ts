/**
 * The encryption key ring the CLI reads from `SESSION_ENCRYPTION_KEYS` or a file: the same keys
 * the application gives `SessionManager`'s `encryption` option, needed to read what is sealed in
 * each record (when a session was created, its user agent and IP).
 *
 * @packageDocumentation
 */
import type { EncryptionKey } from '../codec.js';
import { CliError } from './errors.js';

/**
 * Reads `id:base64key,id:base64key,...`: entries separated by commas or line breaks, spaces
 * around them ignored, the first key first (as in the application's ring). Each key is base64 or
 * base64url of 32 bytes: the manager checks ids and keys. Throws a {@link CliError} naming `source` and
 * the entry's position, never its key. One pass over the text.
 *
 * @param text - the ring as text
 * @param source - where it came from, for messages (`SESSION_ENCRYPTION_KEYS`, a file name)
 */
export function parseEncryptionKeys(text: string, source: string): EncryptionKey[] {
  const keys: EncryptionKey[] = [];
  const entries = text.split(/[,\r\n]/);
  let position = 0;
  for (const raw of entries) {
    const entry = raw.trim();
    if (entry === '') continue;
    position++;
    const colon = entry.indexOf(':');
    const id = colon === -1 ? '' : entry.slice(0, colon).trim();
    const key = colon === -1 ? '' : entry.slice(colon + 1).trim();
    if (id === '' || key === '') {
      throw new CliError('USAGE', `${source}: entry ${position} is not id:base64key`);
    }
    keys.push({ id, key });
  }
  if (keys.length === 0) throw new CliError('USAGE', `${source}: no key in it (id:base64key,...)`);
  return keys;
}
