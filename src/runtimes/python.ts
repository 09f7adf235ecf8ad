import path from 'node:path';
import { IMAGES_DIR, PLUGIN_MOUNT, type RuntimeImage } from './runtime.js';

export const python: RuntimeImage = {
  runtime: 'python',
  tag: 'logomesh/runtime-python:latest',
  contextDir: path.join(IMAGES_DIR, 'python'),
  // -u: unbuffered, so output streams live; -B: the root is read-only, no .pyc to write.
  command: (entrypoint) => ['python3', '-u', '-B', `${PLUGIN_MOUNT}/${entrypoint}`],
  env: { PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' },
};
