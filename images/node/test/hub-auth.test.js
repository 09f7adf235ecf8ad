// A hub across nodes: the handshake's test vector, and a plugin connecting over TCP with its
// key, read afresh at every attempt, retrying after the hub's 401 (docs/kubernetes.md).
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { hubAuthorization, Plugin } from 'logomesh';

const VECTOR =
  'LogoMesh-HMAC-SHA256 plugin="analyzer", ts="1780000000000", nonce="0123456789abcdef0123456789abcdef", sig="68534c9927a1ceef4d282c2b274fd8d638d75733d050ede5a61c87939409c584"';
const HEADER = /^LogoMesh-HMAC-SHA256 plugin="([a-z0-9-]+)", ts="([0-9]+)", nonce="([0-9a-f]{32})", sig="([0-9a-f]{64})"$/;

/** The hub's check, written again here: the plugin id when the signature is right. */
function check(header, keys) {
  const m = HEADER.exec(header ?? '');
  if (!m) return undefined;
  const [, plugin, ts, nonce, sig] = m;
  const want = createHmac('sha256', keys[plugin]).update(`logomesh-hub-v1\n${plugin}\n${ts}\n${nonce}`).digest();
  return timingSafeEqual(want, Buffer.from(sig, 'hex')) && Math.abs(Date.now() - Number(ts)) < 60_000 ? plugin : undefined;
}

/**
 * A hub's plugin port from the socket up: the first upgrade refused with the hub's 401 (after
 * onFirst ran, so a key rotated there is what the retry must read), every header checked,
 * hello answered. listen: net.createServer, or a TLS server's maker.
 */
