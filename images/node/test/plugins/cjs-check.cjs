// CommonJS plugins can require the SDK too (Node 22 loads ES modules with require()).
const { Plugin, LogoMeshError } = require('logomesh');
console.log(JSON.stringify({ plugin: typeof Plugin, error: typeof LogoMeshError }));
