import type { EventName } from '../events/bus.ts';

/**
 * Bus events that travel to the controller on the `events` stream. In a module of its
 * own so that the agent can keep them from its first REGISTER on without loading the
 * MQTT stack (agent/agent.ts starts sync after SIP).
 */
export const FORWARDED_EVENTS: readonly EventName[] = ['registration.added', 'registration.removed', 'security.lockout', 'security.scanner'];
