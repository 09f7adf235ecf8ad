import path from 'node:path';
import { ControlClient } from '../control/client.js';
import type { ApplyResult, ApplyStep, DeployPlan } from '../index.js';
import type { CliIo } from './io.js';

/** `apply <dir> [--dry-run] [--prune] [--json]`: the plan, then each step as it ran. */
export async function applyCommand(dir: string, opts: { dryRun: boolean; prune: boolean; json: boolean }, io: CliIo): Promise<number> {
  const result = await ControlClient.forHome().apply(path.resolve(dir), opts);
  if (opts.json) {
    io.out(JSON.stringify(result, null, 2));
    return 0;
  }
  io.out(planText(result));
  return 0;
}

/** `load <dir>`: load the plugin folders under dir into the running controller and start them. */
export async function loadCommand(dir: string, io: CliIo): Promise<number> {
  const ids = await ControlClient.forHome().load(path.resolve(dir));
  io.out(`loaded and started: ${ids.join(', ')}`);
  return 0;
}

/** `unload <plugin>`: stop a plugin and forget it. */
export async function unloadCommand(id: string, io: CliIo): Promise<number> {
  await ControlClient.forHome().unload(id);
  io.out(`${id}: unloaded`);
  return 0;
}

export function planText(r: ApplyResult): string {
  const plan: DeployPlan = r.plan;
  const lines = [`${r.dryRun ? 'plan (dry run, nothing changed)' : 'applied'}: ${r.dir}`];
  const ran = new Map(r.steps.map((s) => [`${s.action} ${s.id}`, s]));
  const changed = new Map(plan.changed.map((c) => [c.id, c.what]));
  for (const step of plan.steps) {
    const what = step.action === 'replace' ? ` (${changed.get(step.id)?.join('; ')})` : '';
    const done = ran.get(`${step.action} ${step.id}`);
    lines.push(`  ${step.action.padEnd(9)} ${step.id}${what}${done ? `  ${stepTiming(done)}` : ''}`);
  }
  if (plan.unchanged.length) lines.push(`  unchanged ${plan.unchanged.join(', ')}`);
  if (plan.kept.length) lines.push(`  kept      ${plan.kept.join(', ')} (not in the folder; --prune removes them)`);
  if (!plan.steps.length) lines.push('  nothing to change');
  if (!r.dryRun) lines.push(`done in ${seconds(r.ms)}`);
  return lines.join('\n');
}

function stepTiming(s: ApplyStep): string {
  if (!s.ok) return `failed: ${s.error?.code}`;
  if (s.action === 'replace' && s.handover) return `${seconds(s.ms)} (new one ready and serving after ${seconds(s.readyMs ?? 0)}, old one gone ${seconds(s.retireMs ?? 0)} later)`;
  return seconds(s.ms);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}
