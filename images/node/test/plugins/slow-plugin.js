// A plugin run as a child process by the tests: serves a slow and a fast method.
import { Plugin } from 'logomesh';

const plugin = new Plugin();
plugin.method('slow', async ({ ms }) => {
  console.log('slow: started');
  await new Promise((r) => setTimeout(r, ms));
  return { slept: ms };
});
plugin.method('ping', () => 'pong');
plugin.onShutdown(() => console.log('shutdown hook ran'));
// A timer the plugin left running: the process must still end after shutdown.
setInterval(() => {}, 60_000);
const running = plugin.run();
// Printed once run() has installed its signal handlers.
console.log('starting');
await running;
console.log('run() returned, but exit is the default: not reached');
