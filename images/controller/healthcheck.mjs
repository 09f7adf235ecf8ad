// The controller image's health check: healthy once the controller answers on its control
// socket and every plugin is ready (or was stopped by hand with `logomesh stop`).
// Exit 0 healthy, 1 not (the reason goes to the health log: `docker inspect`).
import { ControlClient } from '../../dist/control/client.js';

try {
  const plugins = await ControlClient.forHome().plugins();
  const waiting = plugins.filter((p) => p.state !== 'ready' && p.state !== 'stopped');
  if (plugins.length === 0 || waiting.length > 0) {
    console.log(plugins.length ? `not ready: ${waiting.map((p) => `${p.id} ${p.state}`).join(', ')}` : 'no plugins loaded yet');
    process.exit(1);
  }
  console.log(`${plugins.length} plugin(s) ready`);
} catch (err) {
  console.log(`controller not answering: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
