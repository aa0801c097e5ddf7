// The container's HEALTHCHECK (and the autopilot's exec probe in Kubernetes): GET PATH
// (default /healthz) on 127.0.0.1 at the admin port CELLGATE_ADMIN_PORT (default 9090),
// from inside the container (the slim image has no curl). Exit 0 on 200 within 3 s, else 1.
'use strict';
const port = process.env.CELLGATE_ADMIN_PORT || '9090';
const path = process.argv[2] || '/healthz';
fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(3000) })
  .then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1));
