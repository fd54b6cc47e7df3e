/**
 * A minimal, read-only ZIP reader over an in-memory Buffer: enough for `torch.save` archives
 * (stored entries, ZIP64 for checkpoints over 4 GiB) and ordinary deflated archives.
 *
 * The central directory is the source of truth (as in every mainstream reader): local headers are
 * only used to find where an entry's data starts, because their size fields may be zero when the
 * writer streamed the entry (flag bit 3, data descriptor).
 */
import { crc32, inflateRawSync } from 'node:zlib';

/** One file inside the archive, as described by its central-directory record. */
export interface ZipEntry {
  /** Path inside the archive, `/`-separated. */
  name: string;
  /** 0 = stored, 8 = deflated (the only ones supported by `read`). */
  method: number;
  /** General-purpose flags (bit 0 = encrypted, bit 3 = data descriptor, bit 11 = UTF-8 name). */
  flags: number;
  compressedSize: number;
  uncompressedSize: number;
  crc32: number;
  /** Absolute offset of the entry's local header in the archive buffer. */
  localHeaderOffset: number;
}

/** An opened archive. */
export interface ZipArchive {
  /** The label given to `openZip` (used in every error message). */
  readonly label: string;
  /** Entries in central-directory order. */
  readonly entries: readonly ZipEntry[];
  /** Entry names in central-directory order. */
  names(): string[];
  /** Whether an entry with this exact name exists. */
  has(name: string): boolean;
  /**
   * The uncompressed bytes of an entry. Stored entries are returned as a view into the archive
   * buffer (no copy); deflated ones are inflated. The CRC-32 is verified either way.
   * @throws naming the archive and the entry if it is missing, corrupt or uses an unsupported feature.
   */
  read(name: string): Buffer;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const EOCD_SIZE = 22;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_MIN_SIZE = 56;
const CENTRAL_HEADER_SIZE = 46;
const LOCAL_HEADER_SIZE = 30;
const MAX_COMMENT = 0xffff;
/** Marker meaning "the real value is in the ZIP64 extra field / record". */
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

/** Reads a little-endian uint64 that must fit a JS number (every offset in a Buffer does). */
function readU64(buf: Buffer, pos: number, fail: (msg: string) => never, what: string): number {
  const v = buf.readBigUInt64LE(pos);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} ${v} is implausibly large`);
  return Number(v);
}

/** Locates the End-Of-Central-Directory record by scanning backwards over a possible comment. */
function findEocd(buf: Buffer, fail: (msg: string) => never): number {
  if (buf.length < EOCD_SIZE) fail(`file is only ${buf.length} bytes, too short for a ZIP archive`);
  const stop = Math.max(0, buf.length - EOCD_SIZE - MAX_COMMENT);
  for (let pos = buf.length - EOCD_SIZE; pos >= stop; pos--) {
    // The comment length check rejects a signature that merely occurs inside the comment or data.
    if (buf.readUInt32LE(pos) === SIG_EOCD && pos + EOCD_SIZE + buf.readUInt16LE(pos + 20) <= buf.length) return pos;
  }
  return fail('no end-of-central-directory record found (the file is truncated or not a ZIP archive)');
}

interface CentralDirectoryInfo {
  offset: number;
  size: number;
  count: number;
}

/** Reads the directory location from the EOCD, upgrading to the ZIP64 record when one is present. */
function readDirectoryInfo(buf: Buffer, eocd: number, fail: (msg: string) => never): CentralDirectoryInfo {
  const disk = buf.readUInt16LE(eocd + 4);
  const cdDisk = buf.readUInt16LE(eocd + 6);
  let count = buf.readUInt16LE(eocd + 10);
  let size = buf.readUInt32LE(eocd + 12);
  let offset = buf.readUInt32LE(eocd + 16);

  const loc = eocd - ZIP64_LOCATOR_SIZE;
  if (loc >= 0 && buf.readUInt32LE(loc) === SIG_ZIP64_LOCATOR) {
    const recPos = readU64(buf, loc + 8, fail, 'ZIP64 end-of-central-directory offset');
    if (recPos + ZIP64_EOCD_MIN_SIZE > loc || buf.readUInt32LE(recPos) !== SIG_ZIP64_EOCD) {
      fail(`ZIP64 end-of-central-directory record missing at offset ${recPos}`);
    }
    if (buf.readUInt32LE(recPos + 16) !== 0 || buf.readUInt32LE(recPos + 20) !== 0) fail('multi-disk (split) archives are not supported');
    count = readU64(buf, recPos + 32, fail, 'ZIP64 entry count');
    size = readU64(buf, recPos + 40, fail, 'ZIP64 central directory size');
    offset = readU64(buf, recPos + 48, fail, 'ZIP64 central directory offset');
  } else {
    if (disk !== 0 || cdDisk !== 0) fail('multi-disk (split) archives are not supported');
    if (count === U16_MAX || size === U32_MAX || offset === U32_MAX) {
      fail('end-of-central-directory record needs ZIP64 values but the ZIP64 locator is missing');
    }
  }
  if (offset + size > eocd) {
    fail(`central directory (offset ${offset}, ${size} bytes) extends past the end-of-central-directory record at ${eocd}; the file is truncated or corrupt`);
  }
  return { offset, size, count };
}

/** Applies the ZIP64 extended-information extra field (id 0x0001) to the 32-bit fields that overflowed. */
function applyZip64Extra(
  buf: Buffer,
  extraStart: number,
  extraEnd: number,
  entry: ZipEntry,
  fail: (msg: string) => never,
): void {
  const needUncompressed = entry.uncompressedSize === U32_MAX;
  const needCompressed = entry.compressedSize === U32_MAX;
  const needOffset = entry.localHeaderOffset === U32_MAX;
  if (!needUncompressed && !needCompressed && !needOffset) return;
  for (let p = extraStart; p + 4 <= extraEnd; ) {
    const id = buf.readUInt16LE(p);
    const len = buf.readUInt16LE(p + 2);
    const body = p + 4;
    if (body + len > extraEnd) break;
    if (id === 0x0001) {
      // Only the overflowed fields are present, always in this order.
      let q = body;
      const take = (what: string): number => {
        if (q + 8 > body + len) fail(`entry '${entry.name}': ZIP64 extra field too short for ${what}`);
        const v = readU64(buf, q, fail, `entry '${entry.name}' ${what}`);
        q += 8;
        return v;
      };
      if (needUncompressed) entry.uncompressedSize = take('uncompressed size');
      if (needCompressed) entry.compressedSize = take('compressed size');
      if (needOffset) entry.localHeaderOffset = take('local header offset');
      return;
    }
    p = body + len;
  }
  fail(`entry '${entry.name}' has 32-bit overflow markers but no ZIP64 extra field`);
}

/** Parses every central-directory record. */
function readCentralDirectory(buf: Buffer, info: CentralDirectoryInfo, fail: (msg: string) => never): ZipEntry[] {
  const entries: ZipEntry[] = [];
  const end = info.offset + info.size;
  let p = info.offset;
  for (let i = 0; i < info.count; i++) {
    if (p + CENTRAL_HEADER_SIZE > end || buf.readUInt32LE(p) !== SIG_CENTRAL) {
      fail(`central directory record ${i} of ${info.count} is missing or damaged at offset ${p}`);
    }
    const flags = buf.readUInt16LE(p + 8);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const next = p + CENTRAL_HEADER_SIZE + nameLen + extraLen + commentLen;
    if (next > end) fail(`central directory record ${i} overruns the directory`);
    const nameStart = p + CENTRAL_HEADER_SIZE;
    // Bit 11 means UTF-8; without it the spec says CP437, which agrees with UTF-8 on the ASCII
    // names that torch and other tools write, so one decoder serves both.
    const entry: ZipEntry = {
      name: buf.toString('utf8', nameStart, nameStart + nameLen),
      method: buf.readUInt16LE(p + 10),
      flags,
      crc32: buf.readUInt32LE(p + 16),
      compressedSize: buf.readUInt32LE(p + 20),
      uncompressedSize: buf.readUInt32LE(p + 24),
      localHeaderOffset: buf.readUInt32LE(p + 42),
    };
    applyZip64Extra(buf, nameStart + nameLen, nameStart + nameLen + extraLen, entry, fail);
    entries.push(entry);
    p = next;
  }
  return entries;
}

/**
 * Opens a ZIP archive held in memory.
 * @param buf the whole archive.
 * @param fileLabel how to name the archive in errors (usually its path).
 * @throws an Error naming `fileLabel` and the defect when the archive is truncated or corrupt.
 */
export function openZip(buf: Buffer, fileLabel: string): ZipArchive {
  const fail = (msg: string): never => {
    throw new Error(`${fileLabel}: corrupt ZIP archive: ${msg}`);
  };
  const eocd = findEocd(buf, fail);
  const info = readDirectoryInfo(buf, eocd, fail);
  const entries = readCentralDirectory(buf, info, fail);
  // Later duplicates win, as in Python's zipfile.
  const byName = new Map<string, ZipEntry>();
  for (const e of entries) byName.set(e.name, e);

  const read = (name: string): Buffer => {
    const e = byName.get(name);
    if (!e) throw new Error(`${fileLabel}: ZIP archive has no entry '${name}'`);
    const failEntry = (msg: string): never => fail(`entry '${name}': ${msg}`);
    if (e.flags & 1) failEntry('is encrypted');
    const h = e.localHeaderOffset;
    if (h + LOCAL_HEADER_SIZE > buf.length || buf.readUInt32LE(h) !== SIG_LOCAL) {
      failEntry(`local header missing at offset ${h}`);
    }
    // The local name/extra lengths can differ from the central ones (torch pads the local extra
    // field so that tensor data is 64-byte aligned), so they must be read here.
    const start = h + LOCAL_HEADER_SIZE + buf.readUInt16LE(h + 26) + buf.readUInt16LE(h + 28);
    const end = start + e.compressedSize;
    if (end > buf.length) failEntry(`data (${e.compressedSize} bytes at offset ${start}) runs past the end of the file; the file is truncated`);
    const raw = buf.subarray(start, end);
    let data: Buffer;
    if (e.method === 0) {
      if (e.compressedSize !== e.uncompressedSize) failEntry('stored entry has different compressed and uncompressed sizes');
      data = raw;
    } else if (e.method === 8) {
      try {
        data = inflateRawSync(raw);
      } catch (err) {
        return failEntry(`cannot inflate: ${(err as Error).message}`);
      }
      if (data.length !== e.uncompressedSize) failEntry(`inflated to ${data.length} bytes, expected ${e.uncompressedSize}`);
    } else {
      return failEntry(`unsupported compression method ${e.method} (only stored and deflated are supported)`);
    }
    const actual = crc32(data) >>> 0;
    if (actual !== e.crc32) failEntry(`CRC-32 mismatch (expected ${hex32(e.crc32)}, got ${hex32(actual)}); the data is corrupt`);
    return data;
  };

  return {
    label: fileLabel,
    entries,
    names: () => entries.map((e) => e.name),
    has: (name) => byName.has(name),
    read,
  };
}

function hex32(v: number): string {
  return '0x' + v.toString(16).padStart(8, '0');
}
