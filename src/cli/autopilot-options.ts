// The flags of `cellgate autopilot` (apart from its code, so that --help loads nothing else).
import { ETCD_SECURITY_OPTIONS, type OptionSpec } from './args';

export const AUTOPILOT_OPTIONS = {
  store: { type: 'string' }, prefix: { type: 'string' }, id: { type: 'string' }, 'admin-port': { type: 'string' }, 'admin-host': { type: 'string' },
  'down-after': { type: 'string' }, cooldown: { type: 'string' }, 'max-down-share': { type: 'string' }, 'dry-run': { type: 'boolean' },
  'auto-failback': { type: 'boolean' }, 'up-after': { type: 'string' }, 'lease-ttl': { type: 'string' }, 'log-level': { type: 'string' },
  ...ETCD_SECURITY_OPTIONS,
} as const satisfies OptionSpec;
