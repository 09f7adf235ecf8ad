// A plugin run as a child process by the reconnect tests: a method and a subscription.
import { Plugin } from 'logomesh';

const plugin = new Plugin();
const pokes = [];
plugin.method('ping', (data) => `pong ${data ?? ''}`.trim());
plugin.method('pokes', () => pokes);
plugin.on('test.poke', (data) => pokes.push(data));
plugin.onShutdown(() => console.log('shutdown hook ran'));
await plugin.run();
