import { readFileSync } from 'node:fs';
import path from 'node:path';
import { IMAGES_DIR } from '../paths.js';

/**
 * The protocol's constants, from the one file every SDK also carries and checks itself
 * against (images/protocol/protocol.json), so the hub and five implementations cannot drift.
 * Read once at load, from the repository's (or installed package's) images/.
 */
export interface ProtocolConstants {
  readonly protocol: number;
  readonly maxDepth: number;
  readonly messageBytes: { readonly default: number; readonly max: number; readonly hardLimitFactor: number };
  readonly callTimeoutMs: { readonly default: number; readonly max: number };
  readonly idMaxLength: number;
  readonly errorCodes: Readonly<Record<string, string>>;
}

const PROTOCOL_FILE = path.join(IMAGES_DIR, 'protocol', 'protocol.json');

export const CONSTANTS: ProtocolConstants = Object.freeze(JSON.parse(readFileSync(PROTOCOL_FILE, 'utf8')) as ProtocolConstants);
