import { useEffect, useRef, useState } from 'preact/hooks';
import { fmtBytes, fmtTime, get, post } from './api.js';
import { Charts } from './charts.js';
import { html } from './html.js';

const enc = encodeURIComponent;
const pct = (n) => (n === undefined ? '' : `${n.toFixed(1)}%`);

/** Polls `path` every `ms` while the view is open. */
function usePoll(path, ms, deps = []) {
  const [data, setData] = useState(undefined);
  const [error, setError] = useState('');
  useEffect(() => {
    let stop = false;
    const load = () =>
      get(path).then(
        (d) => !stop && (setData(d), setError('')),
        (e) => !stop && setError(`${e.code}: ${e.message}`),
      );
    load();
    const t = setInterval(load, ms);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [path, ...deps]);
  return [data, error];
}

function Row({ r, selected, onSelect }) {
  const mem = r.memory === undefined ? '' : `${fmtBytes(r.memory)} / ${fmtBytes(r.memoryLimit)}`;
  const memPct = r.memory && r.memoryLimit ? Math.min(100, (r.memory / r.memoryLimit) * 100) : 0;
  return html`<tr class=${selected ? 'sel' : ''} data-testid="plugin-row" data-plugin=${r.id} data-state=${r.state} onClick=${() => onSelect(r.id)}>
    <td class="id">${r.id}</td>
    <td><span class=${`state ${r.state}`}>${r.state}</span></td>
    <td>${r.runtime}</td>
    <td>${r.version}</td>
    <td>${pct(r.cpu)}${r.cpuLimit !== undefined ? html`<small> / ${r.cpuLimit}%</small>` : ''}</td>
    <td><div class="bar"><div style=${{ width: `${memPct}%` }}></div></div>${mem}</td>
    <td>${r.pids !== undefined ? `${r.pids} / ${r.pidsLimit}` : ''}</td>
    <td>${r.handles ?? ''}</td>
    <td>${r.connections ?? ''}</td>
    <td>${r.restarts}</td>
    <td class="err" data-testid="last-error">${r.lastError ? `${r.lastError.code}: ${r.lastError.message}` : ''}</td>
  </tr>`;
}

function Actions({ id, act }) {
  const [target, setTarget] = useState('');
  const [kind, setKind] = useState('method');
  const [limits, setLimits] = useState({ memoryMB: '', cpuPercent: '', processes: '' });
  const lifecycle = (a) => act(`${a[0].toUpperCase()}${a.slice(1)} ${id}`, `This will ${a} plugin ${id}.`, () => post(`/api/plugins/${enc(id)}/${a}`, {}));
  const perm = (a) =>
    act(`${a === 'revoke' ? 'Revoke' : 'Grant'} ${kind} ${target}`, `${a === 'revoke' ? 'Take' : 'Give'} ${kind} ${target} ${a === 'revoke' ? 'away from' : 'to'} plugin ${id}.`, () =>
      post(`/api/plugins/${enc(id)}/${a}`, { kind, [kind]: target }),
    );
  const setLimit = () =>
    act(`Change the limits of ${id}`, `Live, without a restart: ${Object.entries(limits).filter(([, v]) => v !== '').map(([k, v]) => `${k} ${v}`).join(', ') || 'nothing'}.`, () => post(`/api/plugins/${enc(id)}/limits`, limits));
  return html`<div class="actions" data-testid="actions">
    <div>
      <button data-testid="act-stop" onClick=${() => lifecycle('stop')}>Stop</button>
      <button data-testid="act-start" onClick=${() => lifecycle('start')}>Start</button>
      <button data-testid="act-restart" onClick=${() => lifecycle('restart')}>Restart</button>
    </div>
    <div>
      <select data-testid="perm-kind" value=${kind} onChange=${(e) => setKind(e.target.value)}>
        <option value="method">method</option><option value="host">host</option><option value="path">path</option>
      </select>
      <input data-testid="perm-target" placeholder="tokenizer.tokenize, api.example.com:443, /srv/data" value=${target} onInput=${(e) => setTarget(e.target.value)} />
      <button data-testid="act-revoke" onClick=${() => perm('revoke')}>Revoke</button>
      <button data-testid="act-grant" onClick=${() => perm('grant')}>Grant</button>
    </div>
    <div>
      ${['memoryMB', 'cpuPercent', 'processes'].map(
        (k) => html`<input class="num" data-testid=${`limit-${k}`} placeholder=${k} value=${limits[k]} onInput=${(e) => setLimits({ ...limits, [k]: e.target.value })} />`,
      )}
      <button data-testid="act-limits" onClick=${setLimit}>Change limits</button>
    </div>
  </div>`;
}

export function PluginsView({ grid, session, selected, setSelected, act, setView }) {
  const rows = grid.rows ?? [];
  // The update latency: from the controller's sample to this render (docs/console.md).
  const [lag, setLag] = useState(undefined);
  useEffect(() => {
    if (grid.time) setLag(Date.now() - grid.time);
  }, [grid.time]);
  const sel = rows.find((r) => r.id === selected);
  return html`<section>
    <p class="meta">
      ${rows.length} plugins · updated <span data-testid="grid-time">${grid.time ? fmtTime(grid.time) : '…'}</span>
      ${lag !== undefined ? html` · shown <span data-testid="lag">${lag}</span> ms after sampling (sampling took ${grid.tickMs} ms)` : ''}
      ${grid.monitor ? html` · <span class="error">no usage: ${grid.monitor}</span>` : ''}
    </p>
    <table class="grid" data-testid="grid">
      <thead><tr><th>plugin</th><th>state</th><th>runtime</th><th>version</th><th>CPU</th><th>memory / limit</th><th>pids</th><th>handles</th><th>conns</th><th>restarts</th><th>last error</th></tr></thead>
      <tbody>${rows.map((r) => html`<${Row} key=${r.id} r=${r} selected=${r.id === selected} onSelect=${setSelected} />`)}</tbody>
    </table>
    ${sel &&
    html`<div class="detail" data-testid="detail">
      <h2>${sel.id} <small>${sel.runtime} ${sel.version}</small> <button onClick=${() => setView('logs')}>Logs</button> <button onClick=${() => setView('timeline')}>Why it stopped</button></h2>
      <${Charts} plugin=${sel.id} />
      ${session.role === 'operator' ? html`<${Actions} id=${sel.id} act=${act} />` : html`<p class="meta">Read-only session: no actions.</p>`}
    </div>`}
  </section>`;
}

export function TimelineView({ selected, openAudit }) {
  const [plugin, setPlugin] = useState(selected);
  const [data, error] = usePoll(`/api/timeline${plugin ? `?plugin=${enc(plugin)}` : ''}`, 2000, [plugin]);
  return html`<section>
    <p><label>Plugin <input data-testid="timeline-plugin" value=${plugin} onInput=${(e) => setPlugin(e.target.value.trim())} placeholder="all plugins" /></label></p>
    ${error && html`<p class="error">${error}</p>`}
    <ol class="timeline" data-testid="timeline">
      ${(data?.events ?? []).map(
        (e) => html`<li class=${`ev ${e.kind}`} data-testid="timeline-event" data-kind=${e.kind} data-plugin=${e.plugin}>
          <time>${fmtTime(e.time)}</time>
          <b>${e.plugin}</b> <span class="kind">${e.kind}</span>
          <div class="cause" data-testid="timeline-cause">${e.cause}</div>
          <div>Action: ${e.action} ${e.code ? html`<code>${e.code}</code>` : ''} · <a href="#" data-testid="timeline-ref" onClick=${(ev) => (ev.preventDefault(), openAudit({ ref: e.ref, since: e.time, until: e.time }))}>audit entry ${e.ref}</a></div>
        </li>`,
      )}
    </ol>
  </section>`;
}

/** Nodes on a circle, an arrow per allowed call; the table below carries the same facts in words. */
export function GraphView() {
  const [g, error] = usePoll('/api/graph', 2000);
  const nodes = g?.nodes ?? [];
  const ids = [...nodes.map((n) => n.id), ...((g?.edges ?? []).some((e) => e.to === 'host' || e.from === 'host') ? ['host'] : [])];
  const R = Math.max(140, ids.length * 14);
  const size = 2 * R + 160;
  const pos = new Map(ids.map((id, i) => [id, [size / 2 + R * Math.cos((2 * Math.PI * i) / ids.length - Math.PI / 2), size / 2 + R * Math.sin((2 * Math.PI * i) / ids.length - Math.PI / 2)]]));
  const edges = g?.edges ?? [];
  return html`<section>
    ${error && html`<p class="error">${error}</p>`}
    <p class="meta">Calls allowed by the manifests (consumesMethods → exposesMethods), and the host application's calls it has made; rates and p50/p99 over the last ${g ? Math.round(g.windowS) : '…'} s. Red dashed: revoked by an operator; grey dotted: the target does not expose it.</p>
    <svg class="graph" data-testid="graph" viewBox=${`0 0 ${size} ${size}`} width=${Math.min(size, 900)} height=${Math.min(size, 900)}>
      <defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" /></marker></defs>
      ${edges.map((e) => {
        const [x1, y1] = pos.get(e.from) ?? [0, 0];
        const [x2, y2] = pos.get(e.to) ?? [0, 0];
        return html`<g class=${`edge${e.revoked ? ' revoked' : ''}${e.dangling ? ' dangling' : ''}${e.rate > 0 ? ' busy' : ''}`}>
          <line x1=${x1} y1=${y1} x2=${x1 + (x2 - x1) * 0.92} y2=${y1 + (y2 - y1) * 0.92} marker-end="url(#arrow)" />
          <text x=${(x1 + x2) / 2} y=${(y1 + y2) / 2}>${e.method}${e.rate > 0 ? ` ${e.rate}/s` : ''}</text>
        </g>`;
      })}
      ${ids.map((id) => {
        const [x, y] = pos.get(id);
        return html`<g class=${`node${id === 'host' ? ' host' : ''}`}><circle cx=${x} cy=${y} r="22" /><text x=${x} y=${y + 38}>${id}</text></g>`;
      })}
    </svg>
    <table class="edges" data-testid="edges">
      <thead><tr><th>caller</th><th>target</th><th>method</th><th>state</th><th>calls/s</th><th>p50</th><th>p99</th><th>errors</th><th>total</th></tr></thead>
      <tbody>
        ${edges.map(
          (e) => html`<tr data-testid="edge" data-edge=${`${e.from}>${e.to}.${e.method}`} class=${e.revoked ? 'revoked' : ''}>
            <td>${e.from}</td><td>${e.to}</td><td>${e.method}</td><td>${e.revoked ? 'revoked' : e.dangling ? 'not exposed' : 'allowed'}</td>
            <td>${e.rate}</td><td>${e.p50Ms !== undefined ? `${e.p50Ms} ms` : ''}</td><td>${e.p99Ms !== undefined ? `${e.p99Ms} ms` : ''}</td><td>${e.errors}</td><td>${e.total}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

// Inputs are controlled with onInput, not onChange: the live grid re-renders every second, and
// a re-render between a keystroke and the change event would put the old value back.
const toLocal = (ms) => (ms ? new Date(ms - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 19) : '');

export function AuditView({ auditFilter }) {
  const [f, setF] = useState({ plugin: '', action: '', result: '', text: '', since: '', until: '' });
  const [ref, setRef] = useState('');
  useEffect(() => {
    if (auditFilter?.ref) {
      setRef(auditFilter.ref);
      setF({ plugin: '', action: '', result: '', text: '', since: toLocal(auditFilter.since - 1000), until: toLocal(auditFilter.until + 1000) });
    }
  }, [auditFilter]);
  const q = new URLSearchParams();
  for (const k of ['plugin', 'action', 'result', 'text']) if (f[k]) q.set(k, f[k]);
  if (f.since) q.set('since', String(new Date(f.since).getTime()));
  if (f.until) q.set('until', String(new Date(f.until).getTime()));
  const [data, error] = usePoll(`/api/audit?${q}`, 3000, []);
  const field = (k, label, type = 'text') => html`<label>${label} <input type=${type} step="1" data-testid=${`audit-${k}`} value=${f[k]} onInput=${(e) => { const v = e.target.value; setF((old) => ({ ...old, [k]: v })); }} /></label>`;
  const chain = data?.chain;
  return html`<section>
    <form class="filters" onSubmit=${(e) => e.preventDefault()}>
      ${field('plugin', 'Plugin')} ${field('action', 'Action')} ${field('result', 'Result')} ${field('text', 'Text')} ${field('since', 'Since', 'datetime-local')} ${field('until', 'Until', 'datetime-local')}
      <button type="button" data-testid="audit-clear" onClick=${() => (setF({ plugin: '', action: '', result: '', text: '', since: '', until: '' }), setRef(''))}>Clear</button>
    </form>
    ${chain &&
    html`<p class=${chain.ok ? 'chain ok' : 'chain broken'} data-testid="chain">
      ${chain.ok ? `Chain verified: ${chain.lines} entries in ${chain.files} file(s), none edited or removed` : `Chain BROKEN at ${chain.breaks.map((b) => `${b.file}:${b.line} (${b.why})`).join(', ')}`}
      ${chain.startsAfterRemovedFiles ? ' (starts after files removed by rotation)' : ''}
    </p>`}
    ${error && html`<p class="error">${error}</p>`}
    <table class="audit" data-testid="audit">
      <thead><tr><th>time</th><th>who</th><th>action</th><th>resource</th><th>result</th><th>code</th><th>reason</th><th>entry</th></tr></thead>
      <tbody>
        ${(data?.rows ?? []).map(
          (e) => html`<tr data-testid="audit-row" class=${e.ref === ref ? 'sel' : ''} data-ref=${e.ref}>
            <td>${fmtTime(e.time)}</td><td>${e.who}</td><td>${e.action}</td><td class="res">${e.resource}</td><td>${e.result}${e.count ? ` ×${e.count + 1}` : ''}</td><td>${e.code ?? ''}</td><td class="reason">${e.reason ?? ''}</td><td>${e.ref}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

export function LogsView({ grid, selected, setSelected }) {
  const [lines, setLines] = useState([]);
  const [follow, setFollow] = useState(true);
  const box = useRef(null);
  useEffect(() => {
    setLines([]);
    if (!selected) return undefined;
    const es = new EventSource(`/api/plugins/${enc(selected)}/logs?lines=200`);
    es.addEventListener('log', (e) => {
      const l = JSON.parse(e.data);
      setLines((old) => (old.length >= 2000 ? [...old.slice(-1999), l] : [...old, l]));
    });
    return () => es.close();
  }, [selected]);
  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines, follow]);
  return html`<section>
    <p>
      <label>Plugin <select data-testid="logs-plugin" value=${selected} onChange=${(e) => setSelected(e.target.value)}>
        <option value="">choose…</option>
        ${(grid.rows ?? []).map((r) => html`<option value=${r.id}>${r.id}</option>`)}
      </select></label>
      <label><input type="checkbox" checked=${follow} onChange=${(e) => setFollow(e.target.checked)} /> follow</label>
    </p>
    <pre class="logs" data-testid="logs" ref=${box}>${lines.map((l) => html`<div class=${l.stream}><time>${fmtTime(l.time)}</time> ${l.text}</div>`)}</pre>
  </section>`;
}
