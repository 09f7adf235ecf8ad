import { didYouMean } from '../schema-errors.js';
import type { ManifestIssue } from '../errors.js';
import type { LoadedManifest } from './types.js';

/**
 * What only a set of manifests can show (`logomesh validate` on a folder of plugins): a
 * dependency the set lacks (`up` would refuse it, LM_DEPENDENCY), and a consumed
 * `plugin.method` its plugin does not expose (the hub would refuse every call to it,
 * LM_PERMISSION_DENIED), each with the closest name when one is near. A consumed method of
 * a plugin outside the set is left alone (another folder may bring it) unless its id is
 * one edit or so from a plugin of the set: a typo.
 */
export function crossCheck(set: readonly LoadedManifest[]): ManifestIssue[] {
  const byId = new Map(set.map((l) => [l.manifest.id, l]));
  const issues: ManifestIssue[] = [];
  for (const l of set) {
    const { dependencies, coordination } = l.manifest;
    dependencies.plugins.forEach((dep, i) => {
      if (byId.has(dep)) return;
      const found = `'${dep}'${didYouMean(dep, byId.keys())}`;
      const expected = `a plugin of this set (${[...byId.keys()].join(', ')})`;
      issues.push({ code: 'LM_DEPENDENCY', file: l.file, path: `/dependencies/plugins/${i}`, expected, found, message: `expected ${expected}, found ${found}` });
    });
    coordination.consumesMethods.forEach((entry, i) => {
      const dot = entry.indexOf('.');
      if (dot < 0) return; // a host method
      const target = entry.slice(0, dot);
      const method = entry.slice(dot + 1);
      const other = byId.get(target);
      let expected: string;
      let found: string;
      if (!other) {
        const hint = didYouMean(target, byId.keys());
        if (!hint) return;
        expected = `a plugin of this set (${[...byId.keys()].join(', ')})`;
        found = `'${entry}': no plugin '${target}'${hint}`;
      } else {
        const exposed = other.manifest.coordination.exposesMethods;
        if (exposed.includes(method)) return;
        expected = `a method ${target} exposes (${exposed.join(', ') || 'none'})`;
        found = `'${entry}'${didYouMean(method, exposed)}`;
      }
      issues.push({ code: 'LM_PERMISSION_DENIED', file: l.file, path: `/coordination/consumesMethods/${i}`, expected, found, message: `expected ${expected}, found ${found}` });
    });
  }
  return issues;
}
