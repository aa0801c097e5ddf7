// The container's HEALTHCHECK: GET /healthz on the admin port inside the container (the slim
// image has no curl). Exit 0 when it answers 200 within 3 s, else 1.
'use strict';
const port = process.env.CELLGATE_ADMIN_PORT || '9090';
fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(3000) })
  .then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1));
