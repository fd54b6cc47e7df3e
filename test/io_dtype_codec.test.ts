/**
 * float16 / bfloat16 decoding (src/io/dtype_codec.ts), exact on subnormals and specials.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bfloat16ToFloat, halfToFloat } from '../src/io/index.ts';
import { HALF_BITS, HALF_VALUES } from './helpers/io.ts';

test('half and bfloat16 conversions are exact, subnormals and specials included', () => {
  HALF_BITS.forEach((b, i) => assert.ok(Object.is(halfToFloat(b), HALF_VALUES[i]), `half 0x${b.toString(16)}`));
  const bf: [number, number][] = [
    [0x3f80, 1], [0xc000, -2], [0x0001, 2 ** -133], [0x007f, 127 * 2 ** -133], [0x0080, 2 ** -126],
    [0x7f80, Infinity], [0xff80, -Infinity], [0x7fc0, NaN], [0x8000, -0], [0x3eab, 0.333984375],
  ];
  for (const [b, want] of bf) assert.ok(Object.is(bfloat16ToFloat(b), want), `bf16 0x${b.toString(16)}`);
});
