// What the SDK's bundle gets for require('https'): see tls.cjs. Node's https loads on the
// first request (the upgrade of a wss:// connection); ws uses nothing else of it.
'use strict';

let https;
module.exports = {
  request: (...args) => (https ??= process.getBuiltinModule('node:https')).request(...args),
};
