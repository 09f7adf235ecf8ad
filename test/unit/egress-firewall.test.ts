import { readFileSync } from 'node:fs';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  checkHostFirewall,
  ensureHostFirewall,
  FirewallRecheck,
  FIREWALL_RULES_FILE,
  parseFirewallRules,
  PROVISION_SCRIPT,
  ruleCommand,
  type FirewallRule,
  type Runner,
} from '../../src/sandbox/egress/firewall.js';
import { PLUGIN_BRIDGE_PREFIX } from '../../src/sandbox/egress/plugin-network.js';

const RULES = parseFirewallRules(readFileSync(FIREWALL_RULES_FILE, 'utf8'));

/**
 * A host firewall played by a set of rule texts: `-C` answers from it, provisioning's
 * `firewall` step adds every rule of the file (unless `provisionFails`). Records every call.
 */
function fakeHost(present: Set<string>, opts: { provisionFails?: boolean; checkCode?: number } = {}) {
  const calls: string[] = [];
  const key = (tool: string, chain: string, spec: readonly string[]) => `${tool} ${chain} ${spec.join(' ')}`;
  const run: Runner = (cmd, args) => {
    calls.push(`${cmd} ${args.join(' ')}`);
    if (cmd === 'bash') {
      if (!opts.provisionFails) for (const r of RULES) present.add(key(r.tool, r.chain, r.spec));
      return Promise.resolve({ code: opts.provisionFails ? 1 : 0, stderr: opts.provisionFails ? 'iptables: Permission denied' : '' });
    }
    if (opts.checkCode !== undefined) return Promise.resolve({ code: opts.checkCode, stderr: 'iptables: command not found' });
    const [, , flag, chain, ...spec] = args; // -w 5 -C <chain> <spec>
    expect(flag).toBe('-C');
    return Promise.resolve({ code: present.has(key(cmd, chain!, spec)) ? 0 : 1, stderr: '' });
  };
  return { run, calls, present, all: () => new Set(RULES.map((r) => key(r.tool, r.chain, r.spec))) };
}

/** A logger whose lines are kept, to check what the operator is told. */
function capturingLogger() {
  const lines: { level: number; msg: string; commands?: string[] }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { log, lines };
}

describe('the host firewall rules for plugin networks (src/provision/egress-firewall.rules)', () => {
  it('drop input from every plugin bridge, IPv4 and IPv6, in the host INPUT chain the engine never rewrites', () => {
    expect(RULES.map((r) => [r.tool, r.chain, r.spec.join(' ')])).toEqual([
      ['iptables', 'INPUT', `-i ${PLUGIN_BRIDGE_PREFIX}+ -m comment --comment logomesh-plugin-networks -j DROP`],
      ['ip6tables', 'INPUT', `-i ${PLUGIN_BRIDGE_PREFIX}+ -m comment --comment logomesh-plugin-networks -j DROP`],
    ]);
  });

  it('a malformed line is an error naming the file and line', () => {
    expect(() => parseFirewallRules('# c\n\nnft add rule x\n')).toThrow(/egress-firewall\.rules:3: expected '<iptables\|ip6tables> <chain> <rule>', found 'nft add rule x'/);
  });

  it('says what an operator runs to add a rule only if it is missing', () => {
    const r: FirewallRule = { tool: 'iptables', chain: 'INPUT', spec: ['-i', 'lmp+', '-j', 'DROP'] };
    expect(ruleCommand(r)).toBe('iptables -C INPUT -i lmp+ -j DROP || iptables -I INPUT 1 -i lmp+ -j DROP');
  });
});

describe('checking the rules', () => {
  it('in place, missing, or unknown when the tool fails otherwise', async () => {
    const full = fakeHost(new Set());
    expect(await checkHostFirewall(RULES, full.run)).toEqual({ status: 'missing', missing: RULES });
    for (const k of full.all()) full.present.add(k);
    expect(await checkHostFirewall(RULES, full.run)).toEqual({ status: 'in-place' });
    const one = fakeHost(new Set([...full.all()].slice(0, 1)));
    expect(await checkHostFirewall(RULES, one.run)).toEqual({ status: 'missing', missing: [RULES[1]] });
    expect(await checkHostFirewall(RULES, fakeHost(new Set(), { checkCode: 127 }).run)).toMatchObject({ status: 'unknown', reason: expect.stringContaining('exited 127') });
  });
});

