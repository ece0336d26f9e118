/**
 * The one place that reads and writes our decorator metadata. Metadata lives on the class
 * (reflect-metadata), never in a process-global registry, so containers and tests stay apart.
 */
import 'reflect-metadata';
import type { HandlerMethod } from './idempotency-handler.js';
import type { MessageListenerOptions } from './listener/message-listener.decorator.js';
import type { IdempotentOptions } from './options.js';

const IDEMPOTENT_METHODS = Symbol.for('idempotent-mq:idempotent-methods');
const MESSAGE_LISTENER = Symbol.for('idempotent-mq:message-listener');
const IDEMPOTENT_HANDLERS = Symbol.for('idempotent-mq:idempotent-handlers');

/** Where the container puts the engine on each instance it creates (inversify property injection). */
export const HANDLER_PROPERTY: unique symbol = Symbol.for('idempotent-mq:handler');

type Ctor = abstract new (...args: never[]) => unknown;

/** Records `options` for `method` of the class `ctor` (own metadata; a base class is not touched). */
export function setIdempotentOptions(
  ctor: Ctor,
  method: string | symbol,
  options: IdempotentOptions<never>,
): void {
  const own = new Map(getIdempotentMethods(ctor));
  own.set(method, options as IdempotentOptions<unknown>);
  Reflect.defineMetadata(IDEMPOTENT_METHODS, own, ctor);
}

/** Records the undecorated method and its options, for callers that run it through the engine directly. */
export function setHandlerMethod(ctor: Ctor, target: HandlerMethod): void {
  const own = new Map(
    Reflect.getMetadata(IDEMPOTENT_HANDLERS, ctor) as Map<string | symbol, HandlerMethod> | undefined,
  );
  own.set(target.method, target);
  Reflect.defineMetadata(IDEMPOTENT_HANDLERS, own, ctor);
}

/** The `@Idempotent` method as the engine runs it (the nearest declaration up the class chain). */
export function getHandlerMethod(ctor: Ctor, method: string | symbol): HandlerMethod | undefined {
  return (
    Reflect.getMetadata(IDEMPOTENT_HANDLERS, ctor) as Map<string | symbol, HandlerMethod> | undefined
  )?.get(method);
}

/** The `@Idempotent` options of `method`, looking through base classes. */
export function getIdempotentOptions(
  ctor: Ctor,
  method: string | symbol,
): IdempotentOptions<unknown> | undefined {
  return getIdempotentMethods(ctor).get(method) as IdempotentOptions<unknown> | undefined;
}

/** Every `@Idempotent` method of the class, base classes included. */
export function getIdempotentMethods(ctor: Ctor): ReadonlyMap<string | symbol, IdempotentOptions<unknown>> {
  return (
    (Reflect.getMetadata(IDEMPOTENT_METHODS, ctor) as Map<string | symbol, IdempotentOptions<unknown>>) ??
    new Map()
  );
}

/** The nearest class up the prototype chain that declares `method` as `@Idempotent`. */
export function declaringClassOf(ctor: Ctor, method: string | symbol): Ctor | undefined {
  for (
    let c: Ctor | null = ctor;
    c && c !== Function.prototype;
    c = Object.getPrototypeOf(c) as Ctor | null
  ) {
    const own = Reflect.getOwnMetadata(IDEMPOTENT_METHODS, c) as Map<string | symbol, unknown> | undefined;
    if (own?.has(method)) return c;
  }
  return undefined;
}

/**
 * What a listener class decorator records (`@MessageListener`, or a transport's own such as
 * `@RocketMQListener`, which may add fields). The consumer group is part of the default scope.
 */
export type MessageListenerMetadata = MessageListenerOptions & { readonly [option: string]: unknown };

/** Records listener metadata on a class (used by listener decorators). */
export function setMessageListener(ctor: Ctor, metadata: MessageListenerMetadata): void {
  Reflect.defineMetadata(MESSAGE_LISTENER, metadata, ctor);
}

/** The listener metadata of a class, if it is one. */
export function getMessageListener(ctor: Ctor): MessageListenerMetadata | undefined {
  return Reflect.getMetadata(MESSAGE_LISTENER, ctor) as MessageListenerMetadata | undefined;
}
