import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../log.js';
import { REPO_DIR } from '../../paths.js';

/**
 * The host firewall rules for plugin networks (src/provision/egress-firewall.rules), the second
 * layer under the networks' missing host address. Provisioning installs them; the controller
 * checks them when it starts its first networked plugin, whenever the engine comes back and
 * every minute while it has plugin networks (FirewallRecheck), and as root runs
 * provisioning's `firewall` step again for any that went missing. The
 * rules are in the host's INPUT chain, which the engine never rewrites, so a restart of the
 * engine does not remove them; something else (a firewall reload, a reboot) can.
 */
export const FIREWALL_RULES_FILE = path.join(REPO_DIR, 'src', 'provision', 'egress-firewall.rules');
export const PROVISION_SCRIPT = path.join(REPO_DIR, 'src', 'provision', 'provision.sh');

export interface FirewallRule {
  readonly tool: 'iptables' | 'ip6tables';
  readonly chain: string;
  readonly spec: readonly string[];
}

/** The rules of the file's text: `<tool> <chain> <rule...>` a line, `#` comments. */
export function parseFirewallRules(text: string): FirewallRule[] {
  const rules: FirewallRule[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [tool, chain, ...spec] = line.split(/\s+/);
    if ((tool !== 'iptables' && tool !== 'ip6tables') || !chain || spec.length === 0) throw new Error(`${FIREWALL_RULES_FILE}:${i + 1}: expected '<iptables|ip6tables> <chain> <rule>', found '${line}'`);
    rules.push({ tool, chain, spec });
  }
  return rules;
}

/** What an operator runs to add a rule when it is missing (the same as provisioning does). */
export function ruleCommand(r: FirewallRule): string {
  return `${r.tool} -C ${r.chain} ${r.spec.join(' ')} || ${r.tool} -I ${r.chain} 1 ${r.spec.join(' ')}`;
}

/** Runs a command; resolves with its exit code (127: it could not be run) and its stderr. */
export type Runner = (cmd: string, args: readonly string[]) => Promise<{ code: number; stderr: string }>;

export const runCommand: Runner = (cmd, args) =>
  new Promise((resolve) => {
    execFile(cmd, [...args], { timeout: 60_000 }, (err, _stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 127) : 0;
      resolve({ code, stderr: String(stderr || (err && code === 127 ? err.message : '')).trim() });
    });
  });

export type FirewallState =
  | { readonly status: 'in-place' }
  | { readonly status: 'missing'; readonly missing: readonly FirewallRule[] }
  | { readonly status: 'unknown'; readonly reason: string };

/** Check every rule with `<tool> -C`: exit 0 present, 1 missing, anything else unknown. */
export async function checkHostFirewall(rules: readonly FirewallRule[], run: Runner): Promise<FirewallState> {
  const missing: FirewallRule[] = [];
  for (const r of rules) {
    const { code, stderr } = await run(r.tool, ['-w', '5', '-C', r.chain, ...r.spec]);
    if (code === 1) missing.push(r);
    else if (code !== 0) return { status: 'unknown', reason: `${r.tool} -C ${r.chain} exited ${code}${stderr ? `: ${stderr}` : ''}` };
  }
  return missing.length ? { status: 'missing', missing } : { status: 'in-place' };
}

export interface EnsureFirewallOptions {
  readonly log: Logger;
  readonly run?: Runner;
  /** Default: this process runs as root and talks to a local engine (no DOCKER_HOST). */
  readonly manage?: boolean;
  readonly rules?: readonly FirewallRule[];
}

/**
 * Check the rules and, when this process manages the host's firewall (root, local engine),
 * put back those missing by running provisioning's `firewall` step; otherwise say which
 * commands the operator must run. Never throws: the networks' missing host address already
 * keeps plugins off the host; this is the second layer.
 */
export async function ensureHostFirewall(opts: EnsureFirewallOptions): Promise<FirewallState> {
  const { log } = opts;
  const run = opts.run ?? runCommand;
  const manage = opts.manage ?? (process.getuid?.() === 0 && !process.env.DOCKER_HOST);
  let rules: readonly FirewallRule[];
  try {
    rules = opts.rules ?? parseFirewallRules(readFileSync(FIREWALL_RULES_FILE, 'utf8'));
  } catch (err) {
    log.error({ err: String(err) }, 'the host firewall rules for plugin networks cannot be read');
    return { status: 'unknown', reason: String(err) };
  }
  const advise = (why: string, todo: readonly FirewallRule[]) =>
    log.warn({ commands: todo.map(ruleCommand) }, `${why}: plugins still have no route to the host (their networks hold no host address); for the second layer, run as root on the engine's host: ${todo.map(ruleCommand).join('; ')}`);
  if (!manage) {
    advise('the host firewall rules for plugin networks are not checked (not root, or the engine is remote)', rules);
    return { status: 'unknown', reason: 'not managed by this process' };
  }
  const before = await checkHostFirewall(rules, run);
  if (before.status === 'in-place') {
    log.debug('the host firewall rules for plugin networks are in place');
    return before;
  }
  if (before.status === 'unknown') {
    advise(`the host firewall rules for plugin networks could not be checked (${before.reason})`, rules);
    return before;
  }
  log.warn({ missing: before.missing.map(ruleCommand) }, 'host firewall rules for plugin networks are missing: adding them again (provision.sh firewall)');
  const p = await run('bash', [PROVISION_SCRIPT, 'firewall']);
  const after = await checkHostFirewall(rules, run);
  if (after.status === 'in-place') log.info('the host firewall rules for plugin networks are in place again');
  else advise(`the host firewall rules for plugin networks could not be added (provision.sh firewall exited ${p.code}${p.stderr ? `: ${p.stderr}` : ''})`, after.status === 'missing' ? after.missing : rules);
  return after;
}

/** How often the rules are checked again while plugin networks exist: two `iptables -C` runs (7 ms a pair here) a minute. */
export const FIREWALL_RECHECK_MS = 60_000;

/**
 * The rules checked again every `everyMs` once a first check found them in place: a firewall
 * reload (`ufw reload`, `firewall-cmd --reload`, a `netfilter-persistent` restore) removes
 * them without the engine going away, and the engine's return is the only other time they
 * are checked. Not started where the first check could not tell (not root, a remote engine):
 * that case was logged once with the commands to run, and repeating it every minute helps no
 * one. A check still running when the next is due is not doubled.
 */
export class FirewallRecheck {
  private timer?: NodeJS.Timeout;
  private running = false;

  constructor(
    private readonly check: () => Promise<FirewallState>,
    private readonly everyMs = FIREWALL_RECHECK_MS,
  ) {}

  /** Begin after a first check's result; idempotent. */
  follow(first: FirewallState): void {
    if (this.timer || first.status !== 'in-place') return;
    this.timer = setInterval(() => void this.again(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async again(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.check();
    } finally {
      this.running = false;
    }
  }
}
