/**
 * The one place that reads and writes our decorator metadata. Metadata lives on the class
 * (reflect-metadata), never in a process-global registry, so containers and tests stay apart.
 */
import 'reflect-metadata';
import type { MessageListenerMetadata } from './listener/listener-options.js';
import type { HandlerMethod } from './model/handler-method.js';
import type { IdempotentOptions } from './options.js';

const MESSAGE_LISTENER = Symbol.for('idempotent-mq:message-listener');
const IDEMPOTENT_HANDLERS = Symbol.for('idempotent-mq:idempotent-handlers');
const ENGINE_INJECTED = Symbol.for('idempotent-mq:engine-injected');

/** Where the container puts the engine on each instance it creates (inversify property injection). */
export const ENGINE_PROPERTY: unique symbol = Symbol.for('idempotent-mq:engine');

type Ctor = abstract new (...args: never[]) => unknown;

/**
 * Records an `@Idempotent` method of `ctor`: its options, its declaring class and the undecorated
 * function, for callers that run it through the engine directly. A copy of the inherited map becomes the
 * class's own, so a base class is never touched and a subclass's declaration wins.
 */
export function setHandlerMethod(ctor: Ctor, target: HandlerMethod): void {
  const own = new Map(handlerMethods(ctor));
  own.set(target.method, target);
  Reflect.defineMetadata(IDEMPOTENT_HANDLERS, own, ctor);
}

/** The `@Idempotent` method as the engine runs it (the nearest declaration up the class chain). */
export function getHandlerMethod(ctor: Ctor, method: string | symbol): HandlerMethod | undefined {
  return handlerMethods(ctor).get(method);
}

function handlerMethods(ctor: Ctor): ReadonlyMap<string | symbol, HandlerMethod> {
  return (Reflect.getMetadata(IDEMPOTENT_HANDLERS, ctor) as Map<string | symbol, HandlerMethod>) ?? new Map();
}

/** The `@Idempotent` options of `method`, looking through base classes. */
export function getIdempotentOptions(
  ctor: Ctor,
  method: string | symbol,
): IdempotentOptions<unknown> | undefined {
  return handlerMethods(ctor).get(method)?.options as IdempotentOptions<unknown> | undefined;
}

/** Every `@Idempotent` method of the class with its options, base classes included. */
export function getIdempotentMethods(ctor: Ctor): ReadonlyMap<string | symbol, IdempotentOptions<unknown>> {
  return new Map(
    [...handlerMethods(ctor)].map(([method, target]) => [
      method,
      target.options as IdempotentOptions<unknown>,
    ]),
  );
}

export type { MessageListenerMetadata } from './listener/listener-options.js';

/** Records listener metadata on a class (used by listener decorators). */
export function setMessageListener(ctor: Ctor, metadata: MessageListenerMetadata): void {
  Reflect.defineMetadata(MESSAGE_LISTENER, metadata, ctor);
}

/** The listener metadata of a class, if it is one. */
export function getMessageListener(ctor: Ctor): MessageListenerMetadata | undefined {
  return Reflect.getMetadata(MESSAGE_LISTENER, ctor) as MessageListenerMetadata | undefined;
}

/**
 * Records that the engine is property-injected into instances of `ctor` (its own classes, not its
 * bases'); true the first time, when the caller must set the injection up.
 */
export function markEngineInjected(ctor: Ctor): boolean {
  if (Reflect.hasOwnMetadata(ENGINE_INJECTED, ctor)) return false;
  Reflect.defineMetadata(ENGINE_INJECTED, true, ctor);
  return true;
}
