// Opening a connection to the hub: one attempt (the plugin's Unix socket, or TCP to a hub
// across nodes with its signed handshake), the hub's refusals read from its answer to the
// upgrade, and the first connection's retries (docs/protocol.md). connection.js reconnects
// through the same attempt.
import { WebSocket } from 'ws';
import { errorText, LogoMeshError } from './errors.js';
import { noop, RECONNECT_MAX_DELAY_MS, RETRYABLE } from './options.js';
import { MAX_MESSAGE_BYTES } from './protocol.js';
import { pluginName } from './state.js';
import { tcpConnectOptions } from './hub-auth.js';

/** Where the hub is: a hub across nodes (LOGOMESH_HUB_URL), or the plugin's own Unix socket. */
export function endpoint(s) {
  return s.opts.hubUrl ?? s.opts.socketPath;
}

/**
 * One connection attempt. Across nodes, each attempt reads the key afresh and signs a new
 * nonce; the Unix socket needs nothing (its owner is the proof).
 */
export function openHub(s, handshakeTimeout) {
  if (!s.opts.hubUrl) return openSocket(`ws+unix://${s.opts.socketPath}:/v1`, handshakeTimeout, { headers: { Host: 'logomesh' } });
  if (!s.plugin.id) return Promise.reject(new LogoMeshError('LM_UNAUTHORIZED', 'LOGOMESH_HUB_URL is set but the plugin has no id (LOGOMESH_PLUGIN_ID) to prove'));
  return openSocket(s.opts.hubUrl, handshakeTimeout, tcpConnectOptions(s.plugin.id));
}

/** TCP failures a hub across nodes may give while it starts or moves (its Pod rescheduled), and its refusals worth another try. */
const TCP_RETRYABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);
const REFUSALS_TO_RETRY = new Set([401, 429, 503]);

/** Say once on stderr why the hub refused the connection: its code, never the key or the header. */
export function noteRefusal(s, err) {
  const why = `${err.refusal ?? 'HTTP'} (${err.status})`;
  if (s.lastRefusal !== why) s.log('warn', `plugin ${pluginName(s)}: the hub refused the connection: ${why}; trying again`);
  s.lastRefusal = why;
  return why;
}

/**
 * The first connection: a socket that is not there yet is retried for connectTimeoutMs. A hub
 * across nodes is waited for as long as a reconnection (it may be moving), and its 401 (it
 * does not know the plugin yet, or the key was rotated) is retried with backoff, never in a
 * tight loop.
 */
export async function connect(s) {
  const tcp = s.opts.hubUrl !== undefined;
  const deadline = Date.now() + (tcp ? Math.max(s.opts.connectTimeoutMs, s.reconnectMs ?? s.opts.reconnectMs) : s.opts.connectTimeoutMs);
  let delay = 20;
  for (;;) {
    try {
      return await openHub(s);
    } catch (err) {
      if (s.stopping) throw new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'stopped while connecting to the hub');
      if (err instanceof LogoMeshError) throw err; // no key to connect with
      const refused = tcp && REFUSALS_TO_RETRY.has(err?.status);
      if (refused) noteRefusal(s, err);
      const retry = RETRYABLE.has(err?.code) || (tcp && (TCP_RETRYABLE.has(err?.code) || refused));
      if (retry && Date.now() + delay < deadline) {
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, tcp ? RECONNECT_MAX_DELAY_MS : 500);
        continue;
      }
      const unset = tcp || process.env.LOGOMESH_HUB_SOCKET ? '' : ' (LOGOMESH_HUB_SOCKET is not set: is this plugin running under LogoMesh?)';
      throw new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', `cannot connect to the hub at ${endpoint(s)}: ${errorText(err)}${unset}`, {
        socket: endpoint(s),
        ...(err?.status ? { status: err.status, refusal: err.refusal } : {}),
      });
    }
  }
}

function openSocket(url, handshakeTimeout, extra) {
  return new Promise((resolve, reject) => {
    // permessage-deflate costs latency on small messages; the hub does not use it. A frame
    // over the largest configurable message size is not read: the connection closes (1009).
    // No agent: ws never goes through HTTP_PROXY or HTTPS_PROXY (they name the plugin's
    // egress proxy, not a way to its hub), and none is given here.
    // The mask of every frame left all zeros (generateMask): ws then writes a text frame
    // without copying it into a Buffer and XOR-ing it. Masking protects HTTP proxies from
    // frames a browser script chose; a plugin's own socket or the hub's port has none.
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: MAX_MESSAGE_BYTES, generateMask: noop, ...extra, ...(handshakeTimeout ? { handshakeTimeout } : {}) });
    const failed = (err) => {
      ws.removeAllListeners();
      ws.on('error', noop);
      reject(err);
    };
    ws.once('open', () => {
      ws.removeAllListeners();
      resolve(ws);
    });
    ws.once('error', failed);
    ws.once('unexpected-response', (req, res) => {
      // The hub's refusal names its code in a small JSON body: read it (bounded), then give up the request.
      let body = '';
      let over = false;
      const done = () => {
        if (over) return;
        over = true;
        req.destroy();
        let refusal;
        try {
          refusal = JSON.parse(body).code;
        } catch {
          refusal = undefined;
        }
        const err = new Error(`the hub answered the WebSocket upgrade with HTTP ${res.statusCode}${typeof refusal === 'string' ? ` (${refusal})` : ''}`);
        err.status = res.statusCode;
        if (typeof refusal === 'string') err.refusal = refusal;
        failed(err);
      };
      res.on('data', (c) => {
        body += c;
        if (body.length > 4096) res.destroy();
      });
      res.once('end', done);
      res.once('close', done);
      res.once('error', done);
    });
  });
}
