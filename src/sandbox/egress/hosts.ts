import type { Manifest } from '../../manifest/types.js';

/**
 * Host entries (`host:port`, or `*.suffix:port`) in one normal form, so that every spelling
 * of an entry is the same entry: the name in lower case without a trailing dot, the port as
 * a plain decimal number. `API.Example.com.:0443` is `api.example.com:443`. The proxy
 * compares names in this form too (images/egress/egress_config.py), and revocation and
 * grant act on it, so revoking one spelling revokes them all.
 */
export function normalizeHost(entry: string): string | undefined {
  const text = entry.trim();
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const portText = text.slice(colon + 1);
  if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65_535) return undefined;
  let name = text.slice(0, colon).toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  const wildcard = name.startsWith('*.');
  const bare = wildcard ? name.slice(2) : name;
  // What the manifest schema allows: letters, digits, dots and hyphens.
  if (!/^[a-z0-9][a-z0-9.-]{0,252}$/.test(bare)) return undefined;
  return `${wildcard ? '*.' : ''}${bare}:${port}`;
}

/** The hosts a manifest's network capabilities list, normalised, in order, without duplicates. */
export function networkHosts(manifest: Manifest): string[] {
  const hosts = manifest.capabilities.filter((c) => c.scope === 'network').flatMap((c) => c.hosts ?? []);
  return [...new Set(hosts.map((h) => normalizeHost(h)).filter((h): h is string => h !== undefined))];
}

export function isNetworked(manifest: Manifest): boolean {
  return networkHosts(manifest).length > 0;
}
