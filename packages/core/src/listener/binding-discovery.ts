/**
 * Lists a container's class bindings. inversify 8 has no public way to enumerate bindings, so a small
 * container plugin reads them from the container's own binding service. Nothing global: each container
 * answers for itself (and its parents).
 */
import { Plugin, type PluginApi, type PluginContext } from '@inversifyjs/plugin';
import type { Container, Newable, ServiceIdentifier } from 'inversify';

const contexts = new WeakMap<object, PluginContext>();

class BindingDiscoveryPlugin extends Plugin<Container> {
  load(_api: PluginApi): void {
    contexts.set(this._container, this._context);
  }
}

/** A binding of a service to a class (`bind(X).to(Y)` / `toSelf()`). */
export interface ClassBinding {
  readonly serviceIdentifier: ServiceIdentifier;
  readonly implementationType: Newable;
}

/** Every class binding the container can resolve. */
export function classBindings(container: Container): ClassBinding[] {
  if (!contexts.has(container)) container.register(BindingDiscoveryPlugin);
  const service = (contexts.get(container) as PluginContext).bindingService;
  const found: ClassBinding[] = [];
  for (const id of service.getBoundServices()) {
    for (const binding of service.get<unknown>(id) ?? []) {
      const impl = (binding as { type: string; implementationType?: Newable }).implementationType;
      if (binding.type === 'Instance' && impl)
        found.push({ serviceIdentifier: id, implementationType: impl });
    }
  }
  return found;
}