function tinyHub(keys, onFirst = () => {}, listen = net.createServer) {
  const seen = [];
  let resolveHello;
  const hello = new Promise((r) => (resolveHello = r));
  const server = listen((sock) => {
    let buf = Buffer.alloc(0);
    let upgraded = false;
    sock.on('error', () => {});
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
        buf = buf.subarray(end + 4);
        const fields = Object.fromEntries(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
        seen.push(fields);
        if (seen.length === 1) onFirst();
        const plugin = check(fields.authorization, keys);
        if (seen.length === 1 || !plugin) {
          const body = JSON.stringify({ code: 'LM_UNAUTHORIZED', message: 'plugin handshake refused: unknown plugin' });
          sock.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
          return;
        }
        const accept = createHash('sha1').update(`${fields['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
        upgraded = true;
      }
      if (buf.length < 2) return;
      let n = buf[1] & 0x7f;
      let at = 2;
      if (n === 126) {
        n = buf.readUInt16BE(2);
        at = 4;
      }
      if (buf.length < at + 4 + n) return;
      const mask = buf.subarray(at, at + 4);
      const data = Buffer.from(buf.subarray(at + 4, at + 4 + n).map((b, i) => b ^ mask[i % 4]));
      const text = (buf[0] & 0x0f) === 1;
      buf = Buffer.alloc(0);
      if (!text) return; // the plugin's close frame
      const msg = JSON.parse(data.toString());
      if (msg.type !== 'hello') return;
      const answer = Buffer.from(JSON.stringify({ type: 'response', id: 'h1', correlationId: msg.id, success: true, data: { plugin: 'subject', protocol: 1, maxMessageBytes: 1048576 } }));
      sock.write(Buffer.concat([Buffer.from([0x81, 126, answer.length >> 8, answer.length & 0xff]), answer]));
      resolveHello(msg);
    });
  });
  return { server, seen, hello };
}

describe('a hub across nodes (LOGOMESH_HUB_URL)', () => {
  it('the test vector every SDK reproduces', () => {
    assert.equal(hubAuthorization(Buffer.alloc(32, 7), 'analyzer', 1780000000000, '0123456789abcdef0123456789abcdef'), VECTOR);
  });

  it('connects over TCP with its key read at every attempt, retrying after 401, never through the proxy variables', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-hub-auth-'));
    const keyFile = path.join(dir, 'key');
    const rotated = randomBytes(32);
    writeFileSync(keyFile, randomBytes(32));
    // The Secret rotates while the plugin waits to try again: at the first attempt, before its 401.
    const hub = tinyHub({ subject: rotated }, () => writeFileSync(keyFile, rotated));
    await new Promise((r) => hub.server.listen(0, '127.0.0.1', r));
    const { port } = hub.server.address();
    const saved = { ...process.env };
    Object.assign(process.env, { LOGOMESH_HUB_URL: `ws://127.0.0.1:${port}/v1`, LOGOMESH_HUB_CREDENTIAL: keyFile, HTTP_PROXY: 'http://127.0.0.1:9', HTTPS_PROXY: 'http://127.0.0.1:9' });
    const logs = [];
    const plugin = new Plugin({ pluginId: 'subject', exit: false, handleSignals: false, log: (level, message) => logs.push(`${level}: ${message}`) });
    plugin.method('echo', (x) => x);
    try {
      const running = plugin.run();
      running.catch(() => {});
      const hello = await hub.hello;
      assert.deepEqual(hello.methods, ['echo']);
      await plugin.shutdown(0);
      await running.catch(() => {});
    } finally {
      process.env = saved;
      hub.server.close();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(hub.seen.length, 2);
    assert.equal(check(hub.seen[1].authorization, { subject: rotated }), 'subject');
    assert.notEqual(HEADER.exec(hub.seen[0].authorization)[3], HEADER.exec(hub.seen[1].authorization)[3]);
    assert.equal(hub.seen[1].host, `127.0.0.1:${port}`);
    const text = logs.join('\n');
    assert.match(text, /the hub refused the connection: LM_UNAUTHORIZED \(401\)/);
    assert.doesNotMatch(text, /sig=|Authorization/);
  });

  it('connects to a wss:// hub, trusting the CA of LOGOMESH_HUB_CA (tls loads on first use in the bundle)', async () => {
    // A self-signed certificate for 127.0.0.1, made for this test only (fixtures/hub-tls-*.pem).
    const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
    const cert = readFileSync(path.join(fixtures, 'hub-tls-cert.pem'));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-hub-tls-'));
    const keyFile = path.join(dir, 'key');
    const key = randomBytes(32);
    writeFileSync(keyFile, key);
    const hub = tinyHub({ subject: key }, () => {}, (onSocket) => tls.createServer({ key: readFileSync(path.join(fixtures, 'hub-tls-key.pem')), cert }, onSocket));
    await new Promise((r) => hub.server.listen(0, '127.0.0.1', r));
    const { port } = hub.server.address();
    const saved = { ...process.env };
    Object.assign(process.env, { LOGOMESH_HUB_URL: `wss://127.0.0.1:${port}/v1`, LOGOMESH_HUB_CREDENTIAL: keyFile, LOGOMESH_HUB_CA: path.join(fixtures, 'hub-tls-cert.pem') });
    const plugin = new Plugin({ pluginId: 'subject', exit: false, handleSignals: false, log: false });
    plugin.method('echo', (x) => x);
    try {
      const running = plugin.run();
      running.catch(() => {});
      assert.deepEqual((await hub.hello).methods, ['echo']);
      await plugin.ready();
      await plugin.shutdown(0);
      await running.catch(() => {});
    } finally {
      process.env = saved;
      hub.server.close();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(hub.seen.length, 2);
    assert.equal(check(hub.seen[1].authorization, { subject: key }), 'subject');
  });

  it('refuses a wss:// hub whose certificate no trusted CA signed, before sending anything', async () => {
    const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-hub-tls-'));
    const keyFile = path.join(dir, 'key');
    writeFileSync(keyFile, randomBytes(32));
    const hub = tinyHub({}, () => {}, (onSocket) => tls.createServer({ key: readFileSync(path.join(fixtures, 'hub-tls-key.pem')), cert: readFileSync(path.join(fixtures, 'hub-tls-cert.pem')) }, onSocket));
    await new Promise((r) => hub.server.listen(0, '127.0.0.1', r));
    const saved = { ...process.env };
    Object.assign(process.env, { LOGOMESH_HUB_URL: `wss://127.0.0.1:${hub.server.address().port}/v1`, LOGOMESH_HUB_CREDENTIAL: keyFile });
    delete process.env.LOGOMESH_HUB_CA;
    try {
      const plugin = new Plugin({ pluginId: 'subject', exit: false, handleSignals: false, log: false });
      await assert.rejects(plugin.run(), { code: 'LM_CONTROLLER_UNAVAILABLE', message: /self-signed certificate/ });
    } finally {
      process.env = saved;
      hub.server.close();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(hub.seen.length, 0);
  });

  it('a URL without a key file is refused at once with LM_UNAUTHORIZED', async () => {
    const saved = { ...process.env };
    process.env.LOGOMESH_HUB_URL = 'ws://127.0.0.1:9/v1';
    delete process.env.LOGOMESH_HUB_CREDENTIAL;
    try {
      const plugin = new Plugin({ pluginId: 'subject', exit: false, handleSignals: false, log: false });
      await assert.rejects(plugin.run(), { code: 'LM_UNAUTHORIZED' });
    } finally {
      process.env = saved;
    }
  });
});
