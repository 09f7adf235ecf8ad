import path from 'node:path';
import { IMAGES_DIR, PLUGIN_MOUNT, type RuntimeImage } from './runtime.js';

const tag = 'logomesh/runtime-python:latest';

export const python: RuntimeImage = {
  runtime: 'python',
  images: [{ tag, contextDir: path.join(IMAGES_DIR, 'python') }],
  tag,
  // -u: unbuffered, so output streams live; -B: the root is read-only, no .pyc to write.
  command: (entrypoint) => ['python3', '-u', '-B', `${PLUGIN_MOUNT}/${entrypoint}`],
  env: { PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' },
};
