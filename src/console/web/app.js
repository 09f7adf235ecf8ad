import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { get, post, setCsrf } from './api.js';
import { html } from './html.js';
import { AuditView, GraphView, LogsView, PluginsView, TimelineView } from './views.js';

const VIEWS = [
  ['plugins', 'Plugins'],
  ['timeline', 'Why it stopped'],
  ['graph', 'Who talks to whom'],
  ['audit', 'Audit trail'],
  ['logs', 'Logs'],
];

function Login({ onDone }) {
  const [error, setError] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try {
      const s = await post('/api/login', { name: f.get('name'), token: f.get('token') });
      e.target.reset();
      onDone(s);
    } catch (err) {
      setError(`${err.code}: ${err.message}`);
    }
  };
  return html`<form class="login" data-testid="login" onSubmit=${submit}>
    <h1>LogoMesh console</h1>
    <label>Your name <input name="name" autocomplete="username" required maxlength="64" /></label>
    <label>Console token <input name="token" type="password" autocomplete="current-password" required /></label>
    <button type="submit">Log in</button>
    ${error && html`<p class="error" data-testid="login-error">${error}</p>`}
    <p class="hint">The token is in <code>console.token</code> (actions) or <code>console-viewer.token</code> (read-only) in the controller's home.</p>
  </form>`;
}

/** The confirmation every action asks for: a modal naming what will happen and to whom. */
function Confirm({ ask, onClose }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  if (!ask) return null;
  const go = async () => {
    setBusy(true);
    try {
      await ask.run();
      onClose(`${ask.title}: done`);
    } catch (err) {
      setError(`${err.code}: ${err.message}`);
      setBusy(false);
    }
  };
  return html`<div class="modal" role="dialog" aria-modal="true" data-testid="confirm">
    <div class="box">
      <h2>${ask.title}</h2>
      <p>${ask.text}</p>
      ${error && html`<p class="error" data-testid="action-error">${error}</p>`}
      <div class="buttons">
        <button data-testid="confirm-yes" disabled=${busy} onClick=${go}>Confirm</button>
        <button data-testid="confirm-no" onClick=${() => onClose('')}>Cancel</button>
      </div>
    </div>
  </div>`;
}

function App() {
  const [session, setSession] = useState(undefined);
  const [view, setView] = useState('plugins');
  const [grid, setGrid] = useState({ rows: [], time: 0 });
  const [selected, setSelected] = useState('');
  const [ask, setAsk] = useState(undefined);
  const [notice, setNotice] = useState('');
  const [auditFilter, setAuditFilter] = useState({});
  const [live, setLive] = useState('connecting');

  useEffect(() => {
    get('/api/session').then(
      (s) => {
        setCsrf(s.csrf);
        setSession(s);
      },
      () => setSession(null),
    );
  }, []);

  useEffect(() => {
    if (!session) return undefined;
    const es = new EventSource('/api/live');
    es.addEventListener('grid', (e) => {
      setGrid(JSON.parse(e.data));
      setLive('live');
    });
    es.onerror = () => setLive('reconnecting');
    return () => es.close();
  }, [session]);

  if (session === undefined) return html`<p>Loading…</p>`;
  if (session === null)
    return html`<${Login}
      onDone=${(s) => {
        setCsrf(s.csrf);
        setSession(s);
      }}
    />`;

  // A new dialog (a new key) for each action, so nothing of the last one carries over.
  const act = (title, text, run) => setAsk({ title, text, run, key: `${Date.now()}-${Math.random()}` });
  const openAudit = (filter) => {
    setAuditFilter(filter);
    setView('audit');
  };
  const logout = async () => {
    await post('/api/logout', {}).catch(() => undefined);
    // Nothing of this session is left for the next one to see.
    setView('plugins');
    setSelected('');
    setNotice('');
    setAuditFilter({});
    setSession(null);
  };
  const props = { grid, session, selected, setSelected, act, openAudit, auditFilter, setView };
  const View = { plugins: PluginsView, timeline: TimelineView, graph: GraphView, audit: AuditView, logs: LogsView }[view];
  return html`<header>
      <strong>LogoMesh console</strong>
      <nav>${VIEWS.map(([id, label]) => html`<button class=${view === id ? 'on' : ''} data-testid=${`nav-${id}`} onClick=${() => setView(id)}>${label}</button>`)}</nav>
      <span class="who" data-testid="who">${session.name} · ${session.role === 'operator' ? 'operator' : 'read-only'} · <span data-testid="live">${live}</span></span>
      <button onClick=${logout}>Log out</button>
    </header>
    ${notice && html`<p class="notice" data-testid="notice" onClick=${() => setNotice('')}>${notice}</p>`}
    <main><${View} ...${props} /></main>
    <${Confirm}
      key=${ask?.key ?? 'none'}
      ask=${ask}
      onClose=${(msg) => {
        setAsk(undefined);
        if (msg) setNotice(msg);
      }}
    />`;
}

render(html`<${App} />`, document.getElementById('app'));
