import { describe, expect, it } from 'vitest';
import { parseBatch } from '../../src/hub/batch-parse.js';
import { MAX_BATCH_FRAMES } from '../../src/hub/line-batch.js';
import { parseFrame } from '../../src/hub/protocol.js';

const MAX = 1024 * 1024;
const batch = (frames: string[]) => Buffer.from(frames.join('\n'));
const oneByOne = (frames: string[]) => frames.map((f) => parseFrame(Buffer.from(f), false, MAX));

describe('a batched message parsed at once', () => {
  it('gives each frame exactly what parsing it alone gives: message, claimed sender, data text, refusal', () => {
    const frames = [
      '{"type":"request","id":"r1","to":["echo"],"method":"echo","data":{"text":"héllo","n":[1,2.5e3]},"timeout":500}',
      '{"type":"response","id":"a1","correlationId":"h1","success":true,"data":"ü,\\"}","from":"someone-else"}',
      '{"type":"response","id":"a2","correlationId":"h2","success":false,"error":{"code":"LM_X","message":"no"}}',
      ' {"type":"event","id":"e1","topic":"a.b","data":null} ',
      '{"type":"request","id":"r2","to":["echo"],"method":"bad name"}',
      '{"type":"nothing","id":"n1"}',
      '{"data":1,"data":2,"id":"d2","type":"request","to":["x"],"method":"m"}',
      '{}',
    ];
    expect(parseBatch(batch(frames))).toEqual(oneByOne(frames));
    expect(parseBatch(batch([frames[0]!]))).toEqual(oneByOne([frames[0]!]));
  });

  it('leaves to the frame-by-frame path any message whose frames could be read otherwise together than alone', () => {
    // Each of these is an array of as many elements as lines once the line feeds are commas.
    expect(parseBatch(batch(['1,2', '[3', '4]']))).toBeUndefined();
    expect(parseBatch(batch(['{"id":"a"},{"id":"b"}', '{"id":"c"}', '{"id":"d"']))).toBeUndefined();
    expect(parseBatch(batch(['{"id":"a","x":[', '1]}']))).toBeUndefined();
    // Not JSON, empty, not an object, too deep, too many frames.
    expect(parseBatch(batch(['{"id":"a"}', '{"id":}']))).toBeUndefined();
    expect(parseBatch(batch(['{"id":"a"}', '']))).toBeUndefined();
    expect(parseBatch(batch(['{"id":"a"}', '["x"]']))).toBeUndefined();
    expect(parseBatch(batch(['{"id":"a"}', `{"id":"b","data":${'['.repeat(80)}${']'.repeat(80)}}`]))).toBeUndefined();
    expect(parseBatch(batch(Array.from({ length: MAX_BATCH_FRAMES }, (_, i) => `{"id":"f${i}"}`)))).toHaveLength(MAX_BATCH_FRAMES);
    expect(parseBatch(batch(Array.from({ length: MAX_BATCH_FRAMES + 1 }, (_, i) => `{"id":"f${i}"}`)))).toBeUndefined();
  });
});
