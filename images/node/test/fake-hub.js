// The SDK's fake hub is its testing module ('logomesh/testing'); these are the small
// helpers the SDK's own tests add to it.
export { FakeHub } from 'logomesh/testing';

/** A promise and the function that opens it. */
export function gate() {
  let open;
  const promise = new Promise((r) => (open = r));
  return { promise, open };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolve once check() is true (tests only: checked every 5 ms, for at most timeoutMs). */
export async function waitFor(check, timeoutMs = 5000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
