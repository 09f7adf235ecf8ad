// The greeter plugin tested in its real sandbox with Node's own test runner (node --test),
// no test framework needed. See docs/testing-plugins.md.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LogoMeshEnvironment } from 'logomesh/testing';

const PLUGINS = process.env.GREETER_PLUGINS ?? fileURLToPath(new URL('../plugins', import.meta.url));
let mesh;

before(async () => {
  mesh = await new LogoMeshEnvironment(PLUGINS).withHostMethod('get_user', ({ id }) => ({ name: id === 1 ? 'Ada' : 'someone' })).start();
});

after(() => mesh?.stop());

test('greets by the name the host gives', async () => {
  assert.deepEqual(await mesh.call('greeter', 'greet', { id: 1 }), { greeting: 'Hello, Ada!' });
  assert.deepEqual(mesh.hostCalls('get_user'), [{ from: 'greeter', data: { id: 1 } }]);
});

test('publishes greeting.sent', async () => {
  const event = await mesh.waitForEvent('greeting.sent', { timeoutMs: 5000 });
  assert.equal(event.from, 'greeter');
});

test('an unknown method is refused with its code', async () => {
  await assert.rejects(mesh.call('greeter', 'nothing', {}), { code: 'LM_PERMISSION_DENIED' });
});
