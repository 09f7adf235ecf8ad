// The console's API client. The session is an HttpOnly cookie the page cannot read; actions
// carry the session's CSRF token in a header (see src/console/sessions.ts).
let csrf = '';

export function setCsrf(token) {
  csrf = token;
}

async function answer(res) {
  const body = await res.json().catch(() => ({ error: { code: 'LM_INTERNAL', message: `HTTP ${res.status}` } }));
  if (!res.ok) {
    const err = new Error(body.error?.message ?? `HTTP ${res.status}`);
    err.code = body.error?.code ?? 'LM_INTERNAL';
    err.status = res.status;
    throw err;
  }
  return body;
}

export async function get(path) {
  return answer(await fetch(path, { credentials: 'same-origin' }));
}

export async function post(path, body) {
  return answer(
    await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-logomesh-csrf': csrf },
      body: JSON.stringify(body ?? {}),
    }),
  );
}

export const fmtBytes = (n) => {
  if (n === undefined || n === null) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(v) : v.toFixed(1)} ${u[i]}`;
};

export const fmtTime = (ms) => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
