# syntax=docker/dockerfile:1
# hashwatt's image. There is no build step: Node >= 22.18 runs the TypeScript sources directly (type
# stripping), so the image holds the production dependencies, src/, migrations/ and the simulators
# (the compose stack runs them from the same image).
#
#   docker build -t hashwatt .
#   docker run -e DATABASE_URL=postgres://… -e HASHWATT_ADMIN_TOKEN=… -p 8080:8080 hashwatt
#
# Migrations run at start (src/service.ts). Several replicas may start together: Kysely's migrator
# takes a lock in the database, so exactly one applies them and the others wait and find them done.

# The Node LTS line of .nvmrc, pinned to a release (tests/compose.test.ts checks the major).
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0 \
    HASHWATT_DATA_DIR=/var/lib/hashwatt
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY migrations ./migrations
COPY src ./src
COPY simulators ./simulators
# Owned by root and read-only to the service; only the embedded database's directory is writable.
RUN mkdir -p /var/lib/hashwatt && chown node:node /var/lib/hashwatt
# The official image's unprivileged user (uid 1000).
USER node
EXPOSE 8080
# /healthz: the process serves HTTP. The slim image has no curl; Node's fetch does the same.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node as PID 1 gets SIGTERM from `docker stop` and shuts down gracefully (src/main.ts).
CMD ["node", "--max-semi-space-size=8", "src/main.ts"]
