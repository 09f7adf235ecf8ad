// The two messages every call costs, a request (calls.js) and a successful answer
// (dispatch.js), as JSON text written around their data's own JSON.stringify. The text is the
// one JSON.stringify of the whole message object gives (same keys, same order; a data that
// JSON leaves out, a function or undefined, leaves its key out), and it passes the same depth
// and size checks (protocol.js checkedText). Serializing the envelope's fixed keys and its
// checked names again for each message, and building the object first, was about half of a
// message's encoding (docs/performance.md#the-nodejs-sdks-cpu-a-call). A message with shared
// memory segments, or for a hub that speaks msgpack, is encoded whole (protocol.js encode).

import { checkedText, jsonText } from './protocol.js';

/** `,"data":<json>`, or nothing when JSON leaves the value out (as JSON.stringify of the message would). */
function dataField(data) {
  const json = jsonText(data);
  return json === undefined ? '' : `,"data":${json}`;
}

/**
 * `"to":[...],"method":...` of a checked target: its plugin id and method name match
 * PLUGIN_ID and METHOD_NAME, so they are written as they are (no character of theirs needs
 * escaping in JSON).
 */
export function routeJson(to, method) {
  return `"to":["${to}"],"method":"${method}"`;
}

/**
 * A request: `id` from nextId (digits and lowercase letters), `route` from routeJson, `limit`
 * a whole number of milliseconds or undefined. Throws EncodeError as encode() does.
 */
export function requestText(id, route, data, limit, maxBytes) {
  const timeout = limit === undefined ? '' : `,"timeout":${limit}`;
  return checkedText(`{"type":"request","id":"${id}",${route}${dataField(data)}${timeout}}`, maxBytes);
}

/** A successful answer to the request `correlationId` (a string: the hub's id, escaped as JSON). */
export function responseText(id, correlationId, data, maxBytes) {
  return checkedText(`{"type":"response","id":"${id}","correlationId":${JSON.stringify(correlationId)},"success":true${dataField(data)}}`, maxBytes);
}
