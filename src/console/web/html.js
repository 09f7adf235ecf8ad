// htm over Preact: templates build elements, and every value in them becomes a text node or
// a property, never parsed HTML, so a plugin's id, a log line or an error is shown as text.
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);
