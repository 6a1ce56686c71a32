# Shuttle in a container: a production install (no devDependencies), run as the unprivileged
# `node` user, in supervised mode so that an in-place upgrade (SIGUSR2) does not end the
# container, with tini as PID 1 to reap the processes an upgrade leaves behind.
#
#   docker build -t shuttle .
#   docker run -p 8080:8080 shuttle                                  # examples/container.yaml
#   docker run -p 8080:8080 -v $PWD/my.yaml:/etc/shuttle/shuttle.yaml:ro shuttle -c /etc/shuttle/shuttle.yaml
#   docker kill -s HUP <container>    # reload      docker kill -s USR2 <container>   # upgrade
#
# See docs/operations.md#containers.
FROM node:26-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/shuttle
ENV NODE_ENV=production

# Dependencies first (a layer that changes only with the lock file). The `node` dependency
# installs Node.js 26.10 into node_modules/.bin, the version Shuttle is tested on.
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund \
 && npm cache clean --force

COPY bin ./bin
COPY src ./src
COPY schema ./schema
COPY examples ./examples

USER node
EXPOSE 8080
STOPSIGNAL SIGTERM

# Ready = the admin API's /ready answers 200 (it answers 503 while starting and draining).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/opt/shuttle/node_modules/.bin/node", "bin/shuttle.js", "ready", "--admin", "127.0.0.1:9901"]

ENTRYPOINT ["/usr/bin/tini", "--", "/opt/shuttle/node_modules/.bin/node", "bin/shuttle.js", "start", "--supervise", "--log-format", "json"]
CMD ["-c", "examples/container.yaml"]
