/**
 * Static file server for the browser example (examples/browser/), no dependencies:
 *
 *   npx tsx tools/serve_example.ts [--model-dir work_dirs/upernet_c2f_shapes/onnx] [--port 8080] [--host 127.0.0.1]
 *   (npm run serve:example -- --model-dir DIR)
 *
 * Mounts: `/` examples/browser, `/ort/` node_modules/onnxruntime-web/dist, `/model/` the model folder
 * (the `.onnx` from `tools/export.ts --format onnx --config ...` and its `.json` sidecar). GET and
 * HEAD only; a path with a `..` segment (also percent-encoded) is refused with 400, one outside every
 * mount is 404. Responses carry COOP/COEP headers, so the page is cross-origin isolated and
 * onnxruntime-web can run its multi-threaded wasm. `--port 0` picks a free port; the URL to open
 * is printed either way.
 */
import { createReadStream, existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { runCli } from './cli.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'application/javascript',
  '.mjs': 'application/javascript',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.data': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.ts': 'text/plain; charset=utf-8',
};

/** URL prefix (with trailing slash) → folder on disk; the longest matching prefix wins. */
type Mounts = [prefix: string, dir: string][];

/**
 * The file `urlPath` names under its mount, or an HTTP status: 400 for a malformed path or a `..`
 * segment, 404 when no mount matches. The result always lies inside the mount's folder.
 */
export function resolveUrlPath(mounts: Mounts, urlPath: string): string | 400 | 404 {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return 400;
  }
  if (!decoded.startsWith('/') || decoded.includes('\0') || decoded.includes('\\')) return 400;
  if (decoded.split('/').includes('..')) return 400;
  const mount = mounts.filter(([p]) => decoded.startsWith(p) || decoded === p.slice(0, -1)).sort((a, b) => b[0].length - a[0].length)[0];
  if (!mount) return 404;
  const [prefix, dir] = mount;
  const rel = decoded.slice(prefix.length);
  const file = path.resolve(dir, rel);
  if (file !== dir && !file.startsWith(dir + path.sep)) return 400;
  return file;
}

function send(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(`${text}\n`);
}

async function serve(mounts: Mounts, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed');
  const urlPath = (req.url ?? '/').split(/[?#]/)[0];
  let file = resolveUrlPath(mounts, urlPath);
  if (file === 400) return send(res, 400, 'bad path');
  if (file === 404) return send(res, 404, 'not found');
  let st = await stat(file).catch(() => null);
  if (st?.isDirectory()) {
    file = path.join(file, 'index.html');
    st = await stat(file).catch(() => null);
  }
  if (!st?.isFile()) return send(res, 404, 'not found');
  res.writeHead(200, {
    'Content-Type': MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
    'Content-Length': st.size,
    'Cache-Control': 'no-cache',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Embedder-Policy': 'require-corp',
  });
  if (req.method === 'HEAD') return void res.end();
  createReadStream(file).on('error', () => res.destroy()).pipe(res);
}

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 [--model-dir DIR] [--port 8080] [--host 127.0.0.1]')
    .option('model-dir', { type: 'string', default: 'work_dirs/upernet_c2f_shapes/onnx', describe: 'folder served at /model/ (seg.onnx + seg.json)' })
    .option('port', { type: 'number', default: 8080, describe: 'TCP port (0: a free one)' })
    .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on (0.0.0.0: every interface)' })
    .strict()
    .parse();
  const ortDir = path.join(ROOT, 'node_modules', 'onnxruntime-web', 'dist');
  if (!existsSync(ortDir)) throw new Error(`${ortDir} is missing: run npm install (onnxruntime-web is a devDependency)`);
  const modelDir = path.resolve(argv['model-dir']);
  const mounts: Mounts = [['/', path.join(ROOT, 'examples', 'browser')], ['/ort/', ortDir], ['/model/', modelDir]];
  const models = existsSync(modelDir) ? (await readdir(modelDir)).filter((f) => f.endsWith('.onnx')).sort() : [];
  if (models.length === 0) {
    console.warn(`warning: no .onnx in ${modelDir}; export one with\n  npx tsx tools/export.ts --format onnx --config configs/upernet_c2f_shapes.yaml ` +
      `--checkpoint work_dirs/upernet_c2f_shapes/latest --out ${path.join(argv['model-dir'], 'seg.onnx')}`);
  }
  const server = http.createServer((req, res) => {
    serve(mounts, req, res).catch((e: Error) => {
      if (!res.headersSent) send(res, 500, e.message);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(argv.port, argv.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  const host = argv.host === '0.0.0.0' || argv.host === '::' ? 'localhost' : argv.host.includes(':') ? `[${argv.host}]` : argv.host;
  const model = models.includes('seg.onnx') || models.length === 0 ? '' : `?model=model/${encodeURIComponent(models[0])}`;
  console.log(`serving examples/browser at / , onnxruntime-web at /ort/ , ${modelDir} at /model/`);
  console.log(`open http://${host}:${port}/${model}`);
});
