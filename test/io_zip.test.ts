/**
 * ZIP reader (src/io/zip.ts): comments, deflate, ZIP64 and clear errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openZip } from '../src/io/index.ts';
import { buildZip } from './helpers/torch_zip_writer.ts';

test('zip: comments, deflate and clear errors', () => {
  const files = [
    { name: 'a.txt', data: Buffer.from('hello hello hello hello') },
    { name: 'dir/b.bin', data: Buffer.from([1, 2, 3]) },
  ];
  for (const opts of [{}, { deflate: true }, { zip64: true }, { comment: 'PK\x05\x06 tricky comment' }]) {
    const z = openZip(buildZip(files, opts), 'arch.zip');
    assert.deepEqual(z.names(), ['a.txt', 'dir/b.bin']);
    assert.equal(z.read('a.txt').toString(), 'hello hello hello hello');
    assert.deepEqual([...z.read('dir/b.bin')], [1, 2, 3]);
  }
  const good = buildZip(files);
  assert.throws(() => openZip(good, 'arch.zip').read('missing'), /arch\.zip: ZIP archive has no entry 'missing'/);
  assert.throws(() => openZip(good.subarray(0, good.length - 5), 'cut.zip'), /cut\.zip: corrupt ZIP archive: .*truncated/);
  assert.throws(() => openZip(Buffer.alloc(10), 'tiny.zip'), /tiny\.zip: .*too short/);
  // Central directory pointing past the data.
  const bad = Buffer.from(good);
  bad.writeUInt32LE(bad.length, bad.length - 6);
  assert.throws(() => openZip(bad, 'bad.zip'), /bad\.zip: corrupt ZIP archive: central directory/);
});
