// Routes naming a service no zone of the table offers (issue 14). The first table a gateway
// applies is refused for it: the configuration does not fit the estate (INVALID_CONFIG naming
// `routes[i].service`; the gateway stays unready and takes the next table that fits, as Envoy
// refuses a static route to an unknown cluster). Once the gateway routes, a table is never
// refused for it (cell moves must go on): it is applied, warned about once per change and
// counted in cellgate_route_services_missing; those routes' requests get 502.
import type { Gauge } from 'prom-client';
import type { VersionedTable } from '../cells/types';
import { cgError } from '../errors';
import type { RouteRule } from './config';
import { routeServiceProblems } from './route-rules';

export class RouteServiceCheck {
  /** The problems last warned about, as one line: a warning repeats only when they change. */
  private warned = '';

  constructor(
    private readonly routes: readonly RouteRule[],
    private readonly missing: Gauge,
    private readonly warn: (event: string, fields: Record<string, unknown>) => void,
  ) {}

  /** Throws INVALID_CONFIG for the first table (`routing` false) that lacks a route's service. */
  check(vt: VersionedTable, routing: boolean): void {
    const problems = routeServiceProblems(this.routes, vt.table);
    const summary = problems.map((p) => `${p.path}: ${p.message}`).join('; ');
    if (problems.length > 0 && !routing) {
      throw cgError('INVALID_CONFIG', `invalid gateway configuration for table version ${vt.version}: ${summary}`, { detail: problems });
    }
    this.missing.set(problems.length);
    if (summary !== this.warned && problems.length > 0) this.warn('table.route_services_missing', { version: vt.version, problems });
    this.warned = summary;
  }
}
