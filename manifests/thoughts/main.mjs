// thoughts: a list of short thoughts that other plugins and the host application read and
// add to. Every added thought is announced as the event `thought.added`.
import { LogoMeshError, Plugin } from 'logomesh';

/** The longest thought accepted, in characters. */
const MAX_LENGTH = 1000;
/** The list is kept in memory; the cap keeps it well inside the plugin's memory limit. */
const MAX_THOUGHTS = 10_000;

const thoughts = [
  'Small steps still move you forward.',
  'A question is a thought that wants company.',
  'Rest is part of the work.',
  'Write it down before it slips away.',
];

const plugin = new Plugin();

plugin.method('get_thoughts', () => ({ thoughts: [...thoughts] }));

plugin.method('add_thought', async (args) => {
  const text = args?.text;
  if (typeof text !== 'string' || text.trim() === '') {
    throw new LogoMeshError('LM_INVALID_ARGUMENT', "add_thought needs 'text': a non-empty string", { field: 'text' });
  }
  // Characters, not UTF-16 units: an emoji counts once.
  const length = text.length <= MAX_LENGTH ? text.length : [...text].length;
  if (length > MAX_LENGTH) {
    throw new LogoMeshError('LM_INVALID_ARGUMENT', `a thought has at most ${MAX_LENGTH} characters, got ${length}`, { field: 'text', maxLength: MAX_LENGTH, length });
  }
  if (thoughts.length >= MAX_THOUGHTS) {
    throw new LogoMeshError('LM_INVALID_ARGUMENT', `the list is full (${MAX_THOUGHTS} thoughts)`, { maxThoughts: MAX_THOUGHTS });
  }
  thoughts.push(text);
  await plugin.emit('thought.added', { text });
  return { count: thoughts.length };
});

console.log(`thoughts: serving ${thoughts.length} thoughts`);
await plugin.run();
