import { afterAll, describe, expect, it } from 'vitest';
import { LABEL } from '../../src/labels.js';
import { pluginName, proxyName } from '../../src/kubernetes/names.js';
import { all, find, KubeFixtures, render, TARGET, type Obj } from './support/kube-fixtures.js';

const fx = new KubeFixtures();
afterAll(() => fx.remove());
const objects = render(fx.load(), fx.policy().policy);
const policies = all(objects, 'NetworkPolicy');

/** Does a NetworkPolicy peer select the Pod with these labels (in the same namespace)? */
function selects(peer: Obj, labels: Record<string, string>): boolean {
  if (peer.ipBlock || peer.namespaceSelector) return false;
  return Object.entries(peer.podSelector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}
const podLabels = (name: string) => find(objects, 'Deployment', name).spec.template.metadata.labels as Record<string, string>;
/** The policies that select a Pod (a NetworkPolicy applies when its podSelector matches). */
function policiesFor(labels: Record<string, string>): Obj[] {
  return policies.filter((p) => {
    const sel = p.spec.podSelector;
    const matchLabels = Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
    const matchExpr = (sel.matchExpressions ?? []).every((e: Obj) => e.operator === 'In' && e.values.includes(labels[e.key]));
    return matchLabels && matchExpr;
  });
}

describe('network fences', () => {
  it('a deny-all policy selects every plugin and proxy Pod of the installation, and allows nothing', () => {
    const deny = find(objects, 'NetworkPolicy', 'logomesh-deny-all');
    expect(deny.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(deny.spec.ingress).toBeUndefined();
    expect(deny.spec.egress).toBeUndefined();
    for (const d of all(objects, 'Deployment').filter((x) => x.metadata.labels[LABEL.role] !== 'controller')) {
      expect(policiesFor(d.spec.template.metadata.labels)).toContain(deny);
    }
    expect(policiesFor(podLabels('logomesh-controller'))).not.toContain(deny);
  });

  it('a plugin without network: no ingress; egress to the hub port on the controller and to cluster DNS only', () => {
    const p = find(objects, 'NetworkPolicy', pluginName('plain'));
    expect(policiesFor(podLabels(pluginName('plain'))).map((x) => x.metadata.name).sort()).toEqual(['lm-plugin-plain', 'logomesh-deny-all']);
    expect(p.spec.ingress).toEqual([]);
    expect(p.spec.egress).toHaveLength(2);
    const [hub, dns] = p.spec.egress;
    expect(hub.ports).toEqual([{ protocol: 'TCP', port: TARGET.hubPort }]);
    expect(hub.to).toHaveLength(1);
    expect(selects(hub.to[0], podLabels('logomesh-controller'))).toBe(true);
    expect(selects(hub.to[0], podLabels(pluginName('fetcher')))).toBe(false);
    expect(dns.to).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }]);
    expect(dns.ports).toEqual([{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }]);
    expect(JSON.stringify(p.spec.egress)).not.toContain('ipBlock');
  });

  it('a networked plugin may also reach its own proxy, and no other', () => {
    const p = find(objects, 'NetworkPolicy', pluginName('fetcher'));
    const toProxy = p.spec.egress.filter((r: Obj) => r.ports.some((x: Obj) => x.port === 3128));
    expect(toProxy).toHaveLength(1);
    expect(selects(toProxy[0].to[0], podLabels('lm-egress-fetcher'))).toBe(true);
    expect(p.spec.egress.some((r: Obj) => r.to.some((peer: Obj) => peer.ipBlock))).toBe(false);
  });

  it("the proxy: ingress from its plugin's Pods on 3128 only; egress to DNS and public addresses on the listed ports only", () => {
    const p = find(objects, 'NetworkPolicy', 'lm-egress-fetcher');
    expect(p.spec.ingress).toHaveLength(1);
    expect(p.spec.ingress[0].ports).toEqual([{ protocol: 'TCP', port: 3128 }]);
    expect(selects(p.spec.ingress[0].from[0], podLabels(pluginName('fetcher')))).toBe(true);
    expect(selects(p.spec.ingress[0].from[0], podLabels(pluginName('plain')))).toBe(false);
    const out = p.spec.egress.find((r: Obj) => r.to.some((x: Obj) => x.ipBlock));
    expect(out.ports).toEqual([{ protocol: 'TCP', port: 443 }, { protocol: 'TCP', port: 8080 }]);
    const block = out.to[0].ipBlock;
    expect(block.cidr).toBe('0.0.0.0/0');
    for (const c of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '127.0.0.0/8', '100.64.0.0/10', TARGET.podCidr]) expect(block.except).toContain(c);
  });

  it('the controller takes the plugin port from this installation\'s plugin Pods only', () => {
    const p = find(objects, 'NetworkPolicy', 'logomesh-controller');
    const rule = p.spec.ingress.find((r: Obj) => r.ports.some((x: Obj) => x.port === TARGET.hubPort));
    expect(rule.from).toHaveLength(1);
    expect(selects(rule.from[0], podLabels(pluginName('plain')))).toBe(true);
    expect(selects(rule.from[0], podLabels('lm-egress-fetcher'))).toBe(false);
    expect(rule.from[0].podSelector.matchLabels[LABEL.instance]).toBe(TARGET.instance);
  });
});

