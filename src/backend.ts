/**
 * Picks the TensorFlow.js backend: tfjs-node-gpu > tfjs-node > wasm > cpu.
 *
 * The native packages are optional (their install downloads libtensorflow, which fails offline), so
 * they are imported dynamically and their absence is normal. An explicit choice that cannot run is
 * an error: silently training 30x slower than asked is worse than stopping.
 */
import * as tf from '@tensorflow/tfjs';

/** Backend names a user may ask for. `auto` takes the fastest one that loads. */
export const BACKEND_CHOICES = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

const AUTO_ORDER: Exclude<BackendChoice, 'auto'>[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

let announced = false;

/** Loads the package behind a backend name and activates it; returns false if it is not available. */
async function tryBackend(name: Exclude<BackendChoice, 'auto'>): Promise<{ ok: boolean; why?: string }> {
  try {
    if (name === 'tensorflow-gpu' || name === 'tensorflow') {
      // A variable specifier keeps TypeScript from requiring the optional package's types.
      const pkg = name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      await import(pkg);
      const ok = await tf.setBackend('tensorflow');
      return ok ? { ok } : { ok, why: `${pkg} loaded but its backend failed to initialise` };
    }
    if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
    const ok = await tf.setBackend(name);
    return ok ? { ok } : { ok, why: `backend '${name}' failed to initialise` };
  } catch (err) {
    return { ok: false, why: (err as Error).message.split('\n')[0] };
  }
}

/**
 * Activates a backend and returns its tfjs name (`tensorflow`, `wasm` or `cpu`).
 *
 * Resolution: an explicit `name` other than `auto` wins; otherwise the `C2F_BACKEND` environment
 * variable; otherwise auto. Logs the chosen backend once per process (to stderr).
 * @throws if an explicitly requested backend is unknown or cannot be loaded.
 */
export async function initBackend(name: string = 'auto', opts: { quiet?: boolean } = {}): Promise<string> {
  const requested = name !== 'auto' ? name : (process.env.C2F_BACKEND ?? 'auto');
  if (!(BACKEND_CHOICES as readonly string[]).includes(requested)) {
    const source = name !== 'auto' ? 'backend' : 'C2F_BACKEND';
    throw new Error(`unknown ${source} '${requested}'; expected one of: ${BACKEND_CHOICES.join(', ')}`);
  }
  const choice = requested as BackendChoice;
  let active: string | undefined;
  if (choice === 'auto') {
    for (const candidate of AUTO_ORDER) {
      if ((await tryBackend(candidate)).ok) {
        active = tf.getBackend();
        break;
      }
    }
    if (!active) throw new Error('no TensorFlow.js backend could be initialised (tried ' + AUTO_ORDER.join(', ') + ')');
  } else {
    const res = await tryBackend(choice);
    if (!res.ok) {
      throw new Error(`backend '${choice}' is not available: ${res.why}. ` +
        `Install it (see README, "Backends") or choose another with --backend / C2F_BACKEND (${BACKEND_CHOICES.join(', ')})`);
    }
    active = tf.getBackend();
  }
  await tf.ready();
  if (!announced && !opts.quiet) {
    process.stderr.write(`[c2f] tfjs backend: ${active}\n`);
    announced = true;
  }
  return active;
}
