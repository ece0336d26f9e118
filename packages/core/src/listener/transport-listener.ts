/**
 * A transport's own listener decorator (each transport package has one, `@<Broker>Listener`),
 * written once: `@MessageListener` with the broker's options, its filter under the broker's name.
 */
import { InvalidOptionError } from '../errors.js';
import { setMessageListener } from '../metadata.js';
import { checkOptionsObject } from '../option-checks.js';
import { validateListenerOptions } from './message-listener.decorator.js';

/**
 * The broker-neutral `@MessageListener` options a transport's decorator takes over: all but `filter`,
 * which each broker names its own way (`tag`, `bindingKey`, `filterSubject`).
 */
const NEUTRAL_OPTIONS: readonly string[] = ['topic', 'consumerGroup', 'concurrency', 'maxAttempts', 'method'];

/** What makes a transport's listener decorator its own. */
export interface TransportListenerRules {
  /** The decorator's name, as errors show it: `'@AcmeListener'`. */
  readonly decorator: string;
  /** What the recorded metadata's `transport` says: `'acme'`. */
  readonly transport: string;
  /** The broker's name for the filter (`'tag'`): the registry reads it as `filter`, `'*'` when unset. */
  readonly filterOption: string;
  /** The broker's own option names, besides the broker-neutral ones (the filter's among them). */
  readonly options: readonly string[];
  /** The broker's rules for a listener: its transport profile's `checkListener`. */
  check(listener: Readonly<Record<string, unknown>>, where: string): void;
}

/**
 * A listener decorator for a transport: when the class is defined it refuses a misspelt name (with the
 * nearest one), the broker-neutral options' errors and the broker's own rules, each naming the option;
 * then it records the listener where the registry finds it, with `transport` and `filter` set.
 *
 * @example
 * ```ts
 * const acme = transportListener({
 *   decorator: '@AcmeListener', transport: 'acme', filterOption: 'tag',
 *   options: ['tag', 'codec'], check: checkAcmeListener,
 * });
 * export function AcmeListener(options: AcmeListenerOptions) {
 *   return acme(options);
 * }
 * ```
 */
export function transportListener(
  rules: TransportListenerRules,
): (options: object) => (target: abstract new (...args: never[]) => unknown) => void {
  const known = [...NEUTRAL_OPTIONS, ...rules.options];
  return (options) => (target) => {
    const where = `${rules.decorator}(${target.name})`;
    if (typeof options !== 'object' || options === null) {
      throw new InvalidOptionError(where, 'an options object', options);
    }
    checkOptionsObject(options, known, where);
    const given = options as Readonly<Record<string, unknown>>;
    const filter = given[rules.filterOption] as string | undefined;
    validateListenerOptions({ ...given, filter }, where);
    // The same rules the transport's profile applies at start-up, here when the class is defined.
    rules.check(given, where);
    setMessageListener(target, {
      ...(given as { topic: string; consumerGroup: string }),
      transport: rules.transport,
      filter: filter ?? '*',
    });
  };
}
