/**
 * Re-exports src/agent/delivery/delivery.ts under the names the simulators used before delivery
 * moved to the site agent, for callers outside simulators/ (see buffer.ts).
 */
export {
  createTransport,
  DEFAULT_DELIVERY_OPTIONS as DEFAULT_AGENT_OPTIONS,
  Delivery as SiteAgent,
  type DeliveryOptions as AgentOptions,
  type DeliveryOverrides as AgentOverrides,
  resolveDeliveryOptions as resolveAgentOptions,
} from '../../src/agent/delivery/delivery.ts';
