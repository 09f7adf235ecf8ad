#!/usr/bin/env node
// Writes src/violations/syscall-names.ts: system call numbers to names, for the architectures
// whose seccomp kills the controller reads in the kernel log (x86_64, and i386 since a
// 32-bit call on x86_64 is killed too). Read from the Linux UAPI headers (Debian package
// linux-libc-dev):
//
//   node images/seccomp/syscall-names.mjs /usr/include/x86_64-linux-gnu/asm
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** `#define __NR_<name> <number>` lines of a unistd header, as number → name. */
function table(file) {
  const out = {};
  for (const m of readFileSync(file, 'utf8').matchAll(/^#define __NR_(\w+)\s+(\d+)\s*$/gm)) out[m[2]] = m[1];
  return out;
}

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node images/seccomp/syscall-names.mjs <include>/asm');
  process.exit(2);
}
// AUDIT_ARCH_X86_64 and AUDIT_ARCH_I386, as the kernel prints them (arch=c000003e).
const arches = { c000003e: table(path.join(dir, 'unistd_64.h')), 40000003: table(path.join(dir, 'unistd_32.h')) };
const here = path.dirname(fileURLToPath(import.meta.url));
const target = path.join(here, '..', '..', 'src', 'violations', 'syscall-names.ts');
const body = Object.entries(arches)
  .map(([arch, t]) => `  '${arch}': ${JSON.stringify(t)},`)
  .join('\n');
writeFileSync(
  target,
  `// Written by images/seccomp/syscall-names.mjs from the Linux UAPI headers; do not edit.\n` +
    `/** System call names by audit architecture (as the kernel log prints it), then by number. */\n` +
    `export const SYSCALL_NAMES: Readonly<Record<string, Readonly<Record<string, string>>>> = {\n${body}\n};\n\n` +
    `/** The architectures' names, for messages. */\n` +
    `export const AUDIT_ARCHES: Readonly<Record<string, string>> = { c000003e: 'x86_64', '40000003': 'i386 (32-bit)' };\n`,
);
console.log(`wrote ${target}`);
