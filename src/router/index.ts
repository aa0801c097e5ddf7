// The gateway library: what `cellgate serve` and `cellgate demo` use.
export { createGateway, type Gateway, type GatewayAddresses, type GatewayLog, type GatewayOptions } from './gateway';
export {
  DEFAULT_CONFIG, GatewayConfigSchema, loadGatewayConfigFile, parseGatewayConfig, type ConfigSources, type GatewayConfig, type RouteRule, type UserIdSource,
} from './config';
export { checkCellOwnership, fencingPlugin, OwnershipFollower, type FencingPluginOptions, type Ownership, requestUserId } from '../fencing';
export { startDemoZone, type DemoZone, type DemoZoneOptions } from './demo-zone';
export { systemClock, type Clock } from '../clock';
