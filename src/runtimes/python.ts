import path from 'node:path';
import { IMAGES_DIR } from '../paths.js';
import { PLUGIN_MOUNT, PROTOCOL_EXTRA, type RuntimeImage } from './runtime.js';

const tag = 'logomesh/runtime-python:latest';

/** Where the image holds the SDK's own tests. */
const PYTHON_SDK_TESTS_DIR = '/opt/logomesh/tests';
/** Runs the SDK's tests inside the image (they need no network and no writable root). */
export const PYTHON_SDK_TEST_COMMAND = ['python3', '-B', '-m', 'unittest', 'discover', '-v', '-s', PYTHON_SDK_TESTS_DIR, '-t', PYTHON_SDK_TESTS_DIR];

/**
 * Debian bookworm's python3 with the LogoMesh SDK (standard library only; images/python/sdk)
 * and python3-websockets for the SDK's fake hub, logomesh.testing.
 */
export const python: RuntimeImage = {
  runtime: 'python',
  images: [{ tag, contextDir: path.join(IMAGES_DIR, 'python'), extra: PROTOCOL_EXTRA }],
  tag,
  // -u: unbuffered, so output streams live; -B: the root is read-only, no .pyc to write.
  command: (entrypoint) => ['python3', '-u', '-B', `${PLUGIN_MOUNT}/${entrypoint}`],
  env: { PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' },
};