describe('the egress proxy of a networked plugin', () => {
  it("holds the manifest's hosts, normalised and without duplicates, and its connection limit, in the proxy's own config format", () => {
    const cm = find(objects, 'ConfigMap', 'lm-egress-fetcher');
    expect(JSON.parse(cm.data['config.json'])).toEqual({
      generation: 0,
      plugin: 'fetcher',
      subnet: TARGET.podCidr,
      hosts: ['api.example.com:443', '*.cdn.example.org:443', 'files.example.net:8080'],
      maxConnections: 7,
      detached: false,
    });
  });

  it('the plugin reaches it through its Service, by the proxy variables; the hub goes direct', () => {
    const env = Object.fromEntries(find(objects, 'Deployment', pluginName('fetcher')).spec.template.spec.containers[0].env.map((e: Obj) => [e.name, e.value]));
    const url = 'http://lm-egress-fetcher.lm-test.svc:3128';
    expect(env).toMatchObject({ HTTP_PROXY: url, HTTPS_PROXY: url, http_proxy: url, https_proxy: url, NO_PROXY: 'logomesh-hub.lm-test.svc' });
    const svc = find(objects, 'Service', 'lm-egress-fetcher');
    expect(svc.spec.ports).toEqual([{ name: 'proxy', port: 3128, targetPort: 3128, protocol: 'TCP' }]);
    expect(svc.spec.selector).toEqual(podLabels('lm-egress-fetcher'));
  });

  it('runs the egress image as nobody with the allow-list mounted read-only, bounded by the same budget as on Docker', () => {
    const d = find(objects, 'Deployment', 'lm-egress-fetcher');
    const c = d.spec.template.spec.containers[0];
    expect(d.spec.template.spec.securityContext.runAsUser).toBe(65534);
    expect(c.image).toBe('logomesh/egress:latest');
    expect(c.volumeMounts).toEqual([{ name: 'config', mountPath: '/etc/logomesh-egress', readOnly: true }]);
    expect(c.volumeMounts[0].subPath).toBeUndefined();
    // proxyLimits(7 connections, 150 %): 48 MiB + 7 x 256 KiB, the plugin's CPU share.
    expect(c.resources.limits).toEqual({ cpu: '1500m', memory: '50Mi' });
    expect(d.spec.template.metadata.annotations['io.logomesh.max-processes']).toBe(String(2 * 7 + 32));
  });

  it('plugins without network capabilities get no proxy at all', () => {
    for (const id of ['plain', 'vault', 'tracer', 'writer']) {
      expect(objects.some((o) => o.metadata?.name === proxyName(id))).toBe(false);
    }
  });
});
