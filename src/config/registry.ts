/**
 * A named table of constructors/factories (datasets, transforms, heads, ...). Explicit
 * `register` calls instead of decorators or import side effects, so what is registered is
 * visible at the call site and unknown names fail with the list of known ones.
 */
import { ConfigError, didYouMean } from './errors.ts';

export class Registry<T> {
  private readonly table = new Map<string, T>();

  /** @param kind what the entries are, for messages: `'dataset type'`. */
  constructor(readonly kind: string) {}

  /** Adds `name`; registering a name twice is a bug (two modules fighting), so it throws. */
  register(name: string, entry: T): this {
    if (this.table.has(name)) throw new Error(`${this.kind} '${name}' is already registered`);
    this.table.set(name, entry);
    return this;
  }

  has(name: string): boolean {
    return this.table.has(name);
  }

  /** Registered names, in registration order. */
  names(): string[] {
    return [...this.table.keys()];
  }

  /**
   * The entry for `name`.
   * @param where the config location for the message, e.g. `configs/x.yaml: data.train.type`.
   * @throws ConfigError `where: unknown <kind> 'X'; known: A, B (did you mean 'Y'?)`.
   */
  get(name: string, where: string): T {
    const entry = this.table.get(name);
    if (entry !== undefined) return entry;
    const known = this.names();
    const prefix = where ? `${where}: ` : '';
    throw new ConfigError(
      `${prefix}unknown ${this.kind} '${name}'; known: ${known.length ? known.join(', ') : '(none)'}${didYouMean(name, known)}`,
    );
  }
}