describe('the controller keeps them in place (at its first networked plugin, and whenever the engine comes back)', () => {
  it('nothing to do when they are in place', async () => {
    const { log } = capturingLogger();
    const host = fakeHost(new Set());
    for (const k of host.all()) host.present.add(k);
    expect(await ensureHostFirewall({ log, run: host.run, manage: true, rules: RULES })).toEqual({ status: 'in-place' });
    expect(host.calls.filter((c) => c.startsWith('bash'))).toEqual([]);
  });

  it('as root, puts missing ones back through provisioning, then checks again', async () => {
    const { log, lines } = capturingLogger();
    const host = fakeHost(new Set());
    expect(await ensureHostFirewall({ log, run: host.run, manage: true, rules: RULES })).toEqual({ status: 'in-place' });
    expect(host.calls).toContain(`bash ${PROVISION_SCRIPT} firewall`);
    expect(host.present).toEqual(host.all());
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining([expect.stringContaining('missing: adding them again'), 'the host firewall rules for plugin networks are in place again']));
  });

  it('when provisioning cannot add them, tells the operator the commands, and does not throw', async () => {
    const { log, lines } = capturingLogger();
    const host = fakeHost(new Set(), { provisionFails: true });
    expect(await ensureHostFirewall({ log, run: host.run, manage: true, rules: RULES })).toEqual({ status: 'missing', missing: RULES });
    const warning = lines.find((l) => l.msg.includes('could not be added'));
    expect(warning?.msg).toContain('Permission denied');
    expect(warning?.commands).toEqual(RULES.map(ruleCommand));
  });

  it('not root (or a remote engine, or in a container): checks nothing, changes nothing, says what to add', async () => {
    const { log, lines } = capturingLogger();
    const host = fakeHost(new Set());
    expect(await ensureHostFirewall({ log, run: host.run, manage: false, rules: RULES })).toMatchObject({ status: 'unknown' });
    expect(host.calls).toEqual([]);
    expect(lines[0]?.msg).toContain('plugins still have no route to the host');
    expect(lines[0]?.commands).toEqual(RULES.map(ruleCommand));
  });

  it('a tool that cannot run (no iptables in a controller image): says so, changes nothing', async () => {
    const { log, lines } = capturingLogger();
    const host = fakeHost(new Set(), { checkCode: 127 });
    expect(await ensureHostFirewall({ log, run: host.run, manage: true, rules: RULES })).toMatchObject({ status: 'unknown' });
    expect(host.calls.filter((c) => c.startsWith('bash'))).toEqual([]);
    expect(lines[0]?.msg).toContain('could not be checked');
  });
});

describe('checked again every minute while plugin networks exist (a firewall reload removes them with the engine still up)', () => {
  afterEach(() => void vi.useRealTimers());

  it('rules removed after a first check found them are put back at the next recheck', async () => {
    vi.useFakeTimers();
    const { log, lines } = capturingLogger();
    const host = fakeHost(new Set());
    for (const k of host.all()) host.present.add(k);
    const check = () => ensureHostFirewall({ log, run: host.run, manage: true, rules: RULES });
    const recheck = new FirewallRecheck(check, 60_000);
    recheck.follow(await check());
    host.present.clear(); // ufw reload
    await vi.advanceTimersByTimeAsync(59_000);
    expect(host.calls.filter((c) => c.startsWith('bash'))).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(host.calls.filter((c) => c.startsWith('bash'))).toEqual([`bash ${PROVISION_SCRIPT} firewall`]);
    expect(host.present).toEqual(host.all());
    expect(lines.map((l) => l.msg)).toContain('the host firewall rules for plugin networks are in place again');
    recheck.stop();
    host.present.clear();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(host.calls.filter((c) => c.startsWith('bash'))).toHaveLength(1);
  });

  it('not started where the first check could not tell (not root, a remote engine): that was said once', async () => {
    vi.useFakeTimers();
    let checks = 0;
    const recheck = new FirewallRecheck(() => Promise.resolve({ status: 'in-place' as const }).finally(() => void checks++), 1_000);
    recheck.follow({ status: 'unknown', reason: 'not managed by this process' });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(checks).toBe(0);
    recheck.follow({ status: 'in-place' });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(checks).toBe(5);
    recheck.stop();
  });
});
