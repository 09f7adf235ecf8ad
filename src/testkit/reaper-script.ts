/**
 * The program the reaper container runs (node, as root, with the engine's socket): it
 * listens on REAPER_PORT; once the test process that connected has gone (its connection
 * closed, cleanly or because the process died) and nobody connected again for a second,
 * it removes every container, network and volume labelled with the test's instance, and
 * the test's home folder (REAP_FOLDERS: names under /reap/<i>, each folder's parent
 * mounted there), then removes its own container. Late arrivals (a
 * container the engine was still creating when the test died) are looked for again until
 * two rounds in a row find nothing. What testcontainers' Ryuk does, for LogoMesh's labels,
 * and without an image to pull.
 */
export const REAPER_PORT = 8080;

export const REAPER_SCRIPT = `
import { rmSync } from 'node:fs';
import { request } from 'node:http';
import net from 'node:net';
import os from 'node:os';

const instance = process.env.REAP_INSTANCE;
const folders = JSON.parse(process.env.REAP_FOLDERS || '[]');
const filters = encodeURIComponent(JSON.stringify({ label: ['io.logomesh.instance=' + instance] }));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function api(method, path) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: '/var/run/docker.sock', method, path }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body ? JSON.parse(body) : null));
    });
    req.on('error', reject);
    req.end();
  });
}

async function round() {
  let found = 0;
  for (const c of (await api('GET', '/containers/json?all=1&filters=' + filters)) ?? []) {
    found++;
    await api('DELETE', '/containers/' + c.Id + '?force=1&v=1').catch(() => undefined);
  }
  for (const n of (await api('GET', '/networks?filters=' + filters)) ?? []) {
    found++;
    await api('DELETE', '/networks/' + n.Id).catch(() => undefined);
  }
  for (const v of ((await api('GET', '/volumes?filters=' + filters)) ?? {}).Volumes ?? []) {
    found++;
    await api('DELETE', '/volumes/' + v.Name).catch(() => undefined);
  }
  return found;
}

async function reap() {
  let quiet = 0;
  for (let i = 0; i < 30 && quiet < 2; i++) {
    quiet = (await round().catch(() => 1)) === 0 ? quiet + 1 : 0;
    if (quiet < 2) await sleep(500);
  }
  folders.forEach((name, i) => rmSync('/reap/' + i + '/' + name, { recursive: true, force: true }));
  console.log('reaped ' + instance);
  // Its own container (the engine names it by the host name it gave it) goes last.
  await api('DELETE', '/containers/' + os.hostname() + '?force=1').catch(() => undefined);
  process.exit(0);
}

let clients = 0;
let timer;
net
  .createServer((socket) => {
    clients++;
    clearTimeout(timer);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (--clients === 0) timer = setTimeout(reap, 1000);
    });
    socket.write('ready\\n');
  })
  .listen(${REAPER_PORT}, () => console.log('reaper listening'));
`;
