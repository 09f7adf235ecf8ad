import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** What must never be committed: scratch scripts and measurements belong under /tmp. */
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRATCH = /(^|\/)(scratch|tmp)\/|\.(tmp|scratch)\.|(^|\/)(scratch|notes?|todo)\.(ts|js|mjs|md|txt)$/i;

describe('repository hygiene', () => {
  it.skipIf(!existsSync(path.join(REPO, '.git')))('no scratch files are committed', () => {
    const files = execFileSync('git', ['ls-files'], { cwd: REPO, encoding: 'utf8' }).split('\n').filter(Boolean);
    // Templates end in .tmpl, which is not scratch.
    expect(files.filter((f) => SCRATCH.test(f) && !f.endsWith('.tmpl'))).toEqual([]);
  });
});
