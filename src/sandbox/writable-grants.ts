import { statSync } from 'node:fs';
import { LogoMeshError } from '../errors.js';
import type { GrantedPath } from '../manifest/types.js';

/**
 * A bind mount keeps host ownership and modes, so a write grant on a folder the plugin's
 * own uid (pluginUid) cannot write would only surface as EACCES inside the plugin. Say so before starting,
 * with what to change on the host. Checked at container creation, not at load, because
 * ownership can change between the two.
 */
export function checkWritableGrants(grants: readonly GrantedPath[], uid: number, gid: number): void {
  for (const g of grants) {
    if (!g.writable) continue;
    const st = statSync(g.hostPath);
    const mode = st.mode & 0o777;
    const ok = (st.uid === uid && (mode & 0o200) !== 0) || (st.gid === gid && (mode & 0o020) !== 0) || (mode & 0o002) !== 0;
    if (!ok) {
      throw new LogoMeshError(
        'LM_PATH_NOT_WRITABLE',
        `capability '${g.capability}' grants write to ${g.hostPath}, but the plugin runs as uid ${uid} (its own) and that folder is owner ${st.uid}:${st.gid} mode ${mode.toString(8)}; run 'chown -R ${uid} ${g.hostPath}'`,
        { file: g.hostPath, capability: g.capability, expected: `writable by uid ${uid} or gid ${gid}`, found: `owner ${st.uid}:${st.gid}, mode ${mode.toString(8)}` },
      );
    }
  }
}
