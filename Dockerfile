# syntax=docker/dockerfile:1
# cellgate gateway image. Build: docker build -t cellgate:0.1.0 .
# Run:   docker run -p 8080:8080 -p 9090:9090 -e CELLGATE_STORE=etcd:etcd-1:2379 cellgate:0.1.0
#        (or mount a config: -v ./gw.yaml:/etc/cellgate/gateway.yaml:ro ... serve --config /etc/cellgate/gateway.yaml)
# Set the admin port with CELLGATE_ADMIN_PORT (not --admin-port): the HEALTHCHECK reads it.
# test/deploy-container.test.ts checks every path copied here exists after `npm run build`
# and runs the ENTRYPOINT + CMD command line and the HEALTHCHECK against a file store.

FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
RUN npx tsc -p tsconfig.json

FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    CELLGATE_HOST=0.0.0.0 \
    CELLGATE_ADMIN_HOST=0.0.0.0 \
    CELLGATE_PORT=8080 \
    CELLGATE_ADMIN_PORT=9090
WORKDIR /opt/cellgate
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist/src ./dist/src
COPY config/gateway.yaml config/demo-topology.yaml ./config/
COPY deploy/container/healthcheck.js ./deploy/container/healthcheck.js
# The fail-static snapshot goes to /var/lib/cellgate when it exists and is writable.
RUN mkdir -p /var/lib/cellgate /etc/cellgate && chown node:node /var/lib/cellgate
VOLUME ["/var/lib/cellgate"]
USER node
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["node", "deploy/container/healthcheck.js"]
# Exec form: node is PID 1 and gets SIGTERM itself; cellgate handles it (stop accepting,
# close WebSockets, deregister, drain within shutdownGraceMs, exit 0).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/cli/cellgate.js"]
CMD ["serve"]
