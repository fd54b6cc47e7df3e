/** formatValue: the one renderer of bad values in error messages (config, COCO files, masks). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatValue } from '../src/util/format_value.ts';

test('formatValue quotes strings, spells out NaN/Infinity, calls undefined nothing and cuts at 80 characters', () => {
  assert.equal(formatValue('a'), '"a"');
  assert.equal(formatValue(NaN), 'NaN');
  assert.equal(formatValue([1, -Infinity]), '[1,"-Infinity"]');
  assert.equal(formatValue(undefined), 'nothing');
  assert.equal(formatValue(10n), '10');
  const long = formatValue('x'.repeat(200));
  assert.equal(long.length, 80);
  assert.ok(long.endsWith('...'));
});
