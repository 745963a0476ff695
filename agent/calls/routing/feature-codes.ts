// What the state-changing feature codes do: the dial plan answers `*78` with a
// `feature` target, the core (or a feature module) carries it out with
// applyStateFeature, which makes the change durable before the caller hears the
// confirmation. Voicemail and echo test are not state changes and are left to their
// applications.
import type { FeatureOverrides, FeatureStateStore } from '../../store/feature-state.ts';
import type { FeatureName } from './types.ts';

/**
 * The overrides after `feature`, or undefined when the feature changes no state.
 * Turning a forward off records "off" rather than removing the override, so a forward
 * set in the config stays off until turned on again.
 */
export function overridesAfter(current: Readonly<FeatureOverrides> | undefined, feature: FeatureName, argument?: string): FeatureOverrides | undefined {
  const next: FeatureOverrides = { ...current };
  const number = (): string => {
    if (argument === undefined || argument === '') throw new FeatureCodeError(`${feature} needs the number to forward to`);
    return argument;
  };
  switch (feature) {
    case 'dnd-on':
      next.dnd = true;
      return next;
    case 'dnd-off':
      next.dnd = false;
      return next;
    case 'forward-always-on':
      next.forwardAlways = number();
      return next;
    case 'forward-always-off':
      next.forwardAlways = false;
      return next;
    case 'forward-busy-on':
      next.forwardBusy = number();
      return next;
    case 'forward-busy-off':
      next.forwardBusy = false;
      return next;
    case 'forward-no-answer-on':
      next.forwardNoAnswer = number();
      return next;
    case 'forward-no-answer-off':
      next.forwardNoAnswer = false;
      return next;
    case 'voicemail-own':
    case 'voicemail-any':
    case 'echo-test':
      return undefined;
  }
}

export class FeatureCodeError extends Error {
  readonly code = 'EFEATURE';
}

/**
 * Carries out a state-changing feature for `extension`; resolves true once the change
 * is durable (play the confirmation then), false when `feature` is not a state change.
 */
export async function applyStateFeature(store: FeatureStateStore, extension: string, feature: FeatureName, argument?: string): Promise<boolean> {
  const next = overridesAfter(store.get(extension), feature, argument);
  if (!next) return false;
  await store.set(extension, next);
  return true;
}
